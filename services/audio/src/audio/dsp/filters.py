"""Filters and resampling shared by the renderers: scipy's Butterworth sections and polyphase
resampler, on float32 arrays shaped ``(frames,)`` or ``(frames, channels)`` along axis 0."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import signal

Signal = NDArray[np.float32]


def _f32(x: Any) -> Signal:
    """scipy answers float64 (and is untyped): back to float32."""
    return np.asarray(x, dtype=np.float32)


def _sos(kind: str, cutoff: float | tuple[float, float], sample_rate: int, order: int) -> Any:
    nyquist = sample_rate / 2
    if isinstance(cutoff, tuple):
        low, high = (min(max(c, 1.0), nyquist * 0.99) for c in cutoff)
        return signal.butter(order, (low, high), btype=kind, fs=sample_rate, output="sos")
    edge = min(max(cutoff, 1.0), nyquist * 0.99)
    return signal.butter(order, edge, btype=kind, fs=sample_rate, output="sos")


def lowpass(x: Signal, sample_rate: int, cutoff_hz: float, order: int = 4) -> Signal:
    """Keep what is below ``cutoff_hz`` (a "high cut", or muffling)."""
    return _f32(signal.sosfilt(_sos("lowpass", cutoff_hz, sample_rate, order), x, axis=0))


def highpass(x: Signal, sample_rate: int, cutoff_hz: float, order: int = 4) -> Signal:
    """Keep what is above ``cutoff_hz``."""
    return _f32(signal.sosfilt(_sos("highpass", cutoff_hz, sample_rate, order), x, axis=0))


def bandpass(x: Signal, sample_rate: int, low_hz: float, high_hz: float, order: int = 4) -> Signal:
    """Keep the band between ``low_hz`` and ``high_hz``."""
    sos = _sos("bandpass", (low_hz, high_hz), sample_rate, order)
    return _f32(signal.sosfilt(sos, x, axis=0))


def bandpass_around(x: Signal, sample_rate: int, centre_hz: float, octaves: float = 1.0) -> Signal:
    """A band ``octaves`` wide centred (geometrically) on ``centre_hz``."""
    half = 2 ** (octaves / 2)
    return bandpass(x, sample_rate, centre_hz / half, centre_hz * half)


def resample(x: Signal, source_rate: int, target_rate: int) -> Signal:
    """Polyphase resampling (an anti-aliasing FIR) from ``source_rate`` to ``target_rate``."""
    if source_rate == target_rate:
        return x.astype(np.float32, copy=False)
    ratio = Fraction(target_rate, source_rate).limit_denominator(1000)
    return _f32(signal.resample_poly(x, ratio.numerator, ratio.denominator, axis=0))


def stretch_pitch(x: Signal, semitones: float) -> Signal:
    """Play ``x`` faster or slower, as tape does: pitch up by ``semitones``, duration shorter by
    the same factor (negative semitones: lower and longer)."""
    if semitones == 0:
        return x
    factor = 2 ** (semitones / 12)
    ratio = Fraction(1 / factor).limit_denominator(200)
    return _f32(signal.resample_poly(x, ratio.numerator, ratio.denominator, axis=0))
