from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Query
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)
from pydantic_core import PydanticCustomError

from audio import profiles
from audio.profiles import Vocabulary
from storycore_shared.types import FiniteFloat, Int64, TextRules

AudioType = Literal["voice", "music", "sfx", "ambient", "mix", "stem"]
Format = Literal["wav", "flac", "mp3", "ogg"]
BitDepth = Literal[16, 24]
FadeCurve = Literal["linear", "exponential", "s_curve"]
Status = Literal["pending", "processing", "completed", "failed", "cancelled"]


def _label(vocabulary: Vocabulary) -> BeforeValidator:
    """A field taking one of ``vocabulary``'s values or labels (French too), stored canonical;
    anything else is a 422 naming the allowed values."""

    def check(value: object) -> str:
        if not isinstance(value, str):
            raise PydanticCustomError("string_type", "Input should be a valid string")
        try:
            return vocabulary.normalise(value)
        except ValueError as exc:
            raise PydanticCustomError(
                "enum", "{message}", {"message": str(exc), "allowed": list(vocabulary.values)}
            ) from exc

    return BeforeValidator(check)


Genre = Annotated[str, _label(profiles.GENRES)]
Intensity = Annotated[str, _label(profiles.INTENSITIES)]
MusicAction = Annotated[str, _label(profiles.MUSIC_ACTIONS)]
Rhythm = Annotated[str, _label(profiles.RHYTHMS)]
SfxAction = Annotated[str, _label(profiles.SFX_ACTIONS)]
Environment = Annotated[str, _label(profiles.ENVIRONMENTS)]
Muffling = Annotated[str, _label(profiles.MUFFLINGS)]
Gender = Annotated[str, _label(profiles.VOICE_GENDERS)]
VoiceKind = Annotated[str, _label(profiles.VOICE_KINDS)]
VoiceStyle = Annotated[str, _label(profiles.VOICE_STYLES)]
Emotion = Annotated[str, _label(profiles.EMOTIONS)]
Language = Annotated[str, StringConstraints(min_length=2, max_length=35), TextRules]
Seconds = Annotated[FiniteFloat, Field(ge=0, le=3600)]
# How long a render (music, sfx, ambience) may be, and a mix, in seconds.
MIN_RENDER_SECONDS, MAX_RENDER_SECONDS = 1, 600
MAX_MIX_SECONDS = 3600
RenderSeconds = Annotated[FiniteFloat, Field(ge=MIN_RENDER_SECONDS, le=MAX_RENDER_SECONDS)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class VoiceOptions(Strict):
    language: Language = "fr-FR"
    gender: Gender = "female"
    type: VoiceKind = "raw"
    style: VoiceStyle | None = None
    emotion: Emotion = "neutral"
    pitch_semitones: Annotated[FiniteFloat, Field(ge=-12, le=12)] = 0.0
    speed: Annotated[FiniteFloat, Field(ge=0.5, le=2)] = 1.0

    @model_validator(mode="after")
    def _style_for_styled(self) -> VoiceOptions:
        if self.type == "styled" and self.style is None:
            raise ValueError(
                "a styled voice needs a style: " + ", ".join(profiles.VOICE_STYLES.values)
            )
        return self


class MusicOptions(Strict):
    genre: Genre = "drama"
    intensity: Intensity = "medium"
    action: MusicAction | None = None
    rhythm: Rhythm | None = None
    style: Annotated[str, StringConstraints(max_length=200), TextRules] | None = None


class SfxOptions(Strict):
    action: SfxAction = "impact"
    intensity: Intensity = "medium"
    environment: Environment | None = None
    muffling: Muffling | None = None


Text = Annotated[str, StringConstraints(min_length=1, max_length=5000), TextRules]


class RenderingRequest(Strict):
    project_id: uuid.UUID
    text: Text | None = None
    voice: VoiceOptions | None = None
    music: MusicOptions | None = None
    sfx: SfxOptions | None = None
    duration_seconds: RenderSeconds | None = None
    format: Format = "wav"
    bit_depth: BitDepth = 24
    seed: Annotated[Int64, Field(ge=0, le=2**32 - 1)] | None = None

    def _needs_text(self, kind: str) -> None:
        if kind == "voice" and self.text is None:
            raise ValueError("a voice needs its text (1 to 5000 characters)")


class GenerateRequest(RenderingRequest):
    audio_type: Literal["voice", "music", "sfx", "ambient"]

    @model_validator(mode="after")
    def _complete(self) -> GenerateRequest:
        self._needs_text(self.audio_type)
        return self


class MultitrackRequest(RenderingRequest):
    profile_type: Literal["music", "sfx", "voice"]

    @model_validator(mode="after")
    def _complete(self) -> MultitrackRequest:
        self._needs_text(self.profile_type)
        return self


class ProfileRequest(RenderingRequest):
    """``build-profile``: the multitrack body; the text may be left out."""

    profile_type: Literal["music", "sfx", "voice"]


class MixTrackIn(Strict):
    audio_id: uuid.UUID
    volume: Annotated[FiniteFloat, Field(ge=0, le=2)] = 1.0
    pan: Annotated[FiniteFloat, Field(ge=-1, le=1)] = 0.0
    fade_in_seconds: Seconds = 0.0
    fade_out_seconds: Seconds = 0.0
    fade_curve: FadeCurve = "linear"
    start_time_seconds: Seconds = 0.0
    trim_start_seconds: Seconds | None = None
    trim_end_seconds: Seconds | None = None
    category: Annotated[str, StringConstraints(max_length=40), TextRules] | None = None

    @model_validator(mode="after")
    def _trims(self) -> MixTrackIn:
        start = self.trim_start_seconds or 0.0
        if self.trim_end_seconds is not None and self.trim_end_seconds <= start:
            raise ValueError("trim_end_seconds must be after trim_start_seconds")
        if self.category is not None and self.category not in profiles.CATEGORIES:
            raise ValueError("unknown category; allowed: " + ", ".join(profiles.CATEGORIES))
        return self


class MixRequest(Strict):
    project_id: uuid.UUID
    tracks: Annotated[list[MixTrackIn], Field(min_length=2, max_length=32)]
    output_format: Format = "wav"
    bit_depth: BitDepth = 24
    output_duration_seconds: Annotated[FiniteFloat, Field(gt=0, le=MAX_MIX_SECONDS)] | None = None
    sample_rate: Literal[22050, 32000, 44100, 48000] = 48000
    channels: Literal["mono", "stereo"] = "stereo"
    normalize_lufs: Annotated[FiniteFloat, Field(ge=-40, le=-5)] | None = -16.0
    ducking: Literal["auto", "off"] = "auto"

    @model_validator(mode="after")
    def _distinct(self) -> MixRequest:
        ids = [t.audio_id for t in self.tracks]
        if len(set(ids)) != len(ids):
            raise ValueError("a track appears twice; give each audio_id once")
        return self


class AutomixRequest(Strict):
    project_id: uuid.UUID
    track_ids: Annotated[list[uuid.UUID], Field(min_length=1, max_length=32)]


class ExportMixRequest(Strict):
    project_id: uuid.UUID
    configuration_id: uuid.UUID
    format: Format = "wav"
    bit_depth: BitDepth = 24


class AudioPublic(BaseModel):
    id: uuid.UUID
    project_id: uuid.UUID
    type: AudioType
    name: str | None = None
    format: Format
    duration_seconds: float | None
    sample_rate: int
    channels: int
    file_size_bytes: int | None
    file_url: str | None
    loudness_lufs: float | None
    peak_dbfs: float | None
    status: Status
    job_id: uuid.UUID
    job_url: str
    profile: dict[str, Any] | None = None
    multitrack_id: uuid.UUID | None = None
    error: str | None = None
    created_at: datetime


class AudiosPublic(BaseModel):
    audio_files: list[AudioPublic]
    total: int
    page: int
    page_size: int


class MultitrackPublic(BaseModel):
    multitrack_id: uuid.UUID
    job_id: uuid.UUID
    tracks: list[AudioPublic]


class AutomixPublic(BaseModel):
    configuration: dict[str, Any]
    warnings: list[str]


class WaveformPublic(BaseModel):
    audio_id: uuid.UUID
    duration_seconds: float
    sample_count: int
    samples_per_second: float
    waveform: list[float]
    peak_amplitude: float


class AudiowaveformPublic(BaseModel):
    """The audiowaveform JSON v2 shape that peaks.js reads."""

    version: int
    channels: int
    sample_rate: int
    samples_per_pixel: int
    bits: int
    length: int
    data: list[int]


SamplesPerSecond = Annotated[int, Query(ge=1, le=1000)]
MaxPoints = Annotated[int, Query(ge=1, le=100_000)]
