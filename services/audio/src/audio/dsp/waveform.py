"""Waveform peaks for display, read block-wise: the service's own shape (signed peaks) and the
audiowaveform JSON v2 shape (min/max pairs) that peaks.js reads. Channels are mono-summed
(averaged) first."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from numpy.typing import NDArray

from audio.dsp.codecs import read_blocks

BLOCK_FRAMES = 1 << 16


def _bucket_extremes(
    path: Path, starts: NDArray[np.int64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Minimum and maximum of the mono sum in each bucket ``[starts[i], starts[i + 1])`` (the
    last bucket runs to the end of the file). Buckets must be non-empty."""
    count = starts.shape[0]
    lows = np.full(count, np.inf)
    highs = np.full(count, -np.inf)
    position = 0
    for block in read_blocks(path, block_frames=BLOCK_FRAMES):
        mono = block[:, 0].astype(np.float64)
        for channel in range(1, block.shape[1]):  # faster than mean(axis=1) on 2 columns
            mono += block[:, channel]
        mono /= block.shape[1]
        end = position + mono.shape[0]
        # buckets that start inside this block, plus the one running into it
        first = int(np.searchsorted(starts, position, side="right")) - 1
        last = int(np.searchsorted(starts, end, side="left"))
        offsets = np.maximum(starts[first:last] - position, 0)
        block_lows = np.minimum.reduceat(mono, offsets)
        block_highs = np.maximum.reduceat(mono, offsets)
        lows[first:last] = np.minimum(lows[first:last], block_lows)
        highs[first:last] = np.maximum(highs[first:last], block_highs)
        position = end
    lows[~np.isfinite(lows)] = 0.0
    highs[~np.isfinite(highs)] = 0.0
    return lows, highs


def waveform(path: Path, *, samples_per_second: int = 60, max_points: int = 1000) -> dict[str, Any]:
    """Signed peaks: ``points = min(ceil(duration * samples_per_second), max_points)`` buckets
    of equal length (frame boundaries ``floor(i * frames / points)``), each giving the mono
    sample of greatest magnitude (the positive one on a tie). ``samples_per_second`` in the
    answer is the effective rate; ``peak_amplitude`` is the largest magnitude among the points."""
    if samples_per_second < 1 or max_points < 1:
        raise ValueError("samples_per_second and max_points must be positive")
    info = sf.info(str(path))
    frames, rate = int(info.frames), int(info.samplerate)
    duration = frames / rate if rate else 0.0
    points = min(math.ceil(duration * samples_per_second), max_points, frames)
    if points <= 0:
        return {
            "duration_seconds": duration,
            "sample_count": 0,
            "samples_per_second": 0.0,
            "waveform": [],
            "peak_amplitude": 0.0,
        }
    starts = (np.arange(points, dtype=np.int64) * frames) // points
    lows, highs = _bucket_extremes(path, starts)
    peaks = np.where(highs >= -lows, highs, lows)
    return {
        "duration_seconds": duration,
        "sample_count": points,
        "samples_per_second": points / duration,
        "waveform": [float(v) for v in peaks],
        "peak_amplitude": float(np.max(np.abs(peaks))),
    }


def audiowaveform(
    path: Path, *, samples_per_second: int = 60, max_points: int = 1000, bits: int = 8
) -> dict[str, Any]:
    """audiowaveform JSON v2, one channel: ``samples_per_pixel = ceil(rate /
    samples_per_second)``, raised so that ``length <= max_points``; ``data`` holds
    ``[min0, max0, min1, max1, ...]`` scaled to signed ``bits`` integers (8 or 16)."""
    if bits not in (8, 16):
        raise ValueError("bits must be 8 or 16")
    if samples_per_second < 1 or max_points < 1:
        raise ValueError("samples_per_second and max_points must be positive")
    info = sf.info(str(path))
    frames, rate = int(info.frames), int(info.samplerate)
    per_pixel = max(math.ceil(rate / samples_per_second), math.ceil(frames / max_points), 1)
    length = math.ceil(frames / per_pixel)
    data: list[int] = []
    if length > 0:
        starts = np.arange(length, dtype=np.int64) * per_pixel
        lows, highs = _bucket_extremes(path, starts)
        scale = float(2 ** (bits - 1))
        pairs = np.stack([lows, highs], axis=1).reshape(-1)
        scaled = np.clip(np.round(pairs * scale), -scale, scale - 1).astype(np.int64)
        data = [int(v) for v in scaled]
    return {
        "version": 2,
        "channels": 1,
        "sample_rate": rate,
        "samples_per_pixel": per_pixel,
        "bits": bits,
        "length": length,
        "data": data,
    }
