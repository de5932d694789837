from __future__ import annotations

from storycore_shared.errors import Conflict, NotFound, Unprocessable


class AudioNotFound(NotFound):
    code = "audio_not_found"
    title = "Audio not found"


class AudioNotReady(Conflict):
    code = "audio_not_ready"
    title = "The audio is not rendered"


class ConfigurationNotFound(NotFound):
    code = "mix_configuration_not_found"
    title = "Mix configuration not found"


class LanguageNotAvailable(Unprocessable):
    code = "voice_language_not_available"
    title = "No voice speaks this language"


class TrackNotMixable(Unprocessable):
    code = "track_not_mixable"
    title = "A track cannot be mixed as asked"
