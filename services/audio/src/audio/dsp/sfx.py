"""Procedural, deterministic sound effects in four stems and ambience beds (API.md appendix
"Audio profiles and mixing rules").

* ``action``: the effect itself, repeated as the intensity asks (explosions, impacts,
  gunshots, whooshes, fights, chases, footsteps);
* ``environment``: the ambience bed of ``spec.environment`` (see :func:`ambient_blocks`);
* ``stylized``: risers sweeping into the hits and whooshes after them;
* ``bullet_time``: the action's events slowed: ``filters.stretch_pitch`` by the stem's
  semitones (-7: x1.5 longer, lower), then a granular stretch to its ``time_stretch`` (x2).

Each stem's filters (high cut, muffling low-pass, one-octave band-pass) and level apply per
event (they are linear, so that equals filtering the stem). Events are scheduled from the
seed up front and rendered when a block reaches them, so memory follows the block and the
output does not depend on ``block_seconds``."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial

import numpy as np
from numpy.typing import NDArray

from audio.dsp import synth
from audio.dsp.specs import SfxSpec
from audio.dsp.synth import Event, EventTrack, Wave

SFX_STEMS = ("action", "environment", "stylized", "bullet_time")

Block = NDArray[np.float32]
Rng = np.random.Generator

_ACTION_PEAK = 0.32  # a full-strength hit, before the stem's level
_STYLIZED_PEAK = 0.45
_BULLET_TIME_SHARE = 1.0  # the slowed copy, before its stem level
_BED_LEVEL = 0.07  # an ambience bed's noise RMS (about -23 dBFS); its sounds scale with it
_FIRST_HIT_SECONDS = 0.5
_INTENSITY_GAP = {"low": 5.0, "medium": 3.0, "high": 1.6}  # mean seconds between hits
_INTENSITY_RATE = {"low": 0.5, "medium": 1.0, "high": 2.0}  # ambience events, x per minute
_INTENSITY_BED = {"low": 0.75, "medium": 1.0, "high": 1.3}


# -- action sounds ----------------------------------------------------------------------------


def _t(n: int, rate: int) -> Wave:
    return np.arange(n) / rate


def _thump(rate: int, n: int, f_start: float, f_end: float, tau: float, glide: float) -> Wave:
    """A low sine falling from ``f_start`` to ``f_end``, decaying with ``tau``."""
    t = _t(n, rate)
    freq = f_end + (f_start - f_end) * synth.expo(-t / glide)
    return synth.sine(synth.glide_phase(freq, rate)) * synth.decay_env(n, rate, tau, 0.0015)


def _burst(
    rng: Rng,
    rate: int,
    n: int,
    band: tuple[float | None, float | None],
    tau: float,
    attack: float = 0.0005,
) -> Wave:
    """A decaying band of noise."""
    top = None if band[1] is None else min(band[1], 0.45 * rate)
    noise = synth.filtered(synth.noise(rng, n), rate, band[0], top)
    return synth.normalise(noise) * synth.decay_env(n, rate, tau, attack)


def _explosion(rng: Rng, rate: int, size: float) -> Wave:
    """A sub thump, a blast of low noise, a long rumble and crackling debris."""
    n = int((2.5 + 1.5 * size) * rate)
    t = _t(n, rate)
    thump = _thump(rate, n, 90.0, 28.0, 0.9 * size + 0.3, 0.3)
    blast = _burst(rng, rate, n, (None, 2500.0), 0.25 * size + 0.05, 0.004)
    rumble = _burst(rng, rate, n, (None, 300.0), 1.2 * size + 0.3, 0.05)
    sparks = np.zeros(n)
    count = int(60 * size) + 5
    at = np.sort(rng.exponential(0.5 * size + 0.1, count))
    at = at[at < t[-1] - 0.05]
    sparks[(at * rate).astype(np.int64)] = rng.uniform(-1.0, 1.0, at.shape[0])
    debris = synth.filtered(sparks, rate, 1500.0, min(7000.0, 0.45 * rate))
    out = 1.0 * thump + 0.9 * blast + 0.7 * rumble + 0.35 * synth.normalise(debris)
    return synth.normalise(out)


def _impact(rng: Rng, rate: int, weight: float) -> Wave:
    """A low thump, a short noise burst and a woody knock."""
    n = int((0.5 + 0.6 * weight) * rate)
    thump = _thump(rate, n, 110.0 + 60 * (1 - weight), 45.0, 0.12 + 0.2 * weight, 0.05)
    burst = _burst(rng, rate, n, (200.0, 4000.0), 0.03 + 0.03 * weight)
    knock = synth.sine(180.0 * _t(n, rate)) * synth.decay_env(n, rate, 0.05)
    return synth.normalise(thump + 0.7 * burst + 0.3 * knock)


def _punch(rng: Rng, rate: int) -> Wave:
    """A close body blow: a short thump and a slap."""
    n = int(0.4 * rate)
    thump = _thump(rate, n, 150.0, 70.0, 0.08, 0.03)
    slap = _burst(rng, rate, n, (1000.0, 6000.0), 0.015, 0.0003)
    return synth.normalise(thump + 0.8 * slap)


def _gunshot(rng: Rng, rate: int) -> Wave:
    """A crack (sub-millisecond attack), a body, a low boom and an echoing tail."""
    n = int(1.2 * rate)
    crack = _burst(rng, rate, n, (1500.0, None), 0.01, 0.0002)
    body = _burst(rng, rate, n, (None, 3000.0), 0.02, 0.0002)
    boom = _thump(rate, n, 120.0, 60.0, 0.05, 0.02)
    tail = _burst(rng, rate, n, (300.0, 5000.0), 0.3, 0.02)
    return synth.normalise(crack + 0.5 * body + 0.4 * boom + 0.1 * tail)


def _whoosh(rng: Rng, rate: int, seconds: float, low: float, high: float) -> Wave:
    """Noise through a band swept up from ``low`` to ``high`` and back, swelling then gone."""
    n = int(seconds * rate)
    points = [(0.0, low), (0.55, min(high, 0.4 * rate)), (1.0, low * 1.2)]
    sweep = synth.swept_noise(rng, n, rate, points, 1.0)
    x = _t(n, rate) / seconds
    shape = np.sin(np.pi * np.clip(x, 0, 1) ** 0.8) ** 2
    return synth.normalise(sweep * shape)


def _passby(rng: Rng, rate: int, seconds: float) -> Wave:
    """A vehicle passing: an engine tone falling at the pass (Doppler) under road noise."""
    n = int(seconds * rate)
    x = _t(n, rate) / seconds
    bell = np.exp(-0.5 * ((x - 0.5) / 0.16) ** 2)
    engine_hz = 75.0 * (1.06 - 0.12 / (1 + np.exp(-(x - 0.5) * 14)))
    amps = synth.band_limit(synth.saw_amps(10, 0.25), 100.0, rate)
    engine = synth.wavetable(amps, synth.glide_phase(engine_hz, rate))
    road = synth.swept_noise(rng, n, rate, [(0.0, 500.0), (0.5, 1400.0), (1.0, 450.0)], 1.5)
    return synth.normalise((0.6 * engine + synth.normalise(road)) * bell)


def _step(rng: Rng, rate: int, heavy: float) -> Wave:
    """One footstep: heel thump, then a toe scuff."""
    n = int(0.25 * rate)
    heel = _thump(rate, n, 120.0, 70.0, 0.03, 0.01) + 0.6 * _burst(
        rng, rate, n, (400.0, 3000.0), 0.02
    )
    toe = np.zeros(n)
    lag = int(0.018 * rate)
    toe[lag:] = _burst(rng, rate, n - lag, (800.0, 5000.0), 0.025)
    return synth.normalise(heel * (0.6 + 0.4 * heavy) + 0.5 * toe)


def _heartbeat(rng: Rng, rate: int) -> Wave:
    """Lub-dub: two low thumps."""
    n = int(0.8 * rate)
    lub = _thump(rate, n, 70.0, 40.0, 0.08, 0.03)
    lag = int(float(rng.uniform(0.26, 0.3)) * rate)
    dub = np.zeros(n)
    dub[lag:] = 0.7 * _thump(rate, n - lag, 65.0, 38.0, 0.07, 0.03)
    return synth.normalise(lub + dub)


_SOUNDS: dict[str, Callable[[Rng, int], Wave]] = {
    "explosion": lambda rng, rate: _explosion(rng, rate, 1.0),
    "explosion_far": lambda rng, rate: _explosion(rng, rate, 0.6),
    "impact": lambda rng, rate: _impact(rng, rate, 1.0),
    "impact_light": lambda rng, rate: _impact(rng, rate, 0.4),
    "punch": _punch,
    "gunshot": _gunshot,
    "whoosh": lambda rng, rate: _whoosh(rng, rate, float(rng.uniform(0.45, 0.8)), 350.0, 3500.0),
    "swing": lambda rng, rate: _whoosh(rng, rate, float(rng.uniform(0.25, 0.4)), 500.0, 4500.0),
    "soft": lambda rng, rate: _whoosh(rng, rate, 0.9, 250.0, 1500.0) * 0.5,
    "passby": lambda rng, rate: _passby(rng, rate, float(rng.uniform(2.0, 3.0))),
    "step": lambda rng, rate: _step(rng, rate, 0.5),
    "run_step": lambda rng, rate: _step(rng, rate, 1.0),
    "heartbeat": _heartbeat,
}

# Per action: (first sound, follow-up sounds with weights, steady pace in seconds or 0).
_ACTIONS: dict[str, tuple[str, tuple[tuple[str, float], ...], float]] = {
    "explosion": ("explosion", (("explosion_far", 0.6), ("impact", 0.4)), 0.0),
    "impact": ("impact", (("impact", 0.7), ("impact_light", 0.3)), 0.0),
    "gunshot": ("gunshot", (("gunshot", 0.6), ("burst", 0.4)), 0.0),
    "whoosh": ("whoosh", (("whoosh", 0.7), ("swing", 0.3)), 0.0),
    "fight": ("punch", (("punch", 0.5), ("swing", 0.35), ("impact_light", 0.15)), 0.0),
    "chase": ("passby", (("passby", 0.4), ("whoosh", 0.3), ("impact_light", 0.3)), 0.0),
    "bullet_time": ("gunshot", (("whoosh", 0.6), ("gunshot", 0.4)), 0.0),
    "footsteps": ("step", (), 0.55),
    "tension": ("heartbeat", (), 0.0),
    "heartbeat": ("heartbeat", (), 0.0),
}
_ACTION_ALIASES = {
    "gunfire": "gunshot",
    "shot": "gunshot",
    "punch": "fight",
    "steps": "footsteps",
    "infiltration": "footsteps",
    "walk": "footsteps",
}


@dataclass(frozen=True)
class _Hit:
    time: float
    sound: str
    strength: float
    pan: float


def _intensity_at(
    intensity: str, fraction: float, table: dict[str, float], low: float, high: float
) -> float:
    if intensity == "evolving":
        return low + (high - low) * fraction
    return table.get(intensity, table["medium"])


def _schedule(action: str, intensity: str, duration: float, seed: int) -> list[_Hit]:
    """Every hit of the render, from the seed: the first at half a second (or a fifth of a
    short render), then follow-ups as often as the intensity says."""
    if duration <= 0:
        return []
    key = action.strip().lower()
    key = _ACTION_ALIASES.get(key, key)
    first, follow, pace = _ACTIONS.get(key, ("whoosh", (("whoosh", 1.0),), 0.0))
    rng = synth.generator(seed, 30)
    hits = [_Hit(min(_FIRST_HIT_SECONDS, 0.2 * duration), first, 1.0, 0.0)]
    if pace:  # a walk: steady steps, running when intense
        t = hits[0].time
        side = 1.0
        while True:
            fraction = t / duration
            step = pace * _intensity_at(
                intensity, fraction, {"low": 1.2, "medium": 1.0, "high": 0.6}, 1.2, 0.6
            )
            t += step * float(rng.uniform(0.94, 1.06))
            if t >= duration:
                break
            side = -side
            sound = "run_step" if step < 0.45 else "step"
            hits.append(_Hit(t, sound, float(rng.uniform(0.6, 0.9)), 0.12 * side))
        return hits
    if not follow:
        follow = ((first, 1.0),)
    names = [name for name, _ in follow]
    weights = np.array([w for _, w in follow])
    t = hits[0].time
    while True:
        gap = _intensity_at(intensity, t / duration, _INTENSITY_GAP, 5.0, 1.4)
        t += gap * float(rng.uniform(0.6, 1.4))
        if t >= duration:
            break
        sound = names[int(rng.choice(len(names), p=weights / weights.sum()))]
        strength = float(rng.uniform(0.55, 0.9))
        pan = float(rng.uniform(-0.6, 0.6))
        if sound == "burst":  # automatic fire: a few shots ten a second
            for i in range(int(rng.integers(3, 7))):
                hits.append(_Hit(t + i * 0.095, "gunshot", strength * (1 - 0.05 * i), pan))
        else:
            hits.append(_Hit(t, sound, strength, pan))
    return hits


def _hit_sound(hit: _Hit, index: int, seed: int, rate: int, share: float) -> Wave:
    rng = synth.generator(seed, 31, index)
    return _SOUNDS[hit.sound](rng, rate) * (hit.strength * _ACTION_PEAK * share)


def _stylized_sound(hit: _Hit, kind: str, seconds: float, index: int, seed: int, rate: int) -> Wave:
    """A riser that ends on the hit, or a whoosh flying off after it."""
    rng = synth.generator(seed, 32, index)
    n = max(int(seconds * rate), 64)
    x = _t(n, rate) / seconds
    if kind == "riser":
        top = min(7000.0, 0.4 * rate)
        sweep = synth.swept_noise(rng, n, rate, [(0.0, 300.0), (1.0, top)], 1.2, channels=2)
        shape = x**2.5 * np.clip((1.0 - x) * seconds / 0.01, 0.0, 1.0)
    else:
        sweep = synth.swept_noise(rng, n, rate, [(0.0, 4000.0), (1.0, 300.0)], 1.0, channels=2)
        shape = np.exp(-x * 4.0) * np.clip(x * seconds / 0.01, 0.0, 1.0)
    return synth.normalise(sweep * shape[:, None]) * (_STYLIZED_PEAK * hit.strength)


def _stylized_events(hits: list[_Hit], intensity: str, seed: int, rate: int) -> list[Event]:
    events: list[Event] = []
    previous = 0.0
    for i, hit in enumerate(hits):
        if hit.sound in ("step", "run_step", "heartbeat"):
            continue
        room = hit.time - previous
        if hit.time >= 0.2 and room >= 0.3:
            seconds = min(1.2, room * 0.8, hit.time)
            start = round(hit.time * rate) - round(seconds * rate)
            render = partial(_stylized_sound, hit, "riser", seconds, 2 * i, seed, rate)
            events.append(Event(start, render))
        if intensity in ("high", "evolving") and hit.strength >= 0.7:
            render = partial(_stylized_sound, hit, "tail", 0.6, 2 * i + 1, seed, rate)
            events.append(Event(round(hit.time * rate), render))
        previous = hit.time
    return events


# -- ambience ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Layer:
    """One strand of a bed: noise in a band (high-pass, low-pass), rain drops, or mains hum;
    its gain and its slow swell (depth 0..1, about ``rate`` Hz)."""

    band: tuple[float | None, float | None]
    gain: float
    depth: float = 0.2
    rate: float = 0.05
    kind: str = "noise"  # noise | drops | hum
    param: float = 0.0  # drops per second, or hum Hz


_BEDS: dict[str, tuple[_Layer, ...]] = {
    "city": (
        _Layer((None, 180.0), 1.0, 0.3, 0.05),
        _Layer((250.0, 1500.0), 0.45, 0.5, 0.08),
        _Layer((2000.0, 8000.0), 0.1, 0.2, 0.1),
    ),
    "forest": (
        _Layer((150.0, 900.0), 0.45, 0.6, 0.07),
        _Layer((2500.0, 9000.0), 0.22, 0.7, 0.25),
    ),
    "rain": (
        _Layer((600.0, 9000.0), 0.7, 0.1, 0.05),
        _Layer((None, 250.0), 0.5, 0.2, 0.04),
        _Layer((1500.0, 6000.0), 0.4, 0.3, 0.1, "drops", 600.0),
    ),
    "wind": (
        _Layer((200.0, 1200.0), 1.0, 0.8, 0.1),
        _Layer((650.0, 950.0), 0.5, 0.9, 0.15),
        _Layer((None, 120.0), 0.4, 0.5, 0.06),
    ),
    "interior": (
        _Layer((None, 600.0), 0.35, 0.1, 0.03),
        _Layer((1000.0, 5000.0), 0.05, 0.1, 0.05),
        _Layer((None, None), 0.06, 0.05, 0.02, "hum", 50.0),
    ),
    "space": (
        _Layer((None, 90.0), 1.0, 0.3, 0.04),
        _Layer((3000.0, 12000.0), 0.04, 0.3, 0.05),
        _Layer((None, None), 0.12, 0.4, 0.03, "hum", 55.0),
    ),
    "underwater": (
        _Layer((None, 400.0), 1.0, 0.5, 0.06),
        _Layer((80.0, 200.0), 0.5, 0.4, 0.09),
    ),
    "default": (
        _Layer((None, 1500.0), 0.4, 0.2, 0.04),
        _Layer((None, 200.0), 0.4, 0.2, 0.05),
    ),
}
# Occasional sounds per environment: (kind, per minute at medium intensity).
_AMBIENT_EVENTS: dict[str, tuple[tuple[str, float], ...]] = {
    "city": (("car", 8.0), ("horn", 1.5)),
    "forest": (("bird", 14.0), ("twig", 1.0)),
    "rain": (("thunder", 0.8),),
    "wind": (("gust", 3.0),),
    "interior": (("creak", 1.2),),
    "space": (("blip", 2.0), ("sweep", 0.5)),
    "underwater": (("bubbles", 10.0), ("moan", 0.5)),
    "default": (("bird", 1.5),),
}
_ENVIRONMENT_ALIASES = {
    "ville": "city",
    "urban": "city",
    "urbain": "city",
    "street": "city",
    "foret": "forest",
    "forêt": "forest",
    "jungle": "forest",
    "woods": "forest",
    "pluie": "rain",
    "storm": "rain",
    "vent": "wind",
    "desert": "wind",
    "interieur": "interior",
    "intérieur": "interior",
    "room": "interior",
    "indoor": "interior",
    "espace": "space",
    "sous_marin": "underwater",
    "sous_l_eau": "underwater",
    "exterieur": "default",
    "outdoor": "default",
}
_BED_HOP_SECONDS = 2.0
_BED_FADE_SECONDS = 0.25


def _environment_key(environment: str | None) -> str:
    if environment is None:
        return "default"
    key = environment.strip().lower().replace("-", "_").replace(" ", "_")
    key = _ENVIRONMENT_ALIASES.get(key, key)
    return key if key in _BEDS else "default"


def _bed_gain(intensity: str, t: Wave, duration: float) -> Wave:
    if intensity == "evolving":
        return 0.7 + 0.6 * np.clip(t / max(duration, 1e-6), 0.0, 1.0)
    return np.full(t.shape, _INTENSITY_BED.get(intensity, 1.0))


def _bed_grain(
    layers: tuple[_Layer, ...],
    start: int,
    size: int,
    fade: int,
    seed: int,
    rate: int,
    intensity: str,
    duration: float,
) -> Wave:
    """One flat-topped grain of the bed at absolute frames ``[start, start + size)``. Noise
    grains cross over with sine/cosine (constant power), hum with their squares (constant
    amplitude), so the joins are seamless."""
    rng = synth.generator(seed, 40, start)
    t = (start + np.arange(size)) / rate
    ramp = np.sin(0.5 * np.pi * (np.arange(fade) + 0.5) / fade)
    power = np.concatenate((ramp, np.ones(size - 2 * fade), ramp[::-1]))
    amplitude = power**2
    out = np.zeros((size, 2))
    for i, layer in enumerate(layers):
        phases = synth.generator(seed, 41, i).uniform(0, synth.TAU, 2)
        swell = 1.0 + layer.depth * (
            0.6 * synth.sine(layer.rate * t + phases[0] / synth.TAU)
            + 0.4 * synth.sine(2.7 * layer.rate * t + phases[1] / synth.TAU)
        )
        swell = np.maximum(swell, 0.05) * layer.gain
        if layer.kind == "hum":
            f = layer.param
            hum = synth.sine(f * t) + 0.5 * synth.sine(2 * f * t) + 0.25 * synth.sine(3 * f * t)
            out += (hum * swell * amplitude)[:, None] / 1.75
            continue
        low, high = layer.band
        high = None if high is None else min(high, 0.45 * rate)
        # white noise of unit variance keeps bandwidth / Nyquist of it through the band
        unit = math.sqrt(rate / 2 / max((high or rate / 2) - (low or 0.0), 1.0))
        if layer.kind == "drops":  # sparse impulses ringing the band: drops on leaves
            source = np.zeros((size, 2))
            count = rng.poisson(layer.param * size / rate, 2)
            for channel in range(2):
                where = rng.integers(0, size, count[channel])
                source[where, channel] = rng.uniform(-1.0, 1.0, count[channel])
            unit *= math.sqrt(3.0 * rate / layer.param)
        else:
            source = synth.noise(rng, size, 2)
        band = synth.filtered(source, rate, low, high)
        out += band * (swell * power * unit)[:, None]
    scale = _BED_LEVEL / math.sqrt(sum(layer.gain**2 for layer in layers))
    return out * (scale * _bed_gain(intensity, t, duration))[:, None]


def _ambient_sound(kind: str, rng: Rng, rate: int) -> Wave:
    """One occasional sound of a bed, stereo."""
    position = float(rng.uniform(-0.8, 0.8))
    if kind == "bird":
        n = int(1.2 * rate)
        out = np.zeros(n)
        at = 0.0
        f0 = float(rng.uniform(2500.0, 5000.0))
        for _ in range(int(rng.integers(2, 7))):
            length = float(rng.uniform(0.04, 0.12))
            m = int(length * rate)
            start = int(at * rate)
            if start + m >= n:
                break
            x = np.arange(m) / m
            freq = f0 * (1.0 + float(rng.uniform(-0.3, 0.5)) * x)
            chirp = synth.sine(synth.glide_phase(freq, rate)) * np.sin(np.pi * x) ** 2
            out[start : start + m] += chirp
            at += length + float(rng.uniform(0.04, 0.12))
        return synth.pan(out * 0.25, position)
    if kind == "twig":
        n = int(0.15 * rate)
        clicks = np.zeros(n)
        clicks[rng.integers(0, n // 2, 5)] = rng.uniform(-1, 1, 5)
        snap = synth.filtered(clicks, rate, 1200.0, min(8000.0, 0.45 * rate))
        return synth.pan(synth.normalise(snap) * 0.3, position)
    if kind == "car":
        seconds = float(rng.uniform(3.0, 5.0))
        mono = _passby(rng, rate, seconds) * 0.35
        sweep = np.linspace(-0.9, 0.9, mono.shape[0]) * (1 if rng.random() < 0.5 else -1)
        angle = (sweep + 1.0) * np.pi / 4.0
        return np.stack((mono * np.cos(angle), mono * np.sin(angle)), axis=1)
    if kind == "horn":
        n = int(0.4 * rate)
        t = _t(n, rate)
        amps = synth.band_limit(synth.square_amps(9, 0.2), 500.0, rate)
        tone = synth.wavetable(amps, 400.0 * t) + synth.wavetable(amps, 500.0 * t)
        env = np.clip(t / 0.01, 0, 1) * np.clip((t[-1] - t) / 0.03, 0, 1)
        return synth.pan(synth.filtered(tone * env, rate, None, 2500.0) * 0.06, position)
    if kind == "thunder":
        n = int(float(rng.uniform(3.0, 6.0)) * rate)
        t = _t(n, rate)
        rumble = _burst(rng, rate, n, (None, 350.0), 1.5, 0.02)
        swells = 0.6 + 0.4 * synth.sine(float(rng.uniform(0.5, 1.5)) * t + 0.25)
        crack = _burst(rng, rate, n, (400.0, 3000.0), 0.15, 0.002)
        return synth.pan(synth.normalise(rumble * swells + 0.4 * crack) * 0.5, position * 0.5)
    if kind == "gust":
        mono = _whoosh(rng, rate, float(rng.uniform(2.0, 3.5)), 400.0, 1300.0) * 0.35
        return synth.pan(mono, position)
    if kind == "creak":
        n = int(float(rng.uniform(0.5, 1.0)) * rate)
        t = _t(n, rate)
        pitch = float(rng.uniform(150.0, 300.0)) * (1 + 0.2 * np.sin(np.pi * t / t[-1]))
        grit = synth.wavetable(synth.saw_amps(20, 0.1), synth.glide_phase(pitch, rate))
        pulses = (synth.sine(synth.glide_phase(pitch / 5.0, rate)) > 0.7).astype(np.float64)
        creak = synth.filtered(grit * pulses, rate, 300.0, 3000.0) * np.sin(np.pi * t / t[-1])
        return synth.pan(synth.normalise(creak) * 0.12, position)
    if kind == "blip":
        n = int(0.5 * rate)
        out = np.zeros(n)
        for i in range(int(rng.integers(2, 4))):
            m, start = int(0.06 * rate), int(i * 0.12 * rate)
            f = float(rng.uniform(800.0, 2000.0))
            out[start : start + m] += synth.sine(f * _t(m, rate)) * np.hanning(m)
        return synth.pan(out * 0.08, position)
    if kind == "sweep":
        n = int(3.0 * rate)
        t = _t(n, rate)
        freq = 200.0 * 2 ** (2 * t / t[-1])
        tone = synth.sine(synth.glide_phase(freq, rate)) * np.sin(np.pi * t / t[-1]) ** 2
        return synth.pan(tone * 0.05, position)
    if kind == "bubbles":
        n = int(1.0 * rate)
        out = np.zeros(n)
        for _ in range(int(rng.integers(3, 11))):
            m = int(float(rng.uniform(0.02, 0.05)) * rate)
            start = int(rng.integers(0, n - m))
            f0 = float(rng.uniform(300.0, 1200.0))
            freq = f0 * (1 + 0.3 * np.arange(m) / m)
            decay = synth.decay_env(m, rate, m / rate / 3, 0.001)
            out[start : start + m] += synth.sine(synth.glide_phase(freq, rate)) * decay
        return synth.pan(out * 0.15, position)
    # moan: a distant whale-like call
    n = int(3.0 * rate)
    t = _t(n, rate)
    freq = 150.0 + 150.0 * np.sin(np.pi * t / t[-1]) + 5.0 * np.sin(synth.TAU * 4.0 * t)
    tone = synth.sine(synth.glide_phase(freq, rate)) * np.sin(np.pi * t / t[-1]) ** 2
    return synth.pan(tone * 0.06, position)


def _ambience_events(
    key: str, intensity: str, duration: float, seed: int, rate: int
) -> list[Event]:
    """The bed's grains and its occasional sounds, scheduled over the whole render."""
    layers = _BEDS[key]
    hop = round(_BED_HOP_SECONDS * rate)
    fade = round(_BED_FADE_SECONDS * rate)
    total = round(duration * rate)
    events = [
        Event(
            k * hop - fade,
            partial(
                _bed_grain,
                layers,
                k * hop - fade,
                hop + fade,
                fade,
                seed,
                rate,
                intensity,
                duration,
            ),
        )
        for k in range(math.ceil(total / hop) + 1)
    ]
    rng = synth.generator(seed, 42)
    top = 2.0 if intensity == "evolving" else _INTENSITY_RATE.get(intensity, 1.0)
    for j, (kind, per_minute) in enumerate(_AMBIENT_EVENTS[key]):
        count = int(rng.poisson(per_minute * top * duration / 60.0))
        times = np.sort(rng.uniform(0.0, duration, count))
        if intensity == "evolving":  # thin the schedule: sparse early, busy late
            keep = rng.random(count) < 0.15 + 0.85 * times / max(duration, 1e-6)
            times = times[keep]
        for i, at in enumerate(times):
            render = partial(_ambient_event, kind, (seed, 43, j, i), rate)
            events.append(Event(round(float(at) * rate), render))
    return events


def _ambient_event(kind: str, key: tuple[int, ...], rate: int) -> Wave:
    return _ambient_sound(kind, synth.generator(*key), rate) * (_BED_LEVEL / 0.1)


# -- public API -------------------------------------------------------------------------------


def sfx_blocks(
    spec: SfxSpec,
    *,
    duration_seconds: float,
    seed: int,
    sample_rate: int = 48000,
    block_seconds: float = 5.0,
) -> Iterator[dict[str, Block]]:
    """The stems of ``spec.stems``, block by block, ``round(duration_seconds * sample_rate)``
    frames in all: ``(frames, 2)`` float32 (``(frames, 1)`` for a mono stem), each at its
    level and filters. Deterministic for a seed and independent of ``block_seconds``.

    The first hit lands at 0.5 s (a fifth of a shorter render), then follow-ups about every
    5 s (low), 3 s (medium), 1.6 s (high), or ever more often (evolving); footsteps keep a
    walking pace, running when intense. A stem's ``time_stretch`` and ``pitch_semitones``
    apply to its events (bullet time), not to the environment's bed."""
    total = synth.check_render_args(duration_seconds, sample_rate)
    unknown = [s.name for s in spec.stems if s.name not in SFX_STEMS]
    if unknown:
        raise ValueError(f"unknown sfx stems {unknown}; expected some of {SFX_STEMS}")
    hits = _schedule(spec.action, spec.intensity, duration_seconds, seed)
    rate = sample_rate
    tracks: dict[str, EventTrack] = {}
    for stem in spec.stems:
        channels = 1 if stem.mono else 2
        if stem.name == "environment":
            events = _ambience_events(
                _environment_key(spec.environment), spec.intensity, duration_seconds, seed, rate
            )
            chain = synth.stem_chain(stem, rate, stretch=False)
        elif stem.name == "stylized":
            events = _stylized_events(hits, spec.intensity, seed, rate)
            chain = synth.stem_chain(stem, rate)
        else:
            share = _BULLET_TIME_SHARE if stem.name == "bullet_time" else 1.0
            events = [
                Event(
                    round(hit.time * rate), partial(_hit_sound, hit, i, seed, rate, share), hit.pan
                )
                for i, hit in enumerate(hits)
            ]
            chain = synth.stem_chain(stem, rate)
        tracks[stem.name] = EventTrack(events, channels, chain)
    for start, stop in synth.spans(total, rate, block_seconds):
        yield {name: _finish(track.render(start, stop)) for name, track in tracks.items()}


def ambient_blocks(
    *,
    environment: str | None,
    intensity: str,
    duration_seconds: float,
    seed: int,
    sample_rate: int = 48000,
    block_seconds: float = 5.0,
) -> Iterator[Block]:
    """An ambience bed, ``(frames, 2)`` float32 blocks, ``round(duration_seconds *
    sample_rate)`` frames in all: filtered-noise layers of the environment (city, forest,
    rain, wind, interior, space, underwater; anything else the default air) swelling slowly,
    with occasional seeded sounds (cars, birds, thunder, bubbles...). Noise near -23 dBFS RMS;
    intensity scales the level and how often things happen (evolving: growing)."""
    total = synth.check_render_args(duration_seconds, sample_rate)
    key = _environment_key(environment)
    track = EventTrack(
        _ambience_events(key, intensity, duration_seconds, seed, sample_rate), channels=2
    )
    for start, stop in synth.spans(total, sample_rate, block_seconds):
        yield _finish(track.render(start, stop))


def _finish(block: Wave) -> Block:
    return block.astype(np.float32)
