"""Voice effects: pure functions on mono float32 signals shaped ``(frames,)``.

Every effect is deterministic: whatever is random (reverb impulse responses, dropouts) comes from
a seeded generator, so the same input gives the same bytes. ``apply_style`` runs one of the
voice styles of the handbook (radio, robot, telephone, deep_space, corrupted).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage, signal

from audio.dsp.filters import highpass, lowpass, resample

Signal = NDArray[np.float32]

STYLES: tuple[str, ...] = ("radio", "robot", "telephone", "deep_space", "corrupted")

DEEP_SPACE_PITCH_SEMITONES = -4.0
"""How much lower deep_space speaks; applied at synthesis (``audio.dsp.voice``), not here."""

_REVERB_SEED = 0x5EED
_CHUNK = 1 << 20  # samples per step where a per-sample gain would otherwise be materialised


def db_to_gain(db: float) -> float:
    """Amplitude ratio of ``db`` decibels."""
    return float(10 ** (db / 20))


def peak(x: Signal) -> float:
    """Largest absolute sample (0.0 for an empty signal)."""
    return float(np.max(np.abs(x))) if x.size else 0.0


def normalize_peak(x: Signal, peak_db: float = 0.0) -> Signal:
    """Scale ``x`` so its peak sits at ``peak_db`` dBFS; silence stays silence."""
    top = peak(x)
    if top == 0.0:
        return x.astype(np.float32, copy=True)
    return (x * (db_to_gain(peak_db) / top)).astype(np.float32)


def saturate(x: Signal, drive: float = 2.5) -> Signal:
    """Soft clipping (``tanh``) of the peak-normalised signal, given back at the input's peak."""
    top = peak(x)
    if top == 0.0:
        return x.astype(np.float32, copy=True)
    shaped = np.tanh(drive * x.astype(np.float64) / top) / math.tanh(drive)
    return np.asarray(shaped * top, dtype=np.float32)


def band_limit(x: Signal, sample_rate: int, low_hz: float, high_hz: float) -> Signal:
    """Steep band-limiting (8th-order Butterworth high-pass then low-pass, 48 dB/octave)."""
    return lowpass(highpass(x, sample_rate, low_hz, order=8), sample_rate, high_hz, order=8)


def noise_gate(
    x: Signal,
    sample_rate: int,
    threshold_db: float = -40.0,
    *,
    window_s: float = 0.005,
    hold_s: float = 0.08,
    attack_s: float = 0.002,
    release_s: float = 0.02,
) -> Signal:
    """Silence ``x`` wherever its peak envelope stays below ``threshold_db`` dBFS.

    The gate opens ``attack_s`` before the envelope crosses the threshold and stays open for
    ``hold_s`` after it falls below, so quiet consonants between louder sounds are kept; it then
    closes over ``release_s``. Where it is closed the output is exactly zero.
    """
    if x.size == 0:
        return x.astype(np.float32, copy=True)
    # The gate decides per millisecond block, then its gain is interpolated per sample.
    block = max(1, round(sample_rate / 1000))
    blocks = -(-x.size // block)
    padded = np.zeros(blocks * block, dtype=np.float32)
    padded[: x.size] = np.abs(x)
    level = padded.reshape(blocks, block).max(axis=1)
    del padded

    def in_blocks(seconds: float) -> int:
        return max(1, round(seconds * 1000))

    envelope = ndimage.maximum_filter1d(level, size=in_blocks(window_s), mode="constant")
    is_open = (envelope >= db_to_gain(threshold_db)).astype(np.uint8)
    hold, attack = in_blocks(hold_s), in_blocks(attack_s)
    # Extend each open stretch ``attack`` back and ``hold`` forward.
    extended = ndimage.maximum_filter1d(
        is_open, size=attack + hold + 1, origin=(hold - attack) // 2, mode="nearest"
    )
    # A box filter over a 0/1 mask makes linear ramps; sums of zeros stay exactly zero.
    block_gain = np.asarray(
        ndimage.uniform_filter1d(
            extended.astype(np.float64), size=in_blocks(release_s), mode="nearest"
        ),
        dtype=np.float64,
    )
    block_gain[block_gain < 1e-9] = 0.0
    centres = (np.arange(blocks) + 0.5) * block
    out = np.empty(x.size, dtype=np.float32)
    for start in range(0, x.size, _CHUNK):
        stop = min(start + _CHUNK, x.size)
        gain = np.interp(np.arange(start, stop), centres, block_gain)
        out[start:stop] = x[start:stop] * gain
    return out


def vibrato(
    x: Signal, sample_rate: int, rate_hz: float = 5.5, depth_semitones: float = 0.35
) -> Signal:
    """Periodic pitch wobble from a sine-modulated delay line (a few tenths of a millisecond)."""
    if x.size == 0:
        return x.astype(np.float32, copy=True)
    deviation = 2 ** (depth_semitones / 12) - 1
    depth_samples = deviation * sample_rate / (2 * np.pi * rate_hz)
    positions = np.arange(x.size)
    out = np.empty(x.size, dtype=np.float32)
    for start in range(0, x.size, _CHUNK):
        n = np.arange(start, min(start + _CHUNK, x.size), dtype=np.float64)
        delay = depth_samples * (1 - np.cos(2 * np.pi * rate_hz * n / sample_rate))
        out[start : start + n.size] = np.interp(n - delay, positions, x, left=0.0)
    return out


def reverb_impulse(
    sample_rate: int, decay_s: float, *, predelay_s: float = 0.02, brightness_hz: float = 6000.0
) -> Signal:
    """A synthetic hall: seeded noise under an exponential decay reaching -60 dB at ``decay_s``,
    darkened above ``brightness_hz``, with unit energy."""
    length = max(1, round(decay_s * sample_rate))
    rng = np.random.default_rng(_REVERB_SEED)
    t = np.arange(length, dtype=np.float64) / sample_rate
    noise = rng.standard_normal(length) * np.exp(-6.91 * t / decay_s)
    tail = lowpass(noise.astype(np.float32), sample_rate, brightness_hz, order=2)
    ir = np.concatenate([np.zeros(round(predelay_s * sample_rate), np.float32), tail])
    energy = float(np.sqrt(np.sum(ir.astype(np.float64) ** 2)))
    return (ir / energy).astype(np.float32)


def reverb(
    x: Signal,
    sample_rate: int,
    decay_s: float = 2.5,
    wet: float = 0.5,
    *,
    brightness_hz: float = 6000.0,
) -> Signal:
    """Convolution reverb (overlap-add FFT); the output is longer than ``x`` by the room's tail."""
    ir = reverb_impulse(sample_rate, decay_s, brightness_hz=brightness_hz)
    tail = signal.oaconvolve(x.astype(np.float64), ir.astype(np.float64))
    dry = np.zeros_like(tail)
    dry[: x.size] = x
    mixed = (1 - wet) * dry + wet * tail
    return trim_silence_end(mixed.astype(np.float32), floor_db=-70.0)


def trim_silence_end(x: Signal, floor_db: float = -70.0) -> Signal:
    """Drop the end of ``x`` that stays below ``floor_db`` relative to its peak."""
    top = peak(x)
    if top == 0.0:
        return x
    loud = np.flatnonzero(np.abs(x) >= top * db_to_gain(floor_db))
    return x[: int(loud[-1]) + 1]


def ring_modulate(x: Signal, sample_rate: int, carrier_hz: float = 50.0) -> Signal:
    """Multiply by a sine carrier: the spectrum splits into sidebands, a metallic voice."""
    t = np.arange(x.size, dtype=np.float64) / sample_rate
    return (x * np.sin(2 * np.pi * carrier_hz * t)).astype(np.float32)


def comb(x: Signal, sample_rate: int, delay_s: float = 0.006, feedback: float = 0.45) -> Signal:
    """A feedback comb filter (a short resonant tube)."""
    delay = max(1, round(delay_s * sample_rate))
    a = np.zeros(delay + 1)
    a[0], a[delay] = 1.0, -feedback
    return np.asarray(signal.lfilter([1.0 - feedback], a, x), dtype=np.float32)


def bit_crush(x: Signal, bits: int = 5, hold: int = 4) -> Signal:
    """Quantise to ``bits`` bits (relative to the peak) and hold every ``hold``-th sample."""
    top = peak(x)
    if top == 0.0:
        return x.astype(np.float32, copy=True)
    levels = 2 ** (bits - 1)
    crushed = np.round(x / top * levels) / levels * top
    held = np.repeat(crushed[::hold], hold)[: x.size]
    return held.astype(np.float32)


def dropouts(
    x: Signal,
    sample_rate: int,
    seed: int,
    *,
    per_second: float = 1.5,
    min_s: float = 0.04,
    max_s: float = 0.16,
) -> Signal:
    """Zero out short random stretches of ``x``, centred in its audible parts.

    The generator is seeded with ``seed``: the same signal and seed give the same dropouts.
    """
    out = x.astype(np.float32, copy=True)
    if x.size == 0:
        return out
    rng = np.random.default_rng(seed)
    duration = x.size / sample_rate
    count = max(2, round(per_second * duration))
    window = max(1, round(0.01 * sample_rate))
    envelope = ndimage.maximum_filter1d(np.abs(x), size=window)
    audible = np.flatnonzero(envelope >= peak(x) * db_to_gain(-30.0))
    candidates = audible if audible.size else np.arange(x.size)
    centres = rng.choice(candidates, size=count)
    lengths = rng.uniform(min_s, max_s, size=count) * sample_rate
    for centre, length in zip(centres, lengths, strict=True):
        start = max(0, int(centre - length / 2))
        out[start : int(centre + length / 2)] = 0.0
    return out


def radio(x: Signal, sample_rate: int) -> Signal:
    """A two-way radio: mild saturation, then band-limited to 300-3400 Hz."""
    return band_limit(saturate(x, drive=2.5), sample_rate, 300.0, 3400.0)


def telephone(x: Signal, sample_rate: int) -> Signal:
    """A phone line: 300-3000 Hz, resampled through 8 kHz with 8-bit mu-law companding."""
    narrow = band_limit(saturate(x, drive=1.5), sample_rate, 300.0, 3000.0)
    line = resample(narrow, sample_rate, 8000)
    top = peak(line)
    if top > 0.0:
        mu = 255.0
        unit = line / top
        companded = np.sign(unit) * np.log1p(mu * np.abs(unit)) / np.log1p(mu)
        quantised = np.round(companded * 127) / 127
        line = (np.sign(quantised) * np.expm1(np.abs(quantised) * np.log1p(mu)) / mu * top).astype(
            np.float32
        )
    back = resample(line, 8000, sample_rate)[: x.size]
    return band_limit(back, sample_rate, 300.0, 3000.0)


def robot(x: Signal, sample_rate: int, carrier_hz: float = 50.0) -> Signal:
    """Ring modulation at ``carrier_hz`` through a short metallic comb."""
    return comb(ring_modulate(x, sample_rate, carrier_hz), sample_rate)


def deep_space(x: Signal, sample_rate: int) -> Signal:
    """A vast, distant voice: a long dark reverb, muffled above 3.5 kHz.

    The lower pitch of the style is asked of the voice engine (``DEEP_SPACE_PITCH_SEMITONES``)
    so the duration does not change.
    """
    wet = reverb(x, sample_rate, decay_s=2.5, wet=0.45, brightness_hz=2500.0)
    return lowpass(wet, sample_rate, 3500.0)


def corrupted(x: Signal, sample_rate: int, seed: int) -> Signal:
    """A damaged transmission: 5-bit quantisation, sample-and-hold near 5.5 kHz, dropouts."""
    hold = max(1, round(sample_rate / 5500))
    return dropouts(bit_crush(x, bits=5, hold=hold), sample_rate, seed)


def apply_style(x: Signal, sample_rate: int, style: str, *, seed: int = 0) -> Signal:
    """Run one of ``STYLES`` on ``x``; ``seed`` drives the random parts (corrupted)."""
    if style == "radio":
        return radio(x, sample_rate)
    if style == "telephone":
        return telephone(x, sample_rate)
    if style == "robot":
        return robot(x, sample_rate)
    if style == "deep_space":
        return deep_space(x, sample_rate)
    if style == "corrupted":
        return corrupted(x, sample_rate, seed)
    raise ValueError(f"unknown voice style {style!r}; allowed: {', '.join(STYLES)}")
