"""The productions API's bodies and answers (API.md, "productions")."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)
from pydantic_core import PydanticCustomError

from storycore_shared.contracts.voices import UnknownVoiceLanguage, resolve_language
from storycore_shared.jobs.schemas import JobStatus
from storycore_shared.types import Int32, StrictBool, TextRules

Preset = Literal["youtube_1080p", "youtube_4k", "tiktok", "instagram_feed", "twitter", "custom"]
Quality = Literal["draft", "standard", "high"]
# The export presets' frame sizes (the video editor's own table; ``custom`` takes the request's).
PRESET_SIZES: dict[str, tuple[int, int]] = {
    "youtube_1080p": (1920, 1080),
    "youtube_4k": (3840, 2160),
    "tiktok": (1080, 1920),
    "instagram_feed": (1080, 1080),
    "twitter": (1280, 720),
}
Story = Annotated[str, StringConstraints(min_length=10, max_length=50_000), TextRules]
Title = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255), TextRules
]


def _voice_language(value: object) -> str:
    """One of the narration voices' languages (``fr`` and ``FR_fr`` read as ``fr-FR``); any
    other is a 422 naming them."""
    if not isinstance(value, str):
        raise PydanticCustomError("string_type", "Input should be a valid string")
    try:
        return resolve_language(value[:35])
    except UnknownVoiceLanguage as exc:
        raise PydanticCustomError(
            "enum", "{message}", {"message": str(exc), "allowed": list(exc.available)}
        ) from exc


Language = Annotated[str, BeforeValidator(_voice_language)]
Genre = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=60), TextRules
]


class VoiceOption(BaseModel):
    model_config = ConfigDict(extra="forbid")

    language: Language = "fr-FR"
    gender: Literal["female", "male", "narrator"] = "narrator"


class MusicOption(BaseModel):
    model_config = ConfigDict(extra="forbid")

    genre: Genre
    intensity: Literal["low", "medium", "high", "evolving"] = "medium"


class ProductionCreate(BaseModel):
    """A story (or one of the caller's scenarios) to turn into a film."""

    model_config = ConfigDict(extra="forbid")

    scenario_id: uuid.UUID | None = None
    story: Story | None = None
    title: Title | None = None
    shots_per_scene: Annotated[Int32, Field(ge=1, le=8)] = 3
    voice: VoiceOption | None = None
    music: MusicOption | None = None
    narration: StrictBool = True
    preset: Preset = "youtube_1080p"
    quality: Quality = "draft"
    # Only with the custom preset.
    width: Annotated[Int32, Field(ge=16, le=3840)] | None = None
    height: Annotated[Int32, Field(ge=16, le=3840)] | None = None
    fps: Annotated[Int32, Field(ge=1, le=60)] | None = None

    @model_validator(mode="after")
    def _one_source_and_a_size(self) -> ProductionCreate:
        if (self.scenario_id is None) == (self.story is None):
            raise ValueError("give exactly one of `story` and `scenario_id`")
        custom = self.width is not None or self.height is not None
        if self.preset == "custom" and (self.width is None or self.height is None):
            raise ValueError("the custom preset needs `width` and `height`")
        if self.preset != "custom" and custom:
            raise ValueError("`width` and `height` go with the custom preset only")
        return self

    def size(self) -> tuple[int, int]:
        if self.preset == "custom":
            assert self.width is not None  # checked above
            assert self.height is not None
            return self.width, self.height
        return PRESET_SIZES[self.preset]


StepKind = Literal["scenario", "storyboard", "narration", "music", "mix", "film"]
StepStatus = Literal["requested", "completed", "failed", "cancelled"]


class ProductionStep(BaseModel):
    key: str
    kind: StepKind
    # The id of what the step asked for: a sequence job, an audio record, an export.
    ref: uuid.UUID
    status: StepStatus
    # What the step needs or left: a narration's place in the film (start, duration), a
    # storyboard's shots, the scenario's id and title.
    detail: dict[str, Any]
    error: str | None = None
    requested_at: datetime
    finished_at: datetime | None = None
    seconds: float | None = None


class ProductionPublic(BaseModel):
    """A production: its job's state, its steps, and (once completed) every artefact."""

    id: uuid.UUID
    job_id: uuid.UUID
    project_id: uuid.UUID
    status: JobStatus
    progress: int
    current_step: str
    failed_step: str | None = None
    error: str | None = None
    steps: list[ProductionStep]
    result: dict[str, Any] | None = None
    request: dict[str, Any]
    job_url: str
    stream_url: str
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None


class ProductionsPublic(BaseModel):
    productions: list[ProductionPublic]
    total: int
    page: int
    page_size: int
