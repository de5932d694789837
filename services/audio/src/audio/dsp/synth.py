"""Shared building blocks of the procedural renderers (:mod:`audio.dsp.music`,
:mod:`audio.dsp.sfx`): band-limited wavetable oscillators, envelopes, drum and note voices,
swept noise, a convolution room, a granular time stretch, a stem's filter chain, and the
block engine that overlap-adds pre-scheduled events into consecutive blocks.

Everything works on float64 internally; stems leave the engine as float32. Nothing here
draws random numbers except from generators the caller seeds."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import fft, signal

from audio.dsp import filters
from audio.dsp.specs import StemSpec

Signal = NDArray[np.float32]
Wave = NDArray[np.float64]
Rng = np.random.Generator

TABLE_SIZE = 4096
TAU = 2.0 * math.pi
_GRID = np.arange(TABLE_SIZE + 1, dtype=np.float64) / TABLE_SIZE


def generator(seed: int, *stream: int) -> Rng:
    """``numpy.random.default_rng`` for one stream of a render: the seed (any integer) and
    the stream's numbers, so each part draws independently of the others and of blocks."""
    return np.random.default_rng([seed % 2**64, *(s % 2**64 for s in stream)])


def db_to_gain(db: float) -> float:
    """Decibels to a linear amplitude factor."""
    return float(10.0 ** (db / 20.0))


def midi_to_hz(midi: float) -> float:
    """Equal temperament, A4 (MIDI 69) = 440 Hz."""
    return float(440.0 * 2.0 ** ((midi - 69.0) / 12.0))


# -- oscillators ------------------------------------------------------------------------------


def saw_amps(count: int, rolloff: float = 0.0) -> tuple[float, ...]:
    """Harmonic amplitudes of a sawtooth (``1/k``), optionally darkened by ``exp(-k*rolloff)``."""
    return tuple(math.exp(-k * rolloff) / k for k in range(1, count + 1))


def square_amps(count: int, rolloff: float = 0.0) -> tuple[float, ...]:
    """Odd harmonics only (a square wave), optionally darkened."""
    return tuple(math.exp(-k * rolloff) / k if k % 2 else 0.0 for k in range(1, count + 1))


@functools.lru_cache(maxsize=256)
def _table(amps: tuple[float, ...]) -> Wave:
    table = np.zeros(TABLE_SIZE + 1)
    for k, amp in enumerate(amps, start=1):
        if amp:
            table += amp * np.sin(TAU * k * _GRID)
    peak = float(np.max(np.abs(table)))
    return table / peak if peak > 0 else table


def band_limit(amps: tuple[float, ...], top_hz: float, sample_rate: int) -> tuple[float, ...]:
    """The harmonics of ``amps`` that stay below 0.45 x the sample rate at ``top_hz``."""
    keep = max(1, int(0.45 * sample_rate / max(top_hz, 1.0)))
    return amps[:keep]


def wavetable(amps: tuple[float, ...], phase: Wave) -> Wave:
    """A periodic waveform with harmonic amplitudes ``amps`` at ``phase`` (in cycles)."""
    return np.interp(phase - np.floor(phase), _GRID, _table(amps))


def sine(phase: Wave) -> Wave:
    """``sin(2π·phase)`` for a phase in cycles; computed in float32 (several times faster)
    after reducing the phase to one cycle in float64, so long notes keep their precision."""
    cycle = (phase - np.floor(phase)).astype(np.float32)
    return np.asarray(np.sin(cycle * np.float32(TAU)), dtype=np.float64)


def expo(x: Wave) -> Wave:
    """``exp(x)`` in float32 (for envelopes; several times faster than float64)."""
    return np.exp(x.astype(np.float32)).astype(np.float64)


def glide_phase(freq: Wave, sample_rate: int) -> Wave:
    """Phase (cycles) of an oscillator whose frequency follows ``freq`` (Hz per sample)."""
    return np.cumsum(freq) / sample_rate


def pan(mono: Wave, position: float) -> Wave:
    """Equal-power pan of a mono signal, ``position`` in [-1, 1] → ``(n, 2)``; the centre is
    the signal itself on both sides."""
    angle = (min(max(position, -1.0), 1.0) + 1.0) * math.pi / 4.0
    return np.stack((mono * math.cos(angle), mono * math.sin(angle)), axis=1) * math.sqrt(2.0)


# -- envelopes --------------------------------------------------------------------------------


def adsr(
    n: int,
    sample_rate: int,
    attack: float,
    decay: float,
    sustain: float,
    gate: float,
    release: float,
) -> Wave:
    """Attack/decay/sustain while the gate (seconds) is held, then a release to zero."""
    t = np.arange(n) / sample_rate
    attack = max(attack, 1e-3)
    env = np.interp(t, (0.0, attack, attack + max(decay, 1e-3)), (0.0, 1.0, sustain))
    if release > 0:
        env *= np.clip(1.0 - (t - gate) / release, 0.0, 1.0) ** 2
    else:
        env[t >= gate] = 0.0
    return env


def decay_env(n: int, sample_rate: int, tau: float, attack: float = 0.0) -> Wave:
    """An exponential decay (time constant ``tau``) after an optional linear attack."""
    t = np.arange(n) / sample_rate
    env = expo(-t / max(tau, 1e-4))
    if attack > 0:
        env *= np.clip(t / attack, 0.0, 1.0)
    return env


# -- noise ------------------------------------------------------------------------------------


def noise(rng: Rng, n: int, channels: int = 1) -> Wave:
    """White Gaussian noise, ``(n,)`` or ``(n, channels)``."""
    if channels == 1:
        return rng.standard_normal(n)
    return rng.standard_normal((n, channels))


@functools.lru_cache(maxsize=128)
def _design(kind: str, edges: tuple[float, ...], sample_rate: int) -> NDArray[np.float64]:
    nyquist = sample_rate / 2
    clipped = tuple(min(max(e, 1.0), nyquist * 0.99) for e in edges)
    cutoff = clipped if len(clipped) == 2 else clipped[0]
    sos: NDArray[np.float64] = signal.butter(4, cutoff, btype=kind, fs=sample_rate, output="sos")
    return sos


def filtered(x: Wave, sample_rate: int, low_hz: float | None, high_hz: float | None) -> Wave:
    """``x`` through a high-pass at ``low_hz`` and/or a low-pass at ``high_hz`` (the same
    4th-order Butterworth sections as :mod:`audio.dsp.filters`, designs cached: voices call
    this hundreds of times a minute)."""
    if low_hz is not None and high_hz is not None:
        sos = _design("bandpass", (low_hz, high_hz), sample_rate)
    elif low_hz is not None:
        sos = _design("highpass", (low_hz,), sample_rate)
    elif high_hz is not None:
        sos = _design("lowpass", (high_hz,), sample_rate)
    else:
        return x
    return np.asarray(signal.sosfilt(sos, x, axis=0), dtype=np.float64)


def swept_noise(
    rng: Rng,
    n: int,
    sample_rate: int,
    points: Sequence[tuple[float, float]],
    octaves: float = 1.0,
    channels: int = 1,
) -> Wave:
    """Noise through a band (``octaves`` wide) whose centre follows ``points``: (fraction of
    the length, Hz) pairs, interpolated in log frequency. Done in the STFT domain."""
    nper = 1024 if sample_rate > 24000 else 512
    src = noise(rng, n + nper, channels)
    src = src if channels > 1 else src[:, None]
    freqs, times, spec = signal.stft(src.T, fs=sample_rate, nperseg=nper, noverlap=nper * 3 // 4)
    frac = np.clip(times / max(n / sample_rate, 1e-6), 0.0, 1.0)
    xs = np.array([p[0] for p in points])
    logs = np.log(np.array([p[1] for p in points]))
    centre = np.exp(np.interp(frac, xs, logs))
    width = max(octaves, 0.05) / 2.0
    distance = np.log2(np.maximum(freqs, 1.0)[:, None] / centre[None, :])
    mask = np.exp(-0.5 * (distance / width) ** 2)
    _, out = signal.istft(spec * mask[None], fs=sample_rate, nperseg=nper, noverlap=nper * 3 // 4)
    y = np.asarray(out, dtype=np.float64).T[:n]
    if y.shape[0] < n:
        y = np.pad(y, ((0, n - y.shape[0]), (0, 0)))
    return y if channels > 1 else y[:, 0]


def normalise(x: Wave, peak: float = 1.0) -> Wave:
    """``x`` scaled to ``peak`` (silence stays silent)."""
    top = float(np.max(np.abs(x))) if x.size else 0.0
    return x * (peak / top) if top > 0 else x


# -- voices -----------------------------------------------------------------------------------


def kick(
    sample_rate: int, rng: Rng, f_start: float, f_end: float, tau: float, click: float
) -> Wave:
    """A sine whose pitch drops from ``f_start`` to ``f_end``, with a noise click."""
    n = int(min(tau * 6, 1.2) * sample_rate)
    t = np.arange(n) / sample_rate
    freq = f_end + (f_start - f_end) * np.exp(-t / 0.03)
    body = np.sin(TAU * glide_phase(freq, sample_rate)) * decay_env(n, sample_rate, tau)
    body *= np.clip(t / 0.0015, 0.0, 1.0) ** 0.5 * 0.9 + 0.1
    if click > 0:
        tick = filtered(noise(rng, n), sample_rate, 1500.0, None) * decay_env(n, sample_rate, 0.004)
        body += click * normalise(tick)
    return normalise(body)


def snare(
    sample_rate: int,
    rng: Rng,
    tone_hz: float,
    tau: float,
    band: tuple[float, float],
    tone: float = 0.3,
) -> Wave:
    """A pitched body (two partials) under a band of noise."""
    n = int(min(tau * 6, 1.0) * sample_rate)
    t = np.arange(n) / sample_rate
    body = (np.sin(TAU * tone_hz * t) + 0.5 * np.sin(TAU * tone_hz * 1.78 * t)) * np.exp(-t / 0.05)
    rattle = filtered(noise(rng, n), sample_rate, band[0], band[1])
    rattle = normalise(rattle) * decay_env(n, sample_rate, tau, attack=0.0008)
    return normalise(tone * normalise(body) + (1 - tone) * rattle)


def clap(sample_rate: int, rng: Rng, tau: float = 0.12) -> Wave:
    """Three quick noise bursts then a short tail, band-passed around 1.2 kHz."""
    n = int(0.5 * sample_rate)
    t = np.arange(n) / sample_rate
    env = np.zeros(n)
    for offset in (0.0, 0.011, 0.023):
        env += np.where(t >= offset, np.exp(-np.maximum(t - offset, 0) / 0.006), 0.0)
    env += 0.6 * np.where(t >= 0.03, np.exp(-np.maximum(t - 0.03, 0) / tau), 0.0)
    return normalise(filtered(noise(rng, n), sample_rate, 800.0, 4000.0) * env)


_HAT_PARTIALS = (205.3, 304.4, 369.6, 522.7, 540.0, 800.0)


def hat(sample_rate: int, rng: Rng, tau: float, metal: float = 0.3) -> Wave:
    """High-passed noise with a metallic cluster of square partials."""
    n = int(min(tau * 7, 1.5) * sample_rate)
    t = np.arange(n) / sample_rate
    cluster = sum(np.sign(np.sin(TAU * f * 2.0 * t)) for f in _HAT_PARTIALS) / len(_HAT_PARTIALS)
    raw = (1 - metal) * noise(rng, n) + metal * np.asarray(cluster)
    hp = filtered(raw, sample_rate, min(7000.0, 0.4 * sample_rate), None)
    return normalise(hp * decay_env(n, sample_rate, tau, attack=0.0005))


def tom(sample_rate: int, rng: Rng, freq: float, tau: float = 0.28) -> Wave:
    """A pitched drum: a sine falling a fifth, with a soft stick noise."""
    n = int(tau * 5 * sample_rate)
    t = np.arange(n) / sample_rate
    glide = freq * (0.68 + 0.32 * np.exp(-t / 0.08))
    body = np.sin(TAU * glide_phase(glide, sample_rate)) * decay_env(n, sample_rate, tau, 0.001)
    stick = filtered(noise(rng, n), sample_rate, 300.0, 3000.0) * decay_env(n, sample_rate, 0.01)
    return normalise(normalise(body) + 0.25 * normalise(stick))


def crash(sample_rate: int, rng: Rng, tau: float = 1.1) -> Wave:
    """A cymbal crash: bright noise and metal, long decay."""
    n = int(min(tau * 4, 4.0) * sample_rate)
    t = np.arange(n) / sample_rate
    cluster = sum(np.sin(TAU * f * 3.1 * t) for f in _HAT_PARTIALS)
    raw = noise(rng, n) + 0.2 * np.asarray(cluster)
    hp = filtered(raw, sample_rate, min(3500.0, 0.4 * sample_rate), None)
    return normalise(hp * decay_env(n, sample_rate, tau, attack=0.002))


@dataclass(frozen=True)
class Partials:
    """A struck or plucked tone: partial frequency ratios, amplitudes and decay times (s)."""

    ratios: tuple[float, ...]
    amps: tuple[float, ...]
    taus: tuple[float, ...]
    attack: float = 0.002
    release: float = 0.25


def struck(spec: Partials, freq: float, gate: float, sample_rate: int) -> Wave:
    """A tone of decaying sine partials (piano, harp, marimba, bells); damped after ``gate``."""
    longest = max(spec.taus)
    seconds = min(gate + spec.release, longest * 4.0)
    n = max(int(seconds * sample_rate), 16)
    t = np.arange(n) / sample_rate
    out = np.zeros(n)
    for ratio, amp, tau in zip(spec.ratios, spec.amps, spec.taus, strict=True):
        f = freq * ratio
        if f < 0.45 * sample_rate:
            out += amp * sine(f * t + ratio / TAU) * expo(-t / tau)
    env = np.clip(t / spec.attack, 0.0, 1.0) * np.clip(1.0 - (t - gate) / spec.release, 0.0, 1.0)
    env *= np.clip((seconds - t) / 0.01, 0.0, 1.0)  # a long ring is cut after 4 decays: no click
    return out * env


@dataclass(frozen=True)
class Sustained:
    """A held tone from a wavetable: dark and bright harmonic sets crossfaded by the envelope,
    detuned voices, ADSR, optional vibrato."""

    dark: tuple[float, ...]
    bright: tuple[float, ...]
    attack: float
    decay: float
    sustain: float
    release: float
    detune_cents: float = 0.0
    voices: int = 1
    brightness: float = 0.5  # how bright while sustaining (0 dark .. 1 bright)
    vibrato: float = 0.0  # semitones
    vibrato_hz: float = 5.0


def sustained(spec: Sustained, freq: float, gate: float, sample_rate: int, stereo: bool) -> Wave:
    """A held tone, ``(n, 2)`` with voices spread left/right if ``stereo``, else ``(n,)``."""
    n = max(int((gate + spec.release) * sample_rate), 16)
    t = np.arange(n) / sample_rate
    env = adsr(n, sample_rate, spec.attack, spec.decay, spec.sustain, gate, spec.release)
    mix = np.clip(spec.brightness + (1 - spec.brightness) * (env - spec.sustain), 0.0, 1.0)
    if spec.vibrato:
        depth = spec.vibrato * np.clip((t - 0.2) / 0.3, 0.0, 1.0)
        bend = 2.0 ** (depth * sine(spec.vibrato_hz * t) / 12.0)
    else:
        bend = np.ones(n)
    dark = band_limit(spec.dark, freq * 1.03, sample_rate)
    bright = band_limit(spec.bright, freq * 1.03, sample_rate)
    out = np.zeros((n, 2)) if stereo else np.zeros(n)
    count = max(spec.voices, 1)
    for v in range(count):
        spread = 0.0 if count == 1 else (v / (count - 1)) * 2.0 - 1.0
        ratio = 2.0 ** (spread * spec.detune_cents / 1200.0)
        phase = glide_phase(freq * ratio * bend, sample_rate) + 0.37 * v + freq * 1e-3
        tone = (1 - mix) * wavetable(dark, phase) + mix * wavetable(bright, phase)
        if stereo:
            out += pan(tone, spread * 0.8)
        else:
            out += tone
    return out * (env / count)[:, None] if stereo else out * env / count


# -- room -------------------------------------------------------------------------------------


class Room:
    """A stereo convolution reverb from a seeded, exponentially decaying noise response."""

    def __init__(self, sample_rate: int, seconds: float, rng: Rng, damping_hz: float = 6000.0):
        n = max(int(seconds * sample_rate), 64)
        t = np.arange(n) / sample_rate
        tail = noise(rng, n, 2) * np.exp(-6.9 * t / seconds)[:, None]
        tail = filtered(tail, sample_rate, 120.0, min(damping_hz, 0.45 * sample_rate))
        predelay = int(0.012 * sample_rate)
        ir = np.concatenate((np.zeros((predelay, 2)), tail))
        self._ir = ir / np.sqrt(np.sum(ir**2, axis=0, keepdims=True))
        self._spectra: dict[int, NDArray[np.complex128]] = {}

    def apply(self, dry: Wave, wet: float) -> Wave:
        """``dry`` (``(n,)`` or ``(n, 2)``) plus its reverberation, ``(n + tail, 2)``."""
        stereo = dry if dry.ndim == 2 else np.stack((dry, dry), axis=1)
        if wet <= 0:
            return stereo
        send = stereo.mean(axis=1)
        size = send.shape[0] + self._ir.shape[0] - 1
        nfft = 1 << (size - 1).bit_length()  # powers of two: few sizes to keep spectra of
        spectrum = self._spectra.get(nfft)
        if spectrum is None:
            if len(self._spectra) >= 3:
                self._spectra.clear()
            spectrum = fft.rfft(self._ir, nfft, axis=0)
            self._spectra[nfft] = spectrum
        tail = fft.irfft(fft.rfft(send, nfft)[:, None] * spectrum, nfft, axis=0)[:size]
        out = tail * wet
        out[: stereo.shape[0]] += stereo
        return np.asarray(out, dtype=np.float64)


# -- time and pitch ---------------------------------------------------------------------------


def granular_stretch(x: Signal, factor: float, sample_rate: int, grain: float = 0.06) -> Signal:
    """Longer (``factor`` > 1) or shorter, same pitch: Hann grains at 75 % overlap, read at
    ``1/factor`` of the hop they are written at (overlap-add)."""
    if abs(factor - 1.0) < 1e-6 or x.shape[0] == 0:
        return x
    hop = max(int(grain * sample_rate) // 4, 8)
    size = hop * 4
    # a grain of silence first, so the opening attack is read at full window, not faded in
    src = x if x.ndim == 2 else x[:, None]
    src = np.concatenate((np.zeros((size, src.shape[1]), dtype=np.float32), src))
    lead = round(size * factor)
    n_out = math.ceil(src.shape[0] * factor)
    count = n_out // hop + 1
    starts = np.minimum(np.round(np.arange(count) * hop / factor), src.shape[0]).astype(np.int64)
    padded = np.concatenate((src, np.zeros((size, src.shape[1]), dtype=np.float32)))
    # a periodic Hann window sums to 2 at 75 % overlap
    window = ((0.5 - 0.5 * np.cos(TAU * np.arange(size) / size)) / 2.0).astype(np.float32)
    out = np.zeros(((count + 3) * hop, src.shape[1]), dtype=np.float32)
    for quarter in range(4):
        offsets = quarter * hop + np.arange(hop)
        pieces = padded[starts[:, None] + offsets[None, :]] * window[offsets][None, :, None]
        out[quarter * hop : (quarter + count) * hop] += pieces.reshape(count * hop, -1)
    out = out[lead:n_out]
    return out if x.ndim == 2 else out[:, 0]


def slow_down(x: Signal, sample_rate: int, stretch: float, semitones: float) -> Signal:
    """Bullet time: ``filters.stretch_pitch`` by ``semitones`` (tape-style, -7 st lengthens
    x1.498), then a granular stretch for the rest of ``stretch`` (x2 / x1.498 = x1.335) at the
    new pitch. The result is ``stretch`` x as long and ``semitones`` lower."""
    y = filters.stretch_pitch(x, semitones) if semitones else x
    done = y.shape[0] / max(x.shape[0], 1)
    return granular_stretch(y, stretch / done, sample_rate)


# -- stems and blocks -------------------------------------------------------------------------


def fit_channels(x: Wave, channels: int) -> Wave:
    """``x`` as ``(n, channels)``: mono is copied to both sides, stereo averaged to mono."""
    data = x if x.ndim == 2 else x[:, None]
    if data.shape[1] == channels:
        return data
    if channels == 1:
        return np.asarray(data.mean(axis=1, keepdims=True), dtype=np.float64)
    return np.repeat(data[:, :1], channels, axis=1)


def stem_chain(stem: StemSpec, sample_rate: int, *, stretch: bool = True) -> Callable[[Wave], Wave]:
    """What a stem does to each event (mono or stereo, channels kept): bullet-time stretch
    (if ``stretch``), high cut, muffling low-pass, one-octave band-pass (``filters``), then its
    level. The filters are linear and time-invariant, so filtering each event (with its
    ring-out) equals filtering the stem."""
    gain = db_to_gain(stem.level_db)
    slowed = stretch and (stem.time_stretch != 1.0 or stem.pitch_semitones != 0.0)
    filtering = any(f is not None for f in (stem.high_cut_hz, stem.low_pass_hz, stem.band_pass_hz))
    ring = int(0.05 * sample_rate)

    def chain(event: Wave) -> Wave:
        if not (slowed or filtering):
            return event * gain
        x = event.astype(np.float32)
        if slowed:
            x = slow_down(x, sample_rate, stem.time_stretch, stem.pitch_semitones)
        if filtering:
            x = np.concatenate((x, np.zeros((ring, *x.shape[1:]), dtype=np.float32)))
        if stem.high_cut_hz is not None:
            x = filters.lowpass(x, sample_rate, stem.high_cut_hz)
        if stem.low_pass_hz is not None:
            x = filters.lowpass(x, sample_rate, stem.low_pass_hz)
        if stem.band_pass_hz is not None:
            x = filters.bandpass_around(x, sample_rate, stem.band_pass_hz)
        return x.astype(np.float64) * gain

    return chain


@dataclass(frozen=True)
class Event:
    """Something that sounds from absolute frame ``start`` (may be negative): ``render`` gives
    its samples, ``(n,)`` or ``(n, channels)``, only when the first block reaches it; a mono
    event is panned (equal power, centre = the same signal on both sides) after the chain."""

    start: int
    render: Callable[[], Wave]
    pan: float = 0.0  # where a mono event sits in a stereo track


class EventTrack:
    """Overlap-adds events into consecutive blocks (call :meth:`render` with adjacent spans
    from frame 0). Only events still sounding are held, so memory follows the block, not the
    duration; each event is rendered once, so the output does not depend on the block size."""

    def __init__(
        self,
        events: Iterable[Event],
        channels: int,
        chain: Callable[[Wave], Wave] | None = None,
    ) -> None:
        self._events = sorted(events, key=lambda e: e.start)
        self._next = 0
        self._active: list[tuple[int, Wave]] = []
        self._channels = channels
        self._chain = chain

    def render(self, start: int, stop: int) -> Wave:
        """The sum of the events over frames ``[start, stop)``, ``(stop - start, channels)``."""
        out = np.zeros((stop - start, self._channels))
        while self._next < len(self._events) and self._events[self._next].start < stop:
            event = self._events[self._next]
            self._next += 1
            data = event.render()
            if self._chain is not None:
                data = self._chain(data)
            if data.ndim == 1 and self._channels == 2:
                data = pan(data, event.pan)
            self._active.append((event.start, fit_channels(data, self._channels)))
        keep: list[tuple[int, Wave]] = []
        for begin, data in self._active:
            lo, hi = max(start, begin), min(stop, begin + data.shape[0])
            if lo < hi:
                out[lo - start : hi - start] += data[lo - begin : hi - begin]
            if begin + data.shape[0] > stop:
                keep.append((begin, data))
        self._active = keep
        return out


def spans(total: int, sample_rate: int, block_seconds: float) -> Iterable[tuple[int, int]]:
    """Adjacent ``[start, stop)`` frame spans of ``block_seconds`` covering ``total`` frames."""
    if block_seconds <= 0:
        raise ValueError("block_seconds must be positive")
    size = max(1, round(block_seconds * sample_rate))
    for start in range(0, total, size):
        yield start, min(total, start + size)


def check_render_args(duration_seconds: float, sample_rate: int) -> int:
    """The frame count of a render; ``ValueError`` for a negative duration or a bad rate."""
    if sample_rate < 8000:
        raise ValueError("sample_rate must be at least 8000")
    if not math.isfinite(duration_seconds) or duration_seconds < 0:
        raise ValueError("duration_seconds must be a non-negative number")
    return round(duration_seconds * sample_rate)
