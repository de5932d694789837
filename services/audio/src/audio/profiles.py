"""The studio's audio rules (API.md, appendix "Audio profiles and mixing rules"): the labels a
request may use (French ones too), the profiles they build (tracks, levels, tempo, filters),
and the automix rules. Pure functions; the renderers in :mod:`audio.dsp` take the specs."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from audio.dsp.specs import MusicSpec, SfxSpec, StemSpec


def _fold(label: str) -> str:
    """``"Comédie "`` → ``"comedie"``, ``"sous l'eau"`` → ``"sous_l_eau"``: lower case, no
    accents, any other run of characters as one ``_``."""
    text = unicodedata.normalize("NFKD", label.strip().lower())
    text = "".join(c for c in text if not unicodedata.combining(c))
    return re.sub(r"[^a-z0-9]+", "_", text).strip("_")


@dataclass(frozen=True)
class Vocabulary:
    """The allowed values of one field, and the other labels (French, synonyms) each accepts."""

    name: str
    values: tuple[str, ...]
    aliases: Mapping[str, str] = field(default_factory=dict)

    def normalise(self, label: str) -> str:
        """The canonical value for ``label``; ``ValueError`` naming the allowed ones."""
        folded = _fold(label)
        for value in self.values:
            if folded == _fold(value):
                return value
        if folded in self.aliases:
            return self.aliases[folded]
        allowed = ", ".join(self.values)
        raise ValueError(f"unknown {self.name} {label!r}; allowed: {allowed}")


GENRES = Vocabulary(
    "genre",
    ("adventure", "drama", "horror", "documentary", "comedy", "sci-fi", "fantasy", "action"),
    {
        "aventure": "adventure",
        "drame": "drama",
        "dramatique": "drama",
        "horreur": "horror",
        "epouvante": "horror",
        "documentaire": "documentary",
        "comedie": "comedy",
        "science_fiction": "sci-fi",
        "scifi": "sci-fi",
        "sf": "sci-fi",
        "fantastique": "fantasy",
        "fantaisie": "fantasy",
    },
)
INTENSITIES = Vocabulary(
    "intensity",
    ("low", "medium", "high", "evolving"),
    {
        "faible": "low",
        "basse": "low",
        "bas": "low",
        "moyenne": "medium",
        "moyen": "medium",
        "haute": "high",
        "forte": "high",
        "elevee": "high",
        "critique": "high",
        "evolutive": "evolving",
        "evolutif": "evolving",
        "progressive": "evolving",
    },
)
MUSIC_ACTIONS = Vocabulary(
    "action",
    (
        "explosion",
        "bullet_time",
        "fight",
        "chase",
        "infiltration",
        "dialogue",
        "revelation",
        "tension",
        "calm",
        "emotional",
    ),
    {
        "ralenti": "bullet_time",
        "combat": "fight",
        "bagarre": "fight",
        "poursuite": "chase",
        "course_poursuite": "chase",
        "dialogues": "dialogue",
        "calme": "calm",
        "emotion": "emotional",
        "emotionnel": "emotional",
        "emouvant": "emotional",
    },
)
RHYTHMS = Vocabulary(
    "rhythm",
    ("slow", "normal", "fast", "hyper"),
    {"lent": "slow", "moyen": "normal", "rapide": "fast", "frenetique": "hyper"},
)
SFX_ACTIONS = Vocabulary(
    "action",
    ("explosion", "impact", "gunshot", "whoosh", "fight", "chase", "bullet_time", "footsteps"),
    {
        "coup_de_feu": "gunshot",
        "tir": "gunshot",
        "choc": "impact",
        "souffle": "whoosh",
        "combat": "fight",
        "poursuite": "chase",
        "ralenti": "bullet_time",
        "pas": "footsteps",
    },
)
ENVIRONMENTS = Vocabulary(
    "environment",
    ("city", "forest", "rain", "wind", "interior", "space", "underwater", "default"),
    {
        "ville": "city",
        "urbain": "city",
        "foret": "forest",
        "pluie": "rain",
        "vent": "wind",
        "interieur": "interior",
        "room": "interior",
        "espace": "space",
        "sous_marin": "underwater",
        "sous_l_eau": "underwater",
        "exterieur": "default",
    },
)
MUFFLINGS = Vocabulary(
    "muffling",
    ("none", "infiltration", "underwater", "slow_motion", "subjective"),
    {
        "aucun": "none",
        "sous_l_eau": "underwater",
        "sous_marin": "underwater",
        "ralenti": "slow_motion",
        "subjectif": "subjective",
    },
)
VOICE_GENDERS = Vocabulary(
    "gender", ("female", "male", "narrator"), {"femme": "female", "homme": "male"}
)
VOICE_KINDS = Vocabulary(
    "voice type",
    ("raw", "sung", "whisper", "styled"),
    {"brut": "raw", "chante": "sung", "chuchote": "whisper", "stylise": "styled"},
)
VOICE_STYLES = Vocabulary(
    "voice style",
    ("radio", "robot", "telephone", "deep_space", "corrupted"),
    {"espace": "deep_space", "corrompu": "corrupted"},
)
EMOTIONS = Vocabulary(
    "emotion",
    ("neutral", "happy", "sad", "angry", "fear", "surprised", "whisper", "deep", "robotic"),
    {
        "neutre": "neutral",
        "joyeux": "happy",
        "heureux": "happy",
        "triste": "sad",
        "colere": "angry",
        "peur": "fear",
        "surpris": "surprised",
        "chuchote": "whisper",
        "grave": "deep",
        "robotique": "robotic",
    },
)

# -- music ------------------------------------------------------------------------------------

MUSIC_LEVELS_DB = {
    "base": -3.0,
    "melody": 0.0,
    "percussion": -2.0,
    "bass": -4.0,
    "fx": -6.0,
    "drones": -8.0,
}


def music_bpm(action: str | None, rhythm: str | None) -> float:
    """fight/chase 145, bullet_time 70, tension 85; else a fast rhythm 140, hyper 160, slow 80;
    else any other action 110; no action 120."""
    by_action = {"fight": 145.0, "chase": 145.0, "bullet_time": 70.0, "tension": 85.0}
    if action in by_action:
        return by_action[action]
    by_rhythm = {"fast": 140.0, "hyper": 160.0, "slow": 80.0}
    if rhythm in by_rhythm:
        return by_rhythm[rhythm]
    return 110.0 if action is not None else 120.0


def music_spec(*, genre: str, intensity: str, action: str | None, rhythm: str | None) -> MusicSpec:
    stems = tuple(
        StemSpec(name, level, mono=name == "bass") for name, level in MUSIC_LEVELS_DB.items()
    )
    return MusicSpec(
        genre=genre,
        intensity=intensity,
        action=action,
        bpm=music_bpm(action, rhythm),
        stems=stems,
        gain_peak=action == "explosion",
        gain_drop=action == "bullet_time",
        slow_motion=action == "bullet_time",
    )


# -- sound effects ----------------------------------------------------------------------------

# Muffling context -> (low-pass Hz, band-pass centre Hz).
MUFFLING_FILTERS: dict[str, tuple[float | None, float | None]] = {
    "infiltration": (800.0, None),
    "underwater": (800.0, None),
    "slow_motion": (800.0, None),
    "subjective": (None, 1500.0),
}


def sfx_spec(
    *, action: str, intensity: str, environment: str | None, muffling: str | None
) -> SfxSpec:
    """``action`` +4 dB for explosion/impact (a 3 kHz high cut), +3 for gunshots, else 0;
    ``environment`` -12; ``stylized`` -6; ``bullet_time`` -3 (2 kHz high cut, x2 longer,
    -7 semitones). A muffling context filters every stem."""
    low_pass, band_pass = MUFFLING_FILTERS.get(muffling or "none", (None, None))
    action_level = {"explosion": 4.0, "impact": 4.0, "gunshot": 3.0}.get(action, 0.0)
    high_cut = 3000.0 if action in ("explosion", "impact") else None
    stems = (
        StemSpec(
            "action",
            action_level,
            high_cut_hz=high_cut,
            low_pass_hz=low_pass,
            band_pass_hz=band_pass,
        ),
        StemSpec("environment", -12.0, low_pass_hz=low_pass, band_pass_hz=band_pass),
        StemSpec("stylized", -6.0, low_pass_hz=low_pass, band_pass_hz=band_pass),
        StemSpec(
            "bullet_time",
            -3.0,
            high_cut_hz=2000.0,
            time_stretch=2.0,
            pitch_semitones=-7.0,
            low_pass_hz=low_pass,
            band_pass_hz=band_pass,
        ),
    )
    return SfxSpec(action=action, intensity=intensity, environment=environment, stems=stems)


# -- voice ------------------------------------------------------------------------------------

VOICE_LEVELS_DB = {"raw": 0.0, "sung": -3.0, "whisper": -6.0, "styled": 0.0}
WHISPER_GATE_DB = -40.0


def stem_dict(stem: StemSpec) -> dict[str, Any]:
    """A stem as the profile answer shows it (only the filters it has)."""
    shown: dict[str, Any] = {"name": stem.name, "level_db": stem.level_db, "mono": stem.mono}
    filters = {
        "high_cut_hz": stem.high_cut_hz,
        "low_pass_hz": stem.low_pass_hz,
        "band_pass_hz": stem.band_pass_hz,
    }
    shown["filters"] = {k: v for k, v in filters.items() if v is not None}
    if stem.time_stretch != 1.0 or stem.pitch_semitones != 0.0:
        shown["time_stretch"] = stem.time_stretch
        shown["pitch_semitones"] = stem.pitch_semitones
    return shown


# -- automix ----------------------------------------------------------------------------------

PRIORITIES = {"ambience": 1, "music": 2, "sfx": 3, "critical_sfx": 4, "dialogue": 5}
# Standard levels, dB: (base, min, max).
LEVELS: dict[str, tuple[float, float, float]] = {
    "impact": (4.0, -6.0, 6.0),
    "gunshot": (3.0, -6.0, 4.0),
    "ambience": (-16.0, -20.0, -12.0),
    "music_action": (-6.0, -12.0, 0.0),
    "music_tension": (-3.0, -9.0, 0.0),
    "music_emotion": (0.0, -6.0, 3.0),
    "dialogue": (0.0, -12.0, 3.0),
    "default": (-6.0, -60.0, 6.0),
}
CATEGORIES = tuple(LEVELS)
DUCKING = {"threshold_db": -20.0, "ratio": 4.0, "attack_ms": 10.0, "release_ms": 50.0}
SFX_MONO_BELOW_HZ = 120.0
BASS_MONO_BELOW_HZ = 80.0
MUTED_DB = -60.0
MASTER = {
    "limiter_dbfs": -1.0,
    "normalize_lufs": -16.0,
    "sample_rate": 48000,
    "channels": 2,
    "bit_depth": 24,
}


def _music_category(action: str | None) -> str:
    if action in ("fight", "chase", "explosion", "bullet_time"):
        return "music_action"
    if action in ("emotional", "revelation", "calm"):
        return "music_emotion"
    return "music_tension"


def categorise(record: Mapping[str, Any]) -> str:
    """The automix category of an audio record, from its type and profile."""
    kind, profile = record["type"], record.get("profile") or {}
    if kind == "voice":
        return "dialogue"
    if kind == "ambient":
        return "ambience"
    if kind == "sfx":
        return (
            "impact"
            if profile.get("action") in ("explosion", "impact")
            else ("gunshot" if profile.get("action") == "gunshot" else "default")
        )
    if kind == "music":
        return _music_category(profile.get("action"))
    if kind == "stem":
        source = profile.get("profile_type")
        if source == "voice":
            return "dialogue"
        if source == "sfx":
            stem = record.get("name")
            if stem == "environment":
                return "ambience"
            return categorise({"type": "sfx", "profile": profile})
        return _music_category(profile.get("action"))
    return "default"


def priority_of(category: str, record: Mapping[str, Any]) -> int:
    if category == "dialogue":
        return PRIORITIES["dialogue"]
    if category in ("impact", "gunshot"):
        return PRIORITIES["critical_sfx"]
    if category == "ambience":
        return PRIORITIES["ambience"]
    if category.startswith("music"):
        return PRIORITIES["music"]
    return PRIORITIES["sfx"] if record["type"] in ("sfx", "stem") else PRIORITIES["music"]


@dataclass(frozen=True)
class AutomixTrack:
    audio_id: str
    category: str
    priority: int
    volume_db: float
    pan: float
    effects: list[dict[str, Any]]
    mono: bool

    def public(self) -> dict[str, Any]:
        return {
            "audio_id": self.audio_id,
            "category": self.category,
            "priority": self.priority,
            "volume_db": self.volume_db,
            "pan": self.pan,
            "effects": self.effects,
        }


def automix(records: Sequence[Mapping[str, Any]]) -> tuple[dict[str, Any], list[str]]:
    """The configuration (without its id) and the warnings for ``records``.

    Sort by priority (highest first), set each track to its category's base level; with a
    dialogue track, duck every lower-priority track under the dialogue; SFX mono below
    120 Hz, bass mono below 80 Hz."""
    tracks: list[AutomixTrack] = []
    for record in records:
        category = categorise(record)
        priority = priority_of(category, record)
        effects: list[dict[str, Any]] = []
        is_sfx = record["type"] == "sfx" or (
            record["type"] == "stem" and (record.get("profile") or {}).get("profile_type") == "sfx"
        )
        if is_sfx:
            effects.append({"type": "mono_below", "frequency_hz": SFX_MONO_BELOW_HZ})
        if record["type"] == "stem" and record.get("name") == "bass":
            effects.append({"type": "mono_below", "frequency_hz": BASS_MONO_BELOW_HZ})
        tracks.append(
            AutomixTrack(
                audio_id=str(record["id"]),
                category=category,
                priority=priority,
                volume_db=LEVELS[category][0],
                pan=0.0,
                effects=effects,
                mono=record["channels"] == 1,
            )
        )
    tracks.sort(key=lambda t: -t.priority)
    keys = [t.audio_id for t in tracks if t.category == "dialogue"]
    top = max((t.priority for t in tracks if t.category == "dialogue"), default=None)
    ducked = [t.audio_id for t in tracks if top is not None and t.priority < top]
    for track in tracks:
        if track.audio_id in ducked:
            track.effects.append({"type": "duck", "key": "dialogue", **DUCKING})
    ducking = {"enabled": bool(keys and ducked), **DUCKING, "keys": keys, "ducked": ducked}
    warnings: list[str] = []
    loud = [t.audio_id for t in tracks if t.volume_db > 0.0 and t.volume_db > MUTED_DB]
    if loud:
        warnings.append(f"tracks above 0 dB: {', '.join(loud)}")
    if tracks and all(t.mono for t in tracks):
        warnings.append("all tracks are mono")
    if tracks and all(t.volume_db <= MUTED_DB for t in tracks):
        warnings.append("all tracks are muted")
    configuration = {
        "tracks": [t.public() for t in tracks],
        "master": dict(MASTER),
        "ducking": ducking,
    }
    return configuration, warnings
