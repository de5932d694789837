"""Request and answer models of media, imports, storyboards and exports (the timeline's own are
in :mod:`video_editor.timeline_schemas`)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from storycore_shared.types import FiniteFloat, Int32

MediaKind = Literal["video", "audio", "image"]
Preset = Literal["youtube_1080p", "youtube_4k", "tiktok", "instagram_feed", "twitter", "custom"]
ExportFormat = Literal["mp4", "webm", "gif"]
Quality = Literal["draft", "standard", "high"]
Status = Literal["pending", "processing", "completed", "failed", "cancelled"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MediaPublic(BaseModel):
    id: uuid.UUID
    timeline_id: uuid.UUID
    kind: MediaKind
    name: str
    content_type: str
    size: int
    duration_seconds: float | None
    width: int | None
    height: int | None
    fps: float | None
    has_audio: bool
    source: Literal["upload", "keyframe", "audio"]
    file_url: str
    thumbnail_url: str
    created_at: datetime


class MediaListPublic(BaseModel):
    media: list[MediaPublic]


class KeyframeImport(Strict):
    source: Literal["keyframe"]
    sequence_job_id: uuid.UUID
    index: Annotated[Int32, Field(ge=0, le=999)]


class AudioImport(Strict):
    source: Literal["audio"]
    audio_id: uuid.UUID


MediaImport = Annotated[KeyframeImport | AudioImport, Field(discriminator="source")]


class FromSequenceRequest(Strict):
    sequence_job_id: uuid.UUID
    audio_id: uuid.UUID | None = None


class ExportRange(Strict):
    start: Annotated[FiniteFloat, Field(ge=0, le=86400)]
    end: Annotated[FiniteFloat, Field(gt=0, le=86400)]

    @model_validator(mode="after")
    def _ordered(self) -> ExportRange:
        if self.end <= self.start:
            raise ValueError("range.end must be after range.start")
        return self


class ExportRequest(Strict):
    preset: Preset = "youtube_1080p"
    format: ExportFormat = "mp4"
    width: Annotated[Int32, Field(ge=16, le=7680)] | None = None
    height: Annotated[Int32, Field(ge=16, le=4320)] | None = None
    fps: Annotated[FiniteFloat, Field(ge=1, le=120)] | None = None
    quality: Quality = "standard"
    # How a picture of another shape fills the frame: cropped ("cover") or with bars.
    fit: Literal["cover", "letterbox"] = "cover"
    range: ExportRange | None = None

    @model_validator(mode="after")
    def _custom_size(self) -> ExportRequest:
        if self.preset == "custom" and (self.width is None or self.height is None):
            raise ValueError("the custom preset needs width and height")
        return self


class ExportPublic(BaseModel):
    id: uuid.UUID
    timeline_id: uuid.UUID
    project_id: uuid.UUID
    status: Status
    preset: str
    format: ExportFormat
    quality: Quality
    file_url: str | None
    size: int | None
    duration_seconds: float | None
    width: int
    height: int
    fps: float
    video_codec: str | None
    audio_codec: str | None
    job_id: uuid.UUID
    job_url: str
    error: str | None
    created_at: datetime


class StoryboardPublic(BaseModel):
    sequence_job_id: uuid.UUID
    project_id: uuid.UUID
    shot_count: int
    total_duration: float
    created_at: datetime


class StoryboardsPublic(BaseModel):
    storyboards: list[StoryboardPublic]
