"""Audio files through soundfile (libsndfile): streamed writing of float blocks to WAV, FLAC,
MP3 and Ogg Vorbis with loudness and peak measured on the way, block-wise reading, probing."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from numpy.typing import NDArray

from audio.dsp.loudness import LoudnessMeter

FORMATS = ("wav", "flac", "mp3", "ogg")
CONTENT_TYPES: dict[str, str] = {
    "wav": "audio/wav",
    "flac": "audio/flac",
    "mp3": "audio/mpeg",
    "ogg": "audio/ogg",
}
PCM_FORMATS = ("wav", "flac")
BIT_DEPTHS = (16, 24)
MP3_SAMPLE_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
# libvorbis crashes (segfault) above ~200 kHz, so the range is checked before libsndfile sees it.
OGG_SAMPLE_RATES = (8000, 192000)
FLAC_MAX_SAMPLE_RATE = 655350
WAV_MAX_SAMPLE_RATE = 768000

_SF_FORMATS = {"wav": "WAV", "flac": "FLAC", "mp3": "MP3", "ogg": "OGG"}


@dataclass(frozen=True)
class AudioInfo:
    """What a file holds. Loudness (LUFS) is ``None`` when nothing passes the BS.1770 gates
    (silence, or shorter than 400 ms); peak (dBFS) is ``None`` for digital silence."""

    frames: int
    sample_rate: int
    channels: int
    duration_seconds: float
    loudness_lufs: float | None
    peak_dbfs: float | None


def _info(frames: int, sample_rate: int, channels: int, meter: LoudnessMeter) -> AudioInfo:
    loudness = meter.integrated()
    return AudioInfo(
        frames=frames,
        sample_rate=sample_rate,
        channels=channels,
        duration_seconds=frames / sample_rate,
        loudness_lufs=loudness if math.isfinite(loudness) else None,
        peak_dbfs=20.0 * math.log10(meter.peak) if meter.peak > 0 else None,
    )


def subtype_for(format: str, bit_depth: int = 24) -> str:
    """The libsndfile subtype written for ``format`` (``bit_depth`` matters for WAV and FLAC)."""
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}; allowed: {', '.join(FORMATS)}")
    if format == "mp3":
        return "MPEG_LAYER_III"
    if format == "ogg":
        return "VORBIS"
    if bit_depth not in BIT_DEPTHS:
        raise ValueError(f"bit_depth must be 16 or 24 for {format}, got {bit_depth}")
    return f"PCM_{bit_depth}"


def check_sample_rate(format: str, sample_rate: int) -> None:
    """Raise ValueError when ``format`` cannot store ``sample_rate``."""
    if format == "mp3":
        allowed = sample_rate in MP3_SAMPLE_RATES
        detail = ", ".join(str(r) for r in MP3_SAMPLE_RATES)
    elif format == "ogg":
        allowed = OGG_SAMPLE_RATES[0] <= sample_rate <= OGG_SAMPLE_RATES[1]
        detail = f"{OGG_SAMPLE_RATES[0]}..{OGG_SAMPLE_RATES[1]}"
    elif format == "flac":
        allowed = 1 <= sample_rate <= FLAC_MAX_SAMPLE_RATE
        detail = f"1..{FLAC_MAX_SAMPLE_RATE}"
    else:
        allowed = 1 <= sample_rate <= WAV_MAX_SAMPLE_RATE
        detail = f"1..{WAV_MAX_SAMPLE_RATE}"
    if not allowed:
        raise ValueError(f"{format} cannot store {sample_rate} Hz (allowed: {detail})")


def pcm_ceiling(ceiling: float, format: str, bit_depth: int) -> float:
    """The largest value at or below ``ceiling`` that decodes at or below it once quantised to
    ``format``'s integers (libsndfile rounds, so a ceiling can otherwise come back 1 LSB over).
    Lossy formats return ``ceiling`` unchanged (their decoders may overshoot anyway)."""
    if format not in PCM_FORMATS:
        return ceiling
    scale = float(2 ** (bit_depth - 1))
    return math.floor(ceiling * scale) / scale


def write_audio(
    blocks: Iterable[NDArray[np.float32]],
    path: Path,
    *,
    sample_rate: int,
    channels: int,
    format: str,
    bit_depth: int = 24,
) -> AudioInfo:
    """Stream ``blocks`` shaped ``(frames, channels)`` into ``path`` as ``format``; values are
    clipped to [-1, 1]; loudness and peak are measured on the samples handed to the encoder.
    A failure (or an exception raised by the iterable) removes the partial file."""
    subtype = subtype_for(format, bit_depth)
    check_sample_rate(format, sample_rate)
    if channels < 1:
        raise ValueError("channels must be at least 1")
    meter = LoudnessMeter(sample_rate, channels)
    frames = 0
    try:
        with sf.SoundFile(
            str(path),
            mode="w",
            samplerate=sample_rate,
            channels=channels,
            subtype=subtype,
            format=_SF_FORMATS[format],
        ) as handle:
            for block in blocks:
                data = block.reshape(-1, 1) if block.ndim == 1 else block
                if data.shape[1] != channels:
                    raise ValueError(f"block has {data.shape[1]} channels, expected {channels}")
                if data.shape[0] == 0:
                    continue
                data = np.clip(data, -1.0, 1.0).astype(np.float32, copy=False)
                meter.add(data)
                handle.write(data)
                frames += data.shape[0]
    except BaseException:
        with contextlib.suppress(OSError):
            path.unlink()
        raise
    return _info(frames, sample_rate, channels, meter)


def read_blocks(
    path: Path,
    *,
    block_frames: int = 65536,
    start_frame: int = 0,
    frames: int | None = None,
    always_2d: bool = True,
) -> Iterator[NDArray[np.float32]]:
    """Decode ``path`` as float32 blocks of up to ``block_frames`` frames, from ``start_frame``,
    for ``frames`` frames (None: to the end)."""
    if block_frames < 1:
        raise ValueError("block_frames must be positive")
    with sf.SoundFile(str(path)) as handle:
        if start_frame >= handle.frames > 0:
            return
        if start_frame > 0:
            handle.seek(start_frame)
        remaining = frames
        while remaining is None or remaining > 0:
            want = block_frames if remaining is None else min(block_frames, remaining)
            block = handle.read(want, dtype="float32", always_2d=always_2d)
            if block.shape[0] == 0:
                return
            if remaining is not None:
                remaining -= block.shape[0]
            yield block


def probe(path: Path, *, block_frames: int = 65536) -> AudioInfo:
    """Decode the whole file block-wise and measure it: frames counted as decoded (not as the
    header claims), integrated loudness and sample peak."""
    with sf.SoundFile(str(path)) as handle:
        sample_rate, channels = handle.samplerate, handle.channels
    meter = LoudnessMeter(sample_rate, channels)
    frames = 0
    for block in read_blocks(path, block_frames=block_frames):
        meter.add(block)
        frames += block.shape[0]
    return _info(frames, sample_rate, channels, meter)
