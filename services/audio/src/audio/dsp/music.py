"""Procedural, deterministic music in six stems (API.md appendix "Audio profiles and mixing
rules"): ``base`` (pads and an ostinato on a chord progression), ``melody`` (a phrased walk on
the mode's scale), ``percussion`` (kick on every beat, snare on 2 and 4, hats on
subdivisions), ``bass`` (mono, on the chord roots), ``fx`` (risers into phrase boundaries) and
``drones`` (a low pedal).

The whole score comes from the seed up front (a few thousand notes for ten minutes); blocks
then synthesise only what sounds in them (:class:`audio.dsp.synth.EventTrack`), each bar of
a stem rendered once, so the output is bit-identical whatever ``block_seconds`` is."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial

import numpy as np
from numpy.typing import NDArray

from audio.dsp import filters, synth
from audio.dsp.specs import MusicSpec
from audio.dsp.synth import Event, EventTrack, Partials, Room, Sustained, Wave

STEMS = ("base", "melody", "percussion", "bass", "fx", "drones")

Block = NDArray[np.float32]

_MODES: dict[str, tuple[int, ...]] = {
    "ionian": (0, 2, 4, 5, 7, 9, 11),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "phrygian": (0, 1, 3, 5, 7, 8, 10),
    "lydian": (0, 2, 4, 6, 7, 9, 11),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "aeolian": (0, 2, 3, 5, 7, 8, 10),
    "locrian": (0, 1, 3, 5, 6, 8, 10),
    "harmonic_minor": (0, 2, 3, 5, 7, 8, 11),
}
# Scale degrees (0-based) of one four-bar phrase, one chord a bar.
_PROGRESSIONS: dict[str, tuple[tuple[int, ...], ...]] = {
    "ionian": ((0, 4, 5, 3), (0, 5, 3, 4), (0, 3, 4, 0), (0, 3, 5, 4)),
    "mixolydian": ((0, 6, 3, 0), (0, 3, 6, 0), (0, 6, 5, 3)),
    "lydian": ((0, 1, 0, 1), (0, 1, 4, 0), (0, 1, 5, 4)),
    "dorian": ((0, 3, 0, 3), (0, 6, 3, 0), (0, 2, 3, 0), (0, 4, 3, 6)),
    "aeolian": ((0, 5, 2, 6), (0, 3, 4, 0), (0, 5, 3, 4), (0, 6, 5, 6), (0, 2, 5, 6)),
    "harmonic_minor": ((0, 3, 4, 0), (0, 5, 3, 4), (0, 5, 1, 4)),
    "phrygian": ((0, 1, 0, 6), (0, 1, 5, 1), (0, 6, 1, 0)),
    "locrian": ((0, 1, 0, 4), (0, 4, 1, 0), (0, 1, 4, 1)),
}

# -- instruments ------------------------------------------------------------------------------

_PIANO = Partials(
    ratios=(1.0, 2.001, 3.004, 4.009, 5.016, 6.025, 7.036, 8.05),
    amps=(1.0, 0.55, 0.3, 0.2, 0.12, 0.08, 0.05, 0.03),
    taus=(1.6, 1.0, 0.7, 0.5, 0.35, 0.25, 0.2, 0.15),
    release=0.3,
)
_HARP = Partials(
    ratios=(1.0, 2.0, 3.0, 4.0, 5.0, 6.0),
    amps=(1.0, 0.5, 0.3, 0.15, 0.08, 0.04),
    taus=(1.2, 0.6, 0.4, 0.25, 0.18, 0.12),
    release=0.6,
)
_MARIMBA = Partials(
    ratios=(1.0, 3.93, 9.2), amps=(1.0, 0.3, 0.08), taus=(0.45, 0.08, 0.03), attack=0.001,
    release=0.1,
)  # fmt: skip
_BELL = Partials(
    ratios=(1.0, 2.0, 2.76, 5.4, 8.93), amps=(1.0, 0.5, 0.45, 0.2, 0.08),
    taus=(2.4, 1.5, 1.0, 0.45, 0.2), attack=0.001, release=1.2,
)  # fmt: skip
_MUSIC_BOX = Partials(
    ratios=(1.0, 3.0, 5.2, 8.1), amps=(1.0, 0.25, 0.12, 0.05), taus=(1.4, 0.45, 0.2, 0.1),
    attack=0.001, release=0.8,
)  # fmt: skip
_PLUCK_BASS = Partials(
    ratios=(1.0, 2.0, 3.0, 4.0, 5.0), amps=(1.0, 0.45, 0.2, 0.1, 0.05),
    taus=(0.7, 0.35, 0.2, 0.12, 0.08), attack=0.003, release=0.08,
)  # fmt: skip
_WARM_PAD = Sustained(
    dark=synth.saw_amps(6, 0.4), bright=synth.saw_amps(14, 0.15), attack=0.45, decay=0.5,
    sustain=0.85, release=1.0, detune_cents=9, voices=2, brightness=0.4,
)  # fmt: skip
_SOFT_PAD = Sustained(
    dark=(1.0, 0.2, 0.05), bright=synth.saw_amps(8, 0.35), attack=0.7, decay=0.5, sustain=0.9,
    release=1.3, detune_cents=6, voices=2, brightness=0.3,
)  # fmt: skip
_DARK_PAD = Sustained(
    dark=synth.square_amps(7, 0.3), bright=synth.square_amps(15, 0.1), attack=0.9, decay=0.5,
    sustain=0.9, release=1.6, detune_cents=16, voices=3, brightness=0.25,
)  # fmt: skip
_ORGAN = Sustained(
    dark=(1.0, 0.6, 0.0, 0.35, 0.0, 0.2, 0.0, 0.15),
    bright=(1.0, 0.6, 0.2, 0.4, 0.1, 0.25, 0.0, 0.2),
    attack=0.015, decay=0.1, sustain=0.9, release=0.12, detune_cents=3, voices=2, brightness=0.5,
)  # fmt: skip
_STRINGS = Sustained(
    dark=synth.saw_amps(8, 0.3), bright=synth.saw_amps(24, 0.08), attack=0.25, decay=0.4,
    sustain=0.85, release=0.6, detune_cents=10, voices=3, brightness=0.5, vibrato=0.08,
)  # fmt: skip
_SUPERSAW = Sustained(
    dark=synth.saw_amps(12, 0.15), bright=synth.saw_amps(32), attack=0.08, decay=0.3,
    sustain=0.85, release=0.7, detune_cents=14, voices=4, brightness=0.6,
)  # fmt: skip
_BRASS = Sustained(
    dark=synth.saw_amps(5, 0.4), bright=synth.saw_amps(20, 0.05), attack=0.05, decay=0.25,
    sustain=0.8, release=0.15, detune_cents=5, voices=2, brightness=0.55, vibrato=0.2,
)  # fmt: skip
_SAW_LEAD = Sustained(
    dark=synth.saw_amps(10, 0.2), bright=synth.saw_amps(30), attack=0.01, decay=0.15,
    sustain=0.75, release=0.2, detune_cents=8, voices=2, brightness=0.7, vibrato=0.15,
)  # fmt: skip
_STAB = Sustained(
    dark=synth.saw_amps(6, 0.3), bright=synth.saw_amps(20, 0.05), attack=0.005, decay=0.12,
    sustain=0.5, release=0.08, detune_cents=10, voices=2, brightness=0.4,
)  # fmt: skip
_SUB_BASS = Sustained(
    dark=(1.0, 0.35, 0.12), bright=(1.0, 0.45, 0.25, 0.12), attack=0.01, decay=0.2, sustain=0.85,
    release=0.1, brightness=0.3,
)  # fmt: skip
_SAW_BASS = Sustained(
    dark=synth.saw_amps(6, 0.35), bright=synth.saw_amps(16, 0.1), attack=0.005, decay=0.2,
    sustain=0.7, release=0.08, brightness=0.3,
)  # fmt: skip

Voice = Partials | Sustained


@dataclass(frozen=True)
class _Kit:
    """Drum voices: kick (start Hz, end Hz, decay s, click), snare (tone Hz, decay s, band) or a
    clap, hats (decay s, metal), tom pitch, and each voice's level."""

    kick: tuple[float, float, float, float] = (150.0, 48.0, 0.32, 0.3)
    snare: tuple[float, float, float, float] | None = (185.0, 0.12, 1200.0, 8000.0)
    hat_tau: float = 0.035
    hat_metal: float = 0.3
    tom_hz: float = 110.0
    levels: tuple[float, float, float, float] = (1.0, 0.7, 0.22, 0.6)  # kick, snare, hat, tom


@dataclass(frozen=True)
class _Style:
    """What a genre sounds like: modes, keys (pitch classes), instruments, drums, the base's
    ostinato, room (reverb seconds, wet share) and feel."""

    modes: tuple[str, ...]
    tonics: tuple[int, ...]
    pad: Sustained
    lead: Voice
    lead_centre: int  # MIDI note the melody wanders around
    bass: Voice
    kit: _Kit
    ostinato: str  # arp | stabs | offbeat | pulse
    ostinato_voice: Voice
    room: float
    wet: float
    seventh: bool = False
    cluster: bool = False  # a minor second on every chord (horror)
    swing: float = 0.0  # beats an off-beat eighth is delayed by
    legato: float = 0.9  # held share of a melody note
    riser_tone: str | None = None  # saw | screech | shimmer
    drone: tuple[tuple[int, float], ...] = ((0, 1.0), (7, 0.5))  # (interval, gain)
    drone_voice: tuple[tuple[float, ...], tuple[float, ...]] = (
        (1.0, 0.3, 0.1),
        (1.0, 0.5, 0.3, 0.2, 0.1),
    )


_STYLES: dict[str, _Style] = {
    "drama": _Style(
        modes=("aeolian", "dorian"), tonics=(2, 9, 4, 7), pad=_WARM_PAD, lead=_PIANO,
        lead_centre=69, bass=_SUB_BASS,
        kit=_Kit(kick=(120.0, 50.0, 0.3, 0.15), snare=(180.0, 0.1, 1000.0, 6000.0),
                 levels=(0.9, 0.5, 0.16, 0.5)),
        ostinato="arp", ostinato_voice=_PIANO, room=2.0, wet=0.35, seventh=True,
    ),
    "documentary": _Style(
        modes=("dorian", "aeolian"), tonics=(0, 5, 7, 10), pad=_SOFT_PAD, lead=_HARP,
        lead_centre=69, bass=_SUB_BASS,
        kit=_Kit(kick=(120.0, 50.0, 0.28, 0.15), snare=(180.0, 0.09, 1000.0, 6000.0),
                 levels=(0.85, 0.45, 0.16, 0.5)),
        ostinato="arp", ostinato_voice=_MARIMBA, room=1.6, wet=0.3, seventh=True,
    ),
    "horror": _Style(
        modes=("phrygian", "locrian"), tonics=(1, 3, 8), pad=_DARK_PAD, lead=_MUSIC_BOX,
        lead_centre=79, bass=_SUB_BASS,
        kit=_Kit(kick=(75.0, 36.0, 0.35, 0.0), snare=(140.0, 0.2, 400.0, 2500.0), hat_tau=0.02,
                 hat_metal=0.6, tom_hz=70.0, levels=(1.0, 0.5, 0.12, 0.7)),
        ostinato="pulse", ostinato_voice=_DARK_PAD, room=3.0, wet=0.45, cluster=True,
        riser_tone="screech", drone=((0, 1.0), (6, 0.35), (13, 0.22)),
        drone_voice=(synth.square_amps(5, 0.3), synth.square_amps(11, 0.1)),
    ),
    "comedy": _Style(
        modes=("ionian", "mixolydian"), tonics=(0, 5, 7, 2), pad=_ORGAN, lead=_MARIMBA,
        lead_centre=72, bass=_PLUCK_BASS,
        kit=_Kit(kick=(130.0, 60.0, 0.2, 0.2), snare=(220.0, 0.05, 1500.0, 7000.0), hat_tau=0.02,
                 levels=(0.85, 0.5, 0.2, 0.5)),
        ostinato="offbeat", ostinato_voice=_ORGAN, room=0.8, wet=0.2, swing=0.16, legato=0.45,
    ),
    "action": _Style(
        modes=("aeolian", "harmonic_minor"), tonics=(4, 9, 2), pad=_STRINGS, lead=_BRASS,
        lead_centre=67, bass=_SAW_BASS,
        kit=_Kit(kick=(160.0, 45.0, 0.4, 0.35), snare=(200.0, 0.14, 1200.0, 9000.0),
                 levels=(1.0, 0.6, 0.22, 0.7)),
        ostinato="stabs", ostinato_voice=_STAB, room=1.4, wet=0.25,
        drone=((0, 1.0), (7, 0.5), (12, 0.3)),
        drone_voice=(synth.saw_amps(6, 0.3), synth.saw_amps(14, 0.1)),
    ),
    "adventure": _Style(
        modes=("dorian", "aeolian"), tonics=(2, 7, 0), pad=_STRINGS, lead=_BRASS,
        lead_centre=67, bass=_SAW_BASS,
        kit=_Kit(kick=(150.0, 48.0, 0.38, 0.3), snare=(190.0, 0.14, 1100.0, 8000.0),
                 tom_hz=90.0, levels=(1.0, 0.6, 0.2, 0.8)),
        ostinato="stabs", ostinato_voice=_STAB, room=1.8, wet=0.3,
    ),
    "sci-fi": _Style(
        modes=("lydian",), tonics=(0, 2, 5), pad=_SUPERSAW, lead=_SAW_LEAD, lead_centre=72,
        bass=_SAW_BASS,
        kit=_Kit(kick=(110.0, 42.0, 0.5, 0.2), snare=None, hat_tau=0.03, hat_metal=0.6,
                 levels=(1.0, 0.6, 0.2, 0.5)),
        ostinato="arp", ostinato_voice=_SAW_LEAD, room=2.2, wet=0.35, seventh=True,
        riser_tone="saw", drone=((0, 1.0), (7, 0.5), (14, 0.25)),
        drone_voice=(synth.saw_amps(8, 0.3), synth.saw_amps(20, 0.05)),
    ),
    "fantasy": _Style(
        modes=("dorian", "lydian"), tonics=(2, 4, 7, 9), pad=_SOFT_PAD, lead=_BELL,
        lead_centre=74, bass=_SUB_BASS,
        kit=_Kit(kick=(100.0, 50.0, 0.4, 0.1), snare=(200.0, 0.12, 900.0, 6000.0), tom_hz=85.0,
                 levels=(0.9, 0.5, 0.16, 0.8)),
        ostinato="arp", ostinato_voice=_HARP, room=2.6, wet=0.4, riser_tone="shimmer",
        drone=((0, 1.0), (7, 0.5), (12, 0.3)),
    ),
}  # fmt: skip

_GENRE_ALIASES = {"science-fiction": "sci-fi", "scifi": "sci-fi", "sci_fi": "sci-fi"}
_INTENSITY_DENSITY = {"low": 0.2, "medium": 0.55, "high": 0.85}
_ACTION_DENSITY = {
    "fight": 0.1,
    "chase": 0.1,
    "explosion": 0.08,
    "tension": -0.08,
    "infiltration": -0.08,
    "calm": -0.1,
    "dialogue": -0.08,
    "emotional": -0.05,
}
# Each stem's level before its StemSpec gain, so the six sum below full scale.
_TRIM = {"base": 0.17, "melody": 0.19, "percussion": 0.3, "bass": 0.22, "fx": 0.25, "drones": 0.2}
_PENTATONIC = (0, 2, 4, 7, 9)
_DRUMS = ("kick", "snare", "hat", "tom_hi", "tom_lo", "crash")
_PEAK_DB = 3.0
_DROP_DB = -10.0


def _divisor(rate: int, wanted: int) -> int:
    """``wanted`` if ``rate / wanted`` is a whole rate of at least 8 kHz, else smaller."""
    while wanted > 1 and (rate % wanted or rate // wanted < 8000):
        wanted //= 2
    return max(wanted, 1)


def _style_of(genre: str) -> _Style:
    key = genre.strip().lower()
    return _STYLES.get(_GENRE_ALIASES.get(key, key), _STYLES["drama"])


def _density(spec: MusicSpec, bar: int, bars: int) -> float:
    """How busy bar ``bar`` is, 0 (sparse) to 1 (dense)."""
    if spec.intensity == "evolving":
        base = 0.12 + 0.83 * bar / max(bars - 1, 1)
    else:
        base = _INTENSITY_DENSITY.get(spec.intensity, 0.55)
    return min(max(base + _ACTION_DENSITY.get(spec.action or "", 0.0), 0.05), 1.0)


def _tier(density: float) -> int:
    return 0 if density < 0.35 else (1 if density < 0.7 else 2)


# -- the score --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Note:
    beat: float  # absolute beat
    length: float  # beats held
    midi: float
    velocity: float
    voice: str
    pan: float = 0.0


@dataclass
class _Score:
    style: _Style
    tonic: int
    bars: int
    parts: dict[str, list[list[_Note]]] = field(default_factory=dict)
    fx: list[tuple[float, float, str]] = field(default_factory=list)  # beat, length, kind
    peak_beat: float | None = None
    drop_beat: float | None = None


def _nearest(pc: int, centre: float) -> int:
    """The MIDI note of pitch class ``pc`` nearest to ``centre``."""
    return int(pc + 12 * round((centre - pc) / 12))


class _Ladder:
    """The mode's notes over the keyboard, for stepwise walks."""

    def __init__(self, tonic: int, scale: tuple[int, ...]) -> None:
        self.midis = [tonic + s + 12 * octave for octave in range(11) for s in scale]

    def index_near(self, midi: float) -> int:
        return int(np.argmin(np.abs(np.array(self.midis) - midi)))


_CELLS: tuple[tuple[tuple[float, ...], ...], ...] = (
    ((2.0,), (1.5, 0.5), (1.0, 1.0), (2.0,)),
    ((1.0, 1.0), (0.5, 0.5, 1.0), (1.0, 0.5, 0.5), (1.5, 0.5), (0.5, 0.5, 0.5, 0.5)),
    (
        (0.5, 0.5, 0.5, 0.5),
        (0.25, 0.25, 0.5, 0.5, 0.5),
        (0.5, 0.25, 0.25, 0.5, 0.5),
        (0.25, 0.25, 0.25, 0.25, 0.5, 0.5),
        (0.75, 0.25, 0.5, 0.5),
    ),
)


def _rhythm(
    rng: np.random.Generator, tier: int, slow: bool, cadence: bool = False
) -> list[tuple[float, float]]:
    """Onsets and lengths (beats) of one bar of melody: two two-beat cells."""
    cells = _CELLS[tier]
    first = cells[int(rng.integers(len(cells)))]
    second = (2.0,) if cadence else cells[int(rng.integers(len(cells)))]
    out: list[tuple[float, float]] = []
    onset = 0.0
    for length in (*first, *second):
        out.append((onset, length))
        onset += length
    if slow:  # half the rhythmic density: everything twice as long, the bar keeps its first half
        out = [(o * 2, min(d * 2, 4.0 - o * 2)) for o, d in out if o * 2 < 4.0]
    return out


def _swung(beat: float, swing: float) -> float:
    return beat + swing if swing and abs((beat % 1.0) - 0.5) < 1e-9 else beat


class _Composer:
    """Writes the score of every stem from the seed."""

    def __init__(self, spec: MusicSpec, duration: float, seed: int) -> None:
        self.spec = spec
        self.style = _style_of(spec.genre)
        self.slow = spec.slow_motion
        beat_s = 60.0 / spec.bpm
        self.bars = max(1, math.ceil(duration / (4 * beat_s)))
        self.duration_beats = duration / beat_s
        harmony = synth.generator(seed, 1)
        mode = self.style.modes[int(harmony.integers(len(self.style.modes)))]
        self.scale = _MODES[mode]
        self.tonic = self.style.tonics[int(harmony.integers(len(self.style.tonics)))]
        pool = _PROGRESSIONS[mode]
        picks = harmony.permutation(len(pool))
        self.progressions = [pool[int(i)] for i in picks[:2]] if len(pool) > 1 else [pool[0]]
        self.ladder = _Ladder(self.tonic, self.scale)
        self.seed = seed
        self.density = [_density(spec, bar, self.bars) for bar in range(self.bars)]
        self.chords = [self._chord(bar) for bar in range(self.bars)]

    def _chord(self, bar: int) -> tuple[int, list[int]]:
        """(root pitch class, pitch classes) of bar ``bar``."""
        phrase, step = divmod(bar, 4)
        progression = self.progressions[(phrase // 2) % len(self.progressions)]
        degree = progression[step]
        if phrase % 2 == 1 and step == 3 and progression[3] == 0:
            degree = 4  # a half cadence on the second phrase of a pair
        tones = [0, 2, 4, 6] if self.style.seventh else [0, 2, 4]
        pcs = [(self.tonic + self.scale[(degree + t) % 7]) % 12 for t in tones]
        if self.style.cluster:
            pcs.append((pcs[0] + 1) % 12)
        return pcs[0], pcs

    def compose(self) -> _Score:
        score = _Score(self.style, self.tonic, self.bars)
        score.parts = {
            "base": [self._base(bar) for bar in range(self.bars)],
            "melody": self._melody(),
            "percussion": [self._drums(bar) for bar in range(self.bars)],
            "bass": [self._bass(bar) for bar in range(self.bars)],
        }
        target = 0.4 * self.duration_beats
        moment = 4.0 * round(target / 4.0) if self.bars >= 3 else float(round(target))
        if self.spec.gain_peak:
            score.peak_beat = moment
        if self.spec.gain_drop:
            score.drop_beat = moment
        score.fx = self._fx(score)
        return score

    # -- base: pads and an ostinato

    def _base(self, bar: int) -> list[_Note]:
        start = 4.0 * bar
        _, pcs = self.chords[bar]
        voicing = sorted(_nearest(pc, 60) for pc in pcs)
        tier = _tier(self.density[bar])
        style = self.style
        notes: list[_Note] = []
        pad_velocity = 0.55 if style.ostinato == "offbeat" and tier else 0.8
        for midi in voicing:
            notes.append(_Note(start, 4.0, midi, pad_velocity / len(voicing) ** 0.5, "pad"))
        if self.density[bar] < 0.45 and style.ostinato != "offbeat":
            return notes
        rng = synth.generator(self.seed, 2, bar)
        kind = style.ostinato
        step = 0.25 if tier == 2 else 0.5
        if self.slow:
            step *= 2
        if kind == "arp":
            ladder = [*voicing, *(m + 12 for m in voicing)]
            order = ladder if rng.random() < 0.5 else [*ladder, *ladder[-2:0:-1]]
            for i in range(int(4 / step)):
                notes.append(
                    _Note(
                        start + i * step,
                        step * 0.9,
                        order[i % len(order)] + 12,
                        0.55 if i % 2 else 0.7,
                        "ostinato",
                        0.3 * ((i % 3) - 1),
                    )
                )
        elif kind == "stabs":
            onsets = [0.0, 1.5, 3.0] if tier < 2 else [i * 0.5 for i in range(8)]
            for onset in onsets[:: 2 if self.slow else 1]:
                accent = 0.9 if onset in (0.0, 1.5, 3.0) else 0.55
                for midi in voicing[:3]:
                    notes.append(_Note(start + onset, 0.3, midi, accent / 2, "ostinato"))
        elif kind == "offbeat":
            onsets = [1.0, 3.0] if tier == 0 else [0.5, 1.5, 2.5, 3.5]
            for onset in onsets[:: 2 if self.slow else 1]:
                for midi in voicing[:3]:
                    notes.append(
                        _Note(start + _swung(onset, style.swing), 0.3, midi + 12, 0.45, "ostinato")
                    )
        else:  # pulse: a low dissonant throb
            root = _nearest(pcs[0], 48)
            for i in range(4 if tier < 2 else 8):
                onset = i * (1.0 if tier < 2 else 0.5) * (2 if self.slow else 1)
                if onset < 4.0:
                    for midi in (root, root + 1):
                        notes.append(_Note(start + onset, 0.4, midi, 0.45, "ostinato"))
        return notes

    # -- melody: phrases of motifs

    def _melody(self) -> list[list[_Note]]:
        rng = synth.generator(self.seed, 3)
        style = self.style
        ladder = self.ladder
        lo = ladder.index_near(style.lead_centre - 7)
        hi = ladder.index_near(style.lead_centre + 10)
        pos = ladder.index_near(style.lead_centre)
        motif: tuple[list[tuple[float, float]], list[int]] | None = None
        bars: list[list[_Note]] = []
        for bar in range(self.bars):
            phrase, step = divmod(bar, 4)
            tier = _tier(self.density[bar])
            rest_p = (0.3, 0.12, 0.05)[tier]
            if step == 0 and (motif is None or phrase % 2 == 0):
                rhythm = _rhythm(rng, tier, self.slow)
                motif = (
                    rhythm,
                    [
                        int(s)
                        for s in rng.choice(
                            [-2, -1, 1, 2, 3], len(rhythm), p=[0.2, 0.35, 0.3, 0.1, 0.05]
                        )
                    ],
                )
            assert motif is not None
            if step in (0, 2):
                rhythm, steps = motif
            else:
                rhythm = _rhythm(rng, tier, self.slow, cadence=step == 3)
                steps = [int(s) for s in rng.choice([-2, -1, 1, 2], len(rhythm))]
            _, chord = self.chords[bar]
            notes: list[_Note] = []
            for i, (onset, length) in enumerate(rhythm):
                pos = pos + steps[i]
                if pos > hi or pos < lo:
                    pos = pos - 2 * steps[i]
                pos = min(max(pos, lo), hi)
                last = step == 3 and i == len(rhythm) - 1
                if onset % 2 == 0 or last:
                    pos = self._chord_tone(pos, chord, lo, hi, prefer_root=last)
                if i > 0 and not last and rng.random() < rest_p:
                    continue
                velocity = (0.9 if onset % 1 == 0 else 0.75) + float(rng.uniform(-0.05, 0.05))
                beat = 4.0 * bar + _swung(onset, style.swing)
                notes.append(
                    _Note(
                        beat,
                        length * style.legato,
                        ladder.midis[pos],
                        velocity,
                        "lead",
                        float(rng.uniform(-0.2, 0.2)),
                    )
                )
            bars.append(notes)
        return bars

    def _chord_tone(self, pos: int, chord: list[int], lo: int, hi: int, prefer_root: bool) -> int:
        midis = self.ladder.midis
        targets = chord[:1] if prefer_root else chord
        for delta in (0, -1, 1, -2, 2, -3, 3):
            candidate = pos + delta
            if lo <= candidate <= hi and midis[candidate] % 12 in targets:
                return candidate
        return pos

    # -- percussion

    def _drums(self, bar: int) -> list[_Note]:
        start = 4.0 * bar
        density = self.density[bar]
        tier = _tier(density)
        rng = synth.generator(self.seed, 4, bar)
        swing = self.style.swing
        hits: list[tuple[float, str, float]] = []
        if self.slow:  # half time: kick on 1 and 3, snare on 3, hats on the beats
            hits += [(0.0, "kick", 1.0), (2.0, "kick", 0.8), (2.0, "snare", 0.9)]
            hat_step = 1.0 if tier < 2 else 0.5
        else:
            kick, back = (1.0, 0.75) if tier else (0.8, 0.45)
            hits += [(b, "kick", kick) for b in (0.0, 1.0, 2.0, 3.0)]
            hits += [(1.0, "snare", back), (3.0, "snare", back)]
            hat_step = (0.5, 0.5, 0.25)[tier]
        count = round(4.0 / hat_step)
        for i in range(count):
            beat = i * hat_step
            if tier == 0 and not self.slow and beat not in (1.5, 3.5):
                continue  # sparse: a hat after each backbeat only
            level = 0.8 if beat % 1.0 == 0.5 else (0.6 if beat % 1.0 == 0.0 else 0.45)
            hits.append((_swung(beat, swing), "hat", level + float(rng.uniform(-0.08, 0.08))))
        if tier == 2 and not self.slow:  # ghost snares
            for beat in (0.75, 2.75, 3.25):
                if rng.random() < 0.5:
                    hits.append((beat, "snare", 0.22))
        if bar % 4 == 3 and tier >= 1 and bar < self.bars - 1:  # a fill into the next phrase
            fill = (3.0, 3.5) if tier == 1 else (3.0, 3.25, 3.5, 3.75)
            for i, beat in enumerate(fill):
                hits.append((beat, "tom_hi" if i < len(fill) // 2 else "tom_lo", 0.8))
        if bar % 4 == 0 and bar > 0 and tier == 2:
            hits.append((0.0, "crash", 0.7))
        return [_Note(start + b, 0.0, 0.0, v, name) for b, name, v in hits]

    # -- bass

    def _bass(self, bar: int) -> list[_Note]:
        start = 4.0 * bar
        tier = _tier(self.density[bar])
        root = _nearest(self.chords[bar][0], 38)
        fifth = root + 7 if root + 7 <= 47 else root - 5
        following = _nearest(self.chords[(bar + 1) % self.bars][0], 38)
        style = self.style
        pattern: list[tuple[float, float, int, float]]  # onset, length, midi, velocity
        if tier == 0:
            pattern = [(0.0, 3.8, root, 0.9)]
        elif style.ostinato == "offbeat":  # oom-pah
            pattern = [
                (0.0, 0.45, root, 0.95),
                (1.0, 0.45, fifth, 0.7),
                (2.0, 0.45, root, 0.9),
                (3.0, 0.45, fifth, 0.7),
            ]
        elif tier == 1:  # quarter notes: root, root, fifth, a step into the next root
            approach = following - 1 if following > root else following + 2
            pattern = [
                (0.0, 0.9, root, 0.9),
                (1.0, 0.9, root, 0.9),
                (2.0, 0.9, fifth, 0.9),
                (3.0, 0.9, approach if bar % 2 else root, 0.9),
            ]
        else:
            pattern = [
                (i * 0.5, 0.4, root + (12 if i % 4 == 3 else 0), 0.9 if i % 2 == 0 else 0.7)
                for i in range(8)
            ]
        if self.slow:
            pattern = [
                (o * 2, min(d * 2, 4.0 - o * 2), m, v) for o, d, m, v in pattern if o * 2 < 4
            ]
        return [_Note(start + o, d, m, v, "bass") for o, d, m, v in pattern]

    # -- fx

    def _fx(self, score: _Score) -> list[tuple[float, float, str]]:
        events: list[tuple[float, float, str]] = []
        for boundary in range(4, self.bars + 1, 4):
            density = self.density[boundary - 1]
            tier = _tier(density)
            if tier == 0 and boundary % 8:
                continue
            length = 8.0 if tier == 2 else 4.0
            events.append((4.0 * boundary - length, length, "riser"))
            if tier == 2 and boundary < self.bars:
                events.append((4.0 * boundary, 4.0, "downlifter"))
        if score.peak_beat is not None:
            events.append((score.peak_beat, 8.0, "boom"))
        if score.drop_beat is not None:
            events.append((score.drop_beat, 4.0, "downlifter"))
        return sorted(events)


# -- rendering --------------------------------------------------------------------------------


class _Cache:
    """A small least-recently-used store of rendered notes, bounded in bytes."""

    def __init__(self, limit_bytes: int = 24 << 20) -> None:
        self._items: OrderedDict[tuple[object, ...], Wave] = OrderedDict()
        self._bytes = 0
        self._limit = limit_bytes

    def get(self, key: tuple[object, ...], make: Callable[[], Wave]) -> Wave:
        found = self._items.get(key)
        if found is not None:
            self._items.move_to_end(key)
            return found
        value = make()
        self._items[key] = value
        self._bytes += value.nbytes
        while self._bytes > self._limit and len(self._items) > 1:
            _, old = self._items.popitem(last=False)
            self._bytes -= old.nbytes
        return value


def _overlap(pieces: Sequence[tuple[int, NDArray[np.floating]]], stereo: bool) -> Wave:
    """Pieces added at their offsets into one buffer as long as the latest tail."""
    length = max(offset + piece.shape[0] for offset, piece in pieces)
    buffer = np.zeros((length, 2)) if stereo else np.zeros(length)
    for offset, piece in pieces:
        buffer[offset : offset + piece.shape[0]] += piece
    return buffer


class _Renderer:
    """Turns the score into per-stem event tracks. Tonal stems are synthesised at half the
    sample rate (drones at a quarter) and resampled up: the same sound for a fraction of the
    work, their content staying well below the lower Nyquist."""

    def __init__(self, spec: MusicSpec, score: _Score, seed: int, sample_rate: int) -> None:
        self.spec = spec
        self.score = score
        self.style = score.style
        self.rate = sample_rate
        self.q = _divisor(sample_rate, 2)
        self.low = sample_rate // self.q
        self.beat_s = 60.0 / spec.bpm
        self.seed = seed
        self.room = Room(sample_rate, self.style.room, synth.generator(seed, 5))
        self.room_low = Room(self.low, self.style.room, synth.generator(seed, 9))
        self.cache = _Cache()
        self.drums: dict[str, list[NDArray[np.float32]]] = {}

    def frame(self, beat: float) -> int:
        """The frame of an absolute beat: kicks on beat ``k`` start at ``round(k*60/bpm*sr)``."""
        return round(beat * self.beat_s * self.rate)

    def track(
        self, name: str, chain: Callable[[Wave], Wave], channels: int, transpose: float
    ) -> EventTrack:
        if name == "drones":
            return EventTrack(self._drone_events(transpose), channels, chain)
        if name == "fx":
            events = [
                Event(self.frame(b), partial(self._fx, b, length, kind, i))
                for i, (b, length, kind) in enumerate(self.score.fx)
            ]
            return EventTrack(events, channels, chain)
        bars = self.score.parts[name]
        events = [
            Event(self.frame(4.0 * bar), partial(self._bar, name, notes, bar, transpose))
            for bar, notes in enumerate(bars)
            if notes
        ]
        return EventTrack(events, channels, chain)

    # -- notes

    def _voice(self, note: _Note) -> Voice:
        style = self.style
        return {
            "pad": style.pad,
            "lead": style.lead,
            "ostinato": style.ostinato_voice,
            "bass": style.bass,
        }[note.voice]

    def _tone(self, voice: Voice, midi: float, gate: float, stereo: bool) -> Wave:
        key = (voice, midi, round(gate * self.low), stereo)

        def make() -> Wave:
            freq = synth.midi_to_hz(midi)
            if isinstance(voice, Partials):
                return synth.normalise(synth.struck(voice, freq, gate, self.low))
            return synth.normalise(synth.sustained(voice, freq, gate, self.low, stereo))

        return self.cache.get(key, make)

    def _drum(self, name: str, variant: int) -> NDArray[np.float32]:
        if name not in self.drums:
            rng = synth.generator(self.seed, 6, _DRUMS.index(name))
            kit = self.style.kit
            rate = self.rate
            takes: list[NDArray[np.float32]] = []
            for _ in range(3):
                if name == "kick":
                    raw, wet, where = synth.kick(rate, rng, *kit.kick) * kit.levels[0], 0.05, 0.0
                elif name == "snare":
                    if kit.snare is None:
                        raw = synth.clap(rate, rng)
                    else:
                        tone_hz, tau, low, high = kit.snare
                        raw = synth.snare(rate, rng, tone_hz, tau, (low, min(high, 0.45 * rate)))
                    raw, wet, where = raw * kit.levels[1], 0.3, 0.0
                elif name == "hat":
                    raw = synth.hat(rate, rng, kit.hat_tau, kit.hat_metal) * kit.levels[2]
                    wet, where = 0.0, 0.3
                elif name in ("tom_hi", "tom_lo"):
                    pitch = kit.tom_hz * (1.5 if name == "tom_hi" else 1.0)
                    raw, wet = synth.tom(rate, rng, pitch) * kit.levels[3], 0.3
                    where = -0.3 if name == "tom_hi" else 0.3
                else:
                    raw, wet, where = synth.crash(rate, rng) * 0.35, 0.2, -0.2
                take = self.room.apply(synth.pan(raw, where) / math.sqrt(2), wet)
                takes.append(take.astype(np.float32))  # held all render long: half the bytes
            self.drums[name] = takes
        takes = self.drums[name]
        return takes[variant % len(takes)]

    def _bar(self, name: str, notes: list[_Note], bar: int, transpose: float) -> Wave:
        """One bar of a stem, with every note's tail and the room."""
        origin = self.frame(4.0 * bar)
        if name == "percussion":
            drums = [
                (self.frame(n.beat) - origin, self._drum(n.voice, bar * 7 + i) * n.velocity)
                for i, n in enumerate(notes)
            ]
            return _overlap(drums, stereo=True) * _TRIM[name]
        mono = name == "bass"
        pieces: list[tuple[int, Wave]] = []
        for note in notes:
            offset = round((self.frame(note.beat) - origin) / self.q)
            voice = self._voice(note)
            stereo = not mono and note.voice in ("pad", "ostinato")
            tone = self._tone(voice, note.midi + transpose, note.length * self.beat_s, stereo)
            if tone.ndim == 1 and not mono:
                pieces.append((offset, synth.pan(tone, note.pan) * (note.velocity / math.sqrt(2))))
            else:
                pieces.append((offset, tone * note.velocity))
        buffer = _overlap(pieces, stereo=not mono)
        if not mono:
            buffer = self.room_low.apply(buffer, self.style.wet)
        up = filters.resample(buffer.astype(np.float32), self.low, self.rate)
        return up.astype(np.float64) * _TRIM[name]

    # -- fx

    def _fx(self, beat: float, length: float, kind: str, index: int) -> Wave:
        rng = synth.generator(self.seed, 7, index)
        rate = self.rate
        n = max(self.frame(beat + length) - self.frame(beat), 64)
        t = np.arange(n) / rate
        top = min(8000.0, 0.42 * rate)
        if kind == "riser":
            sweep = synth.swept_noise(rng, n, rate, [(0.0, 300.0), (1.0, top)], 1.2, channels=2)
            shape = (t / t[-1]) ** 2.5 * np.clip((t[-1] - t) / 0.015, 0.0, 1.0)
            out = synth.normalise(sweep) * shape[:, None]
            out += self._riser_tone(rng, n, shape)
        elif kind == "downlifter":
            sweep = synth.swept_noise(rng, n, rate, [(0.0, top * 0.7), (1.0, 200.0)], 1.2, 2)
            shape = np.exp(-t / (0.3 * t[-1])) * np.clip(t / 0.01, 0.0, 1.0)
            out = synth.normalise(sweep) * shape[:, None] * 0.8
        else:  # boom: a sub drop under a noise burst, for the gain peak
            freq = 28.0 + 50.0 * np.exp(-t / 0.5)
            sub = np.sin(synth.TAU * synth.glide_phase(freq, rate)) * np.exp(-t / 1.2)
            burst = synth.filtered(synth.noise(rng, n, 2), rate, None, 1800.0)
            burst = synth.normalise(burst) * np.exp(-t / 0.35)[:, None]
            out = synth.pan(sub, 0.0) / math.sqrt(2) + 0.6 * burst
            out = synth.normalise(out) * 1.5
        return np.asarray(out * _TRIM["fx"], dtype=np.float64)

    def _riser_tone(self, rng: np.random.Generator, n: int, shape: Wave) -> Wave:
        rate = self.rate
        kind = self.style.riser_tone
        t = np.arange(n) / rate
        base = synth.midi_to_hz(self.score.tonic + 60.0)
        if kind == "saw":
            freq = base * 2.0 ** (2.0 * t / t[-1])
            amps = synth.band_limit(synth.saw_amps(12, 0.1), base * 4, rate)
            tone = synth.wavetable(amps, synth.glide_phase(freq, rate))
            return synth.pan(tone * shape * 0.35, 0.0) / math.sqrt(2)
        if kind == "screech":
            out = np.zeros((n, 2))
            for i, cents in enumerate((0.0, 35.0, 80.0)):
                freq = base * 2.0 * 2.0 ** ((cents + 100.0 * t / t[-1]) / 1200.0)
                tone = np.sin(synth.TAU * synth.glide_phase(freq, rate))
                out += synth.pan(tone * (0.7 + 0.3 * np.sin(synth.TAU * 6.0 * t)), i - 1.0)
            return out * (shape * 0.12)[:, None]
        if kind == "shimmer":
            out = np.zeros((n, 2))
            for onset in np.sort(rng.uniform(0, t[-1], 12)):
                start = int(onset * rate)
                freq = synth.midi_to_hz(self.score.tonic + 84 + float(rng.choice(_PENTATONIC)))
                tone = synth.struck(_BELL, freq, 0.1, rate)[: n - start]
                out[start : start + tone.shape[0]] += synth.pan(tone, float(rng.uniform(-0.7, 0.7)))
            return out * 0.08 * (0.3 + shape)[:, None]
        return np.zeros((n, 2))

    # -- drones

    def _drone_events(self, transpose: float) -> list[Event]:
        """Flat-topped segments of the pedal, crossfading over half a second."""
        q = _divisor(self.rate, 4)
        hop = round(4.0 * self.rate / q) * q
        fade = round(0.5 * self.rate / q) * q
        end = self.score.bars * 4 * self.beat_s * self.rate
        rng = synth.generator(self.seed, 8)
        rates = rng.uniform(0.03, 0.12, 2)
        phases = rng.uniform(0, synth.TAU, 2)
        rise = np.sin(0.5 * math.pi * (np.arange(fade // q) + 0.5) / (fade // q)) ** 2
        window = np.concatenate((rise, np.ones((hop - fade) // q), 1.0 - rise))
        params = _DroneParams(q, rates, phases, window, transpose)
        return [
            Event(k * hop - fade, partial(self._drone_segment, k * hop - fade, params))
            for k in range(math.ceil(end / hop) + 1)
        ]

    def _drone_segment(self, start: int, p: _DroneParams) -> Wave:
        """The pedal over one segment: a pure function of absolute time, so segments whose
        crossfades sum to one give it back exactly."""
        low = self.rate // p.q
        t = (start // p.q + np.arange(p.window.shape[0], dtype=np.float64)) / low
        mix = 0.4 + 0.3 * synth.sine(p.rates[0] * t + p.phases[0])
        amp = (0.8 + 0.2 * synth.sine(p.rates[1] * t + p.phases[1])) * np.clip(t / 1.5, 0, 1)
        dark, bright = self.style.drone_voice
        root = _nearest(self.score.tonic, 38) + p.transpose
        out = np.zeros((t.shape[0], 2))
        for interval, gain in self.style.drone:
            freq = synth.midi_to_hz(root + interval)
            d = synth.band_limit(dark, freq, low)
            b = synth.band_limit(bright, freq, low)
            for side, cents in ((0, -4.0), (1, 4.0)):
                phase = freq * 2.0 ** (cents / 1200.0) * t + 0.1 * interval
                tone = synth.wavetable(d, phase)
                tone += mix * (synth.wavetable(b, phase) - tone)
                out[:, side] += gain * tone
        out *= (amp * p.window * _TRIM["drones"] / 1.6)[:, None]
        return filters.resample(out.astype(np.float32), low, self.rate).astype(np.float64)


@dataclass(frozen=True)
class _DroneParams:
    q: int
    rates: Wave
    phases: Wave
    window: Wave
    transpose: float


def _gain_curve(frames: Wave, total: int, rate: int, score: _Score, beat_s: float) -> Wave:
    """Fades, the explosion's swell-and-hit and bullet time's drop, on absolute frames."""
    t = frames / rate
    end = total / rate
    fade_out = min(1.0, 0.1 * end)
    gain = np.clip(t / 0.02, 0.0, 1.0) * np.clip((end - t) / max(fade_out, 1e-3), 0.0, 1.0)
    if score.peak_beat is not None:
        x = t - score.peak_beat * beat_s
        rise = np.clip(1.0 + x / beat_s, 0.0, 1.0)
        shape = np.where(x < 0, rise, np.exp(-np.maximum(x, 0) / (4 * beat_s)))
        gain = gain * (1.0 + (synth.db_to_gain(_PEAK_DB) - 1.0) * shape)
    if score.drop_beat is not None:
        x = t - score.drop_beat * beat_s
        hold = 8 * beat_s
        shape = np.clip(x / 0.25, 0.0, 1.0) * np.clip(1.0 - (x - hold) / (4 * beat_s), 0.0, 1.0)
        gain = gain * (1.0 - (1.0 - synth.db_to_gain(_DROP_DB)) * shape)
    return gain


def music_blocks(
    spec: MusicSpec,
    *,
    duration_seconds: float,
    seed: int,
    sample_rate: int = 48000,
    block_seconds: float = 5.0,
) -> Iterator[dict[str, Block]]:
    """The stems of ``spec.stems``, block by block (``block_seconds`` each, the last shorter),
    ``round(duration_seconds * sample_rate)`` frames in all: ``(frames, 2)`` float32, or
    ``(frames, 1)`` for a mono stem, each at its level and filters. Deterministic for a seed
    and independent of ``block_seconds``. The render fades in over 20 ms and out over its
    last second (a tenth of a shorter one); ``gain_peak`` swells +3 dB into a hit at 40 % of
    the duration (on a bar), ``gain_drop`` dips -10 dB there for two bars. A stem's
    ``time_stretch`` does not apply to music (the tempo is ``spec.bpm``); its
    ``pitch_semitones`` transposes its notes."""
    total = synth.check_render_args(duration_seconds, sample_rate)
    if spec.bpm <= 0:
        raise ValueError("bpm must be positive")
    unknown = [s.name for s in spec.stems if s.name not in STEMS]
    if unknown:
        raise ValueError(f"unknown music stems {unknown}; expected some of {STEMS}")
    score = _Composer(spec, duration_seconds, seed).compose()
    renderer = _Renderer(spec, score, seed, sample_rate)
    tracks = {
        stem.name: renderer.track(
            stem.name,
            synth.stem_chain(stem, sample_rate, stretch=False),
            1 if stem.mono else 2,
            stem.pitch_semitones if stem.name != "percussion" else 0.0,
        )
        for stem in spec.stems
    }
    beat_s = 60.0 / spec.bpm
    for start, stop in synth.spans(total, sample_rate, block_seconds):
        gain = _gain_curve(
            np.arange(start, stop, dtype=np.float64), total, sample_rate, score, beat_s
        )[:, None]
        yield {
            name: (track.render(start, stop) * gain).astype(np.float32)
            for name, track in tracks.items()
        }


def mix_stems(block: dict[str, Block]) -> Block:
    """The stereo sum of a block's stems; a mono stem goes to both channels."""
    frames = next(iter(block.values())).shape[0] if block else 0
    out = np.zeros((frames, 2), dtype=np.float32)
    for samples in block.values():
        out += samples if samples.shape[1] == 2 else samples[:, :1]
    return out
