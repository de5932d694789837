"""The narration voices' languages: what the audio service speaks (its catalogue maps each code
to an espeak-ng voice, and a test checks they agree), and what a production may ask for, so a
language nobody speaks is a 422 when the production is requested, not a failure minutes later."""

from __future__ import annotations

# BCP-47 codes with a voice.
VOICE_LANGUAGES: tuple[str, ...] = (
    "ar",
    "de-DE",
    "en-GB",
    "en-US",
    "es-ES",
    "fr-FR",
    "hi-IN",
    "it-IT",
    "ja-JP",
    "nl-NL",
    "pt-BR",
    "pt-PT",
    "ru-RU",
    "zh-CN",
)


class UnknownVoiceLanguage(ValueError):
    """No voice speaks ``language``; ``available`` lists the BCP-47 codes that exist."""

    def __init__(self, language: str, available: list[str]) -> None:
        self.language = language
        self.available = sorted(available)
        super().__init__(
            f"no voice for language {language!r}; available: {', '.join(self.available)}"
        )


def resolve_language(
    language: str, available: list[str] | tuple[str, ...] = VOICE_LANGUAGES
) -> str:
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
