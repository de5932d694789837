"""Audio DSP benchmark: prints figures, asserts nothing.

1. Mixdown of 6 tracks x 3 min, stereo 48 kHz (FLAC and WAV inputs of tones and noise, written
   first and not timed), with the default settings of a mix: -16 LUFS normalisation (two passes),
   ducking under a dialogue track, fades, pan, mono lows, limiter, 24-bit WAV out. Wall time /
   audio duration (target <= 0.05) and peak RSS, measured in a child process that only mixes.
2. Waveform peaks (service shape and audiowaveform) of a 10-minute stereo WAV.

    .venv/bin/python benchmarks/audio_dsp_bench.py            (full size)
    .venv/bin/python benchmarks/audio_dsp_bench.py --quick    (10 s tracks, a 30 s waveform file)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import soundfile as sf
from scipy import signal

from audio.dsp.mixdown import MixSettings, MixTrack, mixdown
from audio.dsp.waveform import audiowaveform, waveform

RATE = 48000
TRACKS = 6
BLOCK = RATE * 4  # frames generated per write


def generate(path: Path, seconds: float, kind: int, subtype: str, seed: int) -> None:
    """Write ``seconds`` of stereo: tones (odd kinds) or filtered noise (even), block by block;
    kind 0 is a "voice": bursts, 1.5 s on, 1 s off."""
    rng = np.random.default_rng(seed)
    frames = round(seconds * RATE)
    b, a = signal.butter(2, 2000 + 500 * kind, fs=RATE)
    zi = np.zeros((2, 2))
    with sf.SoundFile(str(path), "w", samplerate=RATE, channels=2, subtype=subtype) as out:
        for start in range(0, frames, BLOCK):
            t = np.arange(start, min(start + BLOCK, frames)) / RATE
            if kind % 2:
                base = 110.0 * (1 + kind)
                tone = sum(np.sin(2 * np.pi * base * h * t) / h for h in (1, 2, 3))
                block = 0.25 * np.stack([tone, np.roll(tone, 7)], axis=1)
            else:
                noise, zi = signal.lfilter(b, a, rng.standard_normal((t.size, 2)), axis=0, zi=zi)
                block = 0.3 * noise
            if kind == 0:
                block *= ((t % 2.5) < 1.5)[:, None]
            out.write(block.astype(np.float32))


def child_mix(folder: Path) -> None:
    """Run in a fresh process: mix the prepared inputs, print JSON figures."""
    paths = sorted(folder.glob("track-*"))
    tracks = [
        MixTrack(path=paths[0], key=True, volume_db=0.0),  # dialogue
        MixTrack(path=paths[1], ducked=True, volume_db=-6.0, fade_in_seconds=2.0, pan=-0.3),
        MixTrack(path=paths[2], ducked=True, volume_db=-6.0, fade_out_seconds=3.0, pan=0.3),
        MixTrack(path=paths[3], ducked=True, volume_db=-4.0, mono_below_hz=80.0),
        MixTrack(path=paths[4], volume_db=-3.0, mono_below_hz=120.0, fade_curve="s_curve"),
        MixTrack(path=paths[5], ducked=True, volume_db=-16.0, fade_in_seconds=1.0),
    ]
    usage = resource.getrusage(resource.RUSAGE_SELF)
    before, cpu = psutil.Process().memory_info().rss / 1024, usage.ru_utime + usage.ru_stime
    began = time.perf_counter()
    info = mixdown(tracks, MixSettings(), folder / "mix.wav", workdir=folder)
    took = time.perf_counter() - began
    usage = resource.getrusage(resource.RUSAGE_SELF)
    peak, cpu = usage.ru_maxrss, usage.ru_utime + usage.ru_stime - cpu
    print(
        json.dumps(
            {
                "seconds": took,
                "cpu_seconds": cpu,
                "duration": info.duration_seconds,
                "rss_before_mb": before / 1024,
                "rss_peak_mb": peak / 1024,
                "lufs": info.loudness_lufs,
                "peak_dbfs": info.peak_dbfs,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke run")
    parser.add_argument("--child-mix", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_mix is not None:
        child_mix(args.child_mix)
        return
    track_seconds = 10.0 if args.quick else 180.0
    waveform_seconds = 30.0 if args.quick else 600.0
    folder = Path(tempfile.mkdtemp(prefix="storycore-audio-bench-"))
    try:
        print(f"machine: {os.cpu_count()} cores")
        began = time.perf_counter()
        for i in range(TRACKS):
            suffix, subtype = ("flac", "PCM_24") if i % 2 else ("wav", "PCM_24")
            generate(folder / f"track-{i}.{suffix}", track_seconds, i, subtype, seed=i)
        print(
            f"inputs: {TRACKS} x {track_seconds:.0f} s stereo {RATE} Hz (FLAC/WAV 24-bit) "
            f"written in {time.perf_counter() - began:.1f} s (not timed)"
        )
        answer = subprocess.run(
            [sys.executable, __file__, "--child-mix", str(folder)],
            check=True,
            capture_output=True,
            text=True,
        )
        figures = json.loads(answer.stdout.strip().splitlines()[-1])
        ratio = figures["seconds"] / figures["duration"]
        cpu_ratio = figures["cpu_seconds"] / figures["duration"]
        print(
            f"mixdown {TRACKS} tracks, {figures['duration']:.0f} s, normalised, ducked, limited: "
            f"{figures['seconds']:.2f} s wall, {ratio:.4f} x real time (target <= 0.05); "
            f"CPU {figures['cpu_seconds']:.2f} s ({cpu_ratio:.4f} x real time)"
        )
        print(
            f"  peak RSS {figures['rss_peak_mb']:.0f} MB (child's RSS after imports, before the "
            f"mix: {figures['rss_before_mb']:.0f} MB, so the mix added "
            f"{figures['rss_peak_mb'] - figures['rss_before_mb']:.0f} MB); "
            f"output {figures['lufs']:.2f} LUFS, peak {figures['peak_dbfs']:.2f} dBFS"
        )
        for path in folder.glob("track-*"):
            path.unlink()
        (folder / "mix.wav").unlink()

        long = folder / "long.wav"
        generate(long, waveform_seconds, 3, "PCM_16", seed=42)
        began = time.perf_counter()
        peaks = waveform(long, samples_per_second=60, max_points=1000)
        took = time.perf_counter() - began
        print(
            f"waveform of {waveform_seconds:.0f} s stereo WAV: {took * 1000:.0f} ms "
            f"({peaks['sample_count']} points)"
        )
        began = time.perf_counter()
        shape = audiowaveform(long, samples_per_second=60, max_points=1000, bits=8)
        took = time.perf_counter() - began
        print(
            f"audiowaveform of the same file: {took * 1000:.0f} ms ({shape['length']} pixels "
            f"of {shape['samples_per_pixel']} samples)"
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
