"""What the renderers are asked to make: built from a profile (``audio.profiles``), read by
``audio.dsp.music`` and ``audio.dsp.sfx``. Plain frozen dataclasses, no suite types."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StemSpec:
    """One stem (track) of a profile, with the level and filters the profile gives it."""

    name: str
    level_db: float
    mono: bool = False
    high_cut_hz: float | None = None  # a low-pass ("high cut"), e.g. 3 kHz for explosions
    low_pass_hz: float | None = None  # muffling (infiltration, underwater, slow motion: 800 Hz)
    band_pass_hz: float | None = None  # centre of a one-octave band (subjective: 1.5 kHz)
    time_stretch: float = 1.0  # bullet time: x2, slower
    pitch_semitones: float = 0.0  # bullet time: -7


@dataclass(frozen=True)
class MusicSpec:
    """Six stems ``base, melody, percussion, bass, fx, drones``; genre picks the mode and
    timbres, intensity (low, medium, high, evolving) the density."""

    genre: str
    intensity: str
    action: str | None
    bpm: float
    stems: tuple[StemSpec, ...]
    gain_peak: bool = False  # explosion
    gain_drop: bool = False  # bullet_time
    slow_motion: bool = False  # bullet_time: a slow-motion rhythm


@dataclass(frozen=True)
class SfxSpec:
    """Four stems ``action, environment, stylized, bullet_time`` (or an ambience bed)."""

    action: str
    intensity: str
    environment: str | None
    stems: tuple[StemSpec, ...]
