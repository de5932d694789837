"""The voice catalogue without the engine: languages, emotions, voice types. Light (no numpy),
so the API validates a request without loading the speech engine or the signal libraries."""

from __future__ import annotations

from dataclasses import dataclass

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
LANGUAGES: tuple[str, ...] = tuple(sorted(ESPEAK_VOICES))


class UnknownVoiceLanguage(ValueError):
    """No voice speaks ``language``; ``available`` lists the BCP-47 codes that exist."""

    def __init__(self, language: str, available: list[str]) -> None:
        self.language = language
        self.available = sorted(available)
        super().__init__(
            f"no voice for language {language!r}; available: {', '.join(self.available)}"
        )


def resolve(language: str, available: list[str] | tuple[str, ...] = LANGUAGES) -> str:
    """The code of ``available`` for ``language``: case and ``_`` do not matter, and a bare
    language (``fr``) stands for its only regional voice. Raises ``UnknownVoiceLanguage``."""
    wanted = language.strip().replace("_", "-").lower()
    by_lower = {code.lower(): code for code in available}
    if wanted in by_lower:
        return by_lower[wanted]
    if "-" not in wanted:
        regional = [code for code in available if code.lower().split("-")[0] == wanted]
        if len(regional) == 1:
            return regional[0]
    raise UnknownVoiceLanguage(language, list(available))


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
