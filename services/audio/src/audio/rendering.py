"""A job's render, blocking (the worker runs it in a thread): the job's ``params`` in, finished
files in a working directory out. Every render streams blocks, so memory does not grow with
duration; ``check`` is called between blocks (it raises to cancel) and ``progress`` gets the
fraction done."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from numpy.typing import NDArray

from audio import profiles
from audio.dsp import codecs, music, sfx, voice
from audio.dsp.codecs import AudioInfo
from audio.dsp.mixdown import Ducking, MixSettings, MixTrack, mixdown

Check = Callable[[], None]
Progress = Callable[[float], None]
Block = NDArray[np.float32]


def _watched(
    blocks: Iterable[Any], total_frames: int, check: Check, progress: Progress, share: float = 1.0
) -> Iterator[Any]:
    """``blocks`` with a cancel check before each and progress after each."""
    done = 0
    for block in blocks:
        check()
        yield block
        frames = (next(iter(block.values())) if isinstance(block, dict) else block).shape[0]
        done += frames
        progress(share * min(1.0, done / max(1, total_frames)))


def _voice_params(profile: dict[str, Any]) -> voice.VoiceParams:
    return voice.VoiceParams(
        language=profile["language"],
        gender=profile["gender"],
        type=profile["type"],
        style=profile.get("style"),
        emotion=profile["emotion"],
        pitch_semitones=float(profile["pitch_semitones"]),
        speed=float(profile["speed"]),
    )


def _stem_blocks(params: dict[str, Any]) -> tuple[Iterator[dict[str, Block]], int]:
    """The profile's stems, block by block, and the total frame count."""
    profile = params["profile"]
    rate = int(params["sample_rate"])
    seconds = float(params["duration_seconds"])
    seed = int(profile["seed"])
    total = round(seconds * rate)
    if profile["profile_type"] == "music":
        spec = profiles.music_spec(
            genre=profile["genre"],
            intensity=profile["intensity"],
            action=profile.get("action"),
            rhythm=profile.get("rhythm"),
        )
        return music.music_blocks(
            spec, duration_seconds=seconds, seed=seed, sample_rate=rate
        ), total
    sfx_spec = profiles.sfx_spec(
        action=profile["action"],
        intensity=profile["intensity"],
        environment=profile.get("environment"),
        muffling=profile.get("muffling"),
    )
    return sfx.sfx_blocks(sfx_spec, duration_seconds=seconds, seed=seed, sample_rate=rate), total


def render_generate(
    params: dict[str, Any], workdir: Path, check: Check, progress: Progress
) -> dict[str, tuple[Path, AudioInfo]]:
    """One file per record of the job: the sum (``generate``) or each stem (``multitrack``)."""
    profile = params["profile"]
    kind, fmt, bits = params["type"], params["format"], int(params["bit_depth"])
    rate = int(params["sample_rate"])
    records = params["records"]
    if profile["profile_type"] == "voice":
        check()
        samples = voice.render_voice(params["text"], _voice_params(profile), sample_rate=rate)
        progress(0.8)
        path = workdir / f"{records[0]['id']}.{fmt}"
        info = codecs.write_audio(
            [samples], path, sample_rate=rate, channels=1, format=fmt, bit_depth=bits
        )
        return {records[0]["id"]: (path, info)}
    if kind != "stem":
        path = workdir / f"{records[0]['id']}.{fmt}"
        seconds = float(params["duration_seconds"])
        seed = int(profile["seed"])
        total = round(seconds * rate)
        if profile["profile_type"] == "ambient":
            environment = profile.get("environment")
            blocks: Iterable[Block] = sfx.ambient_blocks(
                environment=environment,
                intensity=profile["intensity"],
                duration_seconds=seconds,
                seed=seed,
                sample_rate=rate,
            )
        else:
            stems, total = _stem_blocks(params)
            blocks = (music.mix_stems(block) for block in stems)
        info = codecs.write_audio(
            _watched(blocks, total, check, progress),
            path,
            sample_rate=rate,
            channels=2,
            format=fmt,
            bit_depth=bits,
        )
        return {records[0]["id"]: (path, info)}
    # A multitrack: every stem into a float file first (one pass of the renderer), then each
    # encoded on its own.
    stems, total = _stem_blocks(params)
    ids = {r["name"]: r["id"] for r in records}
    raw: dict[str, sf.SoundFile] = {}
    try:
        for block in _watched(stems, total, check, progress, share=0.7):
            for name, samples in block.items():
                if name not in ids:
                    continue
                if name not in raw:
                    raw[name] = sf.SoundFile(
                        workdir / f"{name}.raw.wav",
                        "w",
                        samplerate=rate,
                        channels=samples.shape[1],
                        subtype="FLOAT",
                    )
                raw[name].write(samples)
    finally:
        for handle in raw.values():
            handle.close()
    done: dict[str, tuple[Path, AudioInfo]] = {}
    for index, (name, record_id) in enumerate(ids.items()):
        check()
        source = workdir / f"{name}.raw.wav"
        channels = sf.info(str(source)).channels
        path = workdir / f"{record_id}.{fmt}"
        info = codecs.write_audio(
            codecs.read_blocks(source),
            path,
            sample_rate=rate,
            channels=channels,
            format=fmt,
            bit_depth=bits,
        )
        source.unlink()
        done[record_id] = (path, info)
        progress(0.7 + 0.3 * (index + 1) / len(ids))
    return done


def render_mix(
    params: dict[str, Any],
    inputs: dict[str, Path],
    workdir: Path,
    check: Check,
    progress: Progress,
) -> dict[str, tuple[Path, AudioInfo]]:
    """The mixdown of ``inputs`` (audio id → fetched file) as the job's profile says."""
    profile = params["profile"]
    master = profile["master"]
    tracks = [
        MixTrack(
            path=inputs[t["audio_id"]],
            volume=float(t["volume"]),
            volume_db=float(t["volume_db"]),
            pan=float(t["pan"]),
            fade_in_seconds=float(t["fade_in_seconds"]),
            fade_out_seconds=float(t["fade_out_seconds"]),
            fade_curve=t["fade_curve"],
            start_time_seconds=float(t["start_time_seconds"]),
            trim_start_seconds=float(t["trim_start_seconds"]),
            trim_end_seconds=t["trim_end_seconds"],
            key=bool(t["key"]),
            ducked=bool(t["ducked"]),
            mono_below_hz=t["mono_below_hz"],
        )
        for t in profile["tracks"]
    ]
    settings = MixSettings(
        sample_rate=int(master["sample_rate"]),
        channels=int(master["channels"]),
        duration_seconds=master["duration_seconds"],
        normalize_lufs=master["normalize_lufs"],
        limiter_dbfs=float(master["limiter_dbfs"]),
        ducking=Ducking() if master["ducking"] else None,
        format=params["format"],
        bit_depth=int(params["bit_depth"]),
    )
    record_id = params["records"][0]["id"]
    out = workdir / f"{record_id}.{params['format']}"
    info = mixdown(tracks, settings, out, check=check, progress=progress, workdir=workdir)
    return {record_id: (out, info)}
