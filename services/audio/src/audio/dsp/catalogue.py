"""The voice catalogue without the engine: languages, emotions, voice types. Light (no numpy),
so the API validates a request without loading the speech engine or the signal libraries."""

from __future__ import annotations

from dataclasses import dataclass

from storycore_shared.contracts.voices import UnknownVoiceLanguage as UnknownVoiceLanguage
from storycore_shared.contracts.voices import resolve_language

# BCP-47 → espeak-ng voice (the file name under espeak-ng-data/lang); every one of them is in the
# data that espeakng-loader ships (the engine checks again when it starts).
ESPEAK_VOICES: dict[str, str] = {
    "fr-FR": "fr",
    "en-US": "en-us",
    "en-GB": "en",
    "es-ES": "es",
    "de-DE": "de",
    "it-IT": "it",
    "pt-BR": "pt-br",
    "pt-PT": "pt",
    "nl-NL": "nl",
    "ru-RU": "ru",
    "ja-JP": "ja",
    "zh-CN": "cmn",
    "ar": "ar",
    "hi-IN": "hi",
}
# The same codes as storycore_shared.contracts.voices.VOICE_LANGUAGES (tests/test_voice.py).
LANGUAGES: tuple[str, ...] = tuple(sorted(ESPEAK_VOICES))


def resolve(language: str, available: list[str] | tuple[str, ...] = LANGUAGES) -> str:
    """The code of ``available`` for ``language`` (the shared rule: case and ``_`` do not
    matter, a bare language stands for its only regional voice); ``UnknownVoiceLanguage``."""
    return resolve_language(language, available)


@dataclass(frozen=True)
class Emotion:
    """How an emotion bends the voice: semitones, a speed factor and a gain in dB."""

    pitch_semitones: float
    speed: float
    volume_db: float


EMOTIONS: dict[str, Emotion] = {
    "neutral": Emotion(0.0, 1.0, 0.0),
    "happy": Emotion(2.0, 1.1, 1.0),
    "sad": Emotion(-2.0, 0.85, -3.0),
    "angry": Emotion(1.0, 1.15, 3.0),
    "fear": Emotion(3.0, 1.2, -1.0),
    "surprised": Emotion(4.0, 1.05, 2.0),
    "whisper": Emotion(0.0, 0.9, -6.0),
    "deep": Emotion(-5.0, 0.9, 1.0),
    "robotic": Emotion(0.0, 0.95, 0.0),
}

VOICE_TYPES: dict[str, float] = {"raw": 0.0, "sung": -3.0, "whisper": -6.0, "styled": 0.0}

GENDERS: tuple[str, ...] = ("female", "male", "narrator")
