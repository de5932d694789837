from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from projects.models import Project
from storycore_shared.types import Int32, JsonObject, StrictBool, TextRules

ProjectFormat = Literal["landscape", "portrait", "square", "cinematic"]
ProjectStatus = Literal["draft", "in_progress", "completed", "archived"]
Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255), TextRules
]
Tag = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64), TextRules
]
Width = Annotated[Int32, Field(ge=16, le=7680)]
Height = Annotated[Int32, Field(ge=16, le=4320)]
Fps = Annotated[Int32, Field(ge=1, le=120)]
Description = Annotated[str, StringConstraints(max_length=10_000), TextRules]
Version = Annotated[Int32, Field(ge=1)]


class ProjectCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    description: Description | None = None
    format: ProjectFormat = "landscape"
    resolution_width: Width = 1920
    resolution_height: Height = 1080
    fps: Fps = 24
    tags: list[Tag] = Field(default_factory=list, max_length=50)
    metadata: JsonObject = Field(default_factory=dict)
    is_public: StrictBool = False


class ProjectUpdate(BaseModel):
    """A partial update: only the fields sent change. ``version`` guards against lost updates."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    description: Description | None = None
    format: ProjectFormat | None = None
    resolution_width: Width | None = None
    resolution_height: Height | None = None
    fps: Fps | None = None
    status: ProjectStatus | None = None
    tags: list[Tag] | None = Field(default=None, max_length=50)
    metadata: JsonObject | None = None
    is_public: StrictBool | None = None
    version: Version | None = None

    @model_validator(mode="after")
    def _no_null_for_required(self) -> ProjectUpdate:
        nullable = {"description", "version"}
        nulls = [f for f in self.model_fields_set - nullable if getattr(self, f) is None]
        if nulls:
            raise ValueError(f"these fields cannot be null: {', '.join(sorted(nulls))}")
        return self

    def changes(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.model_fields_set if f != "version"}


class ProjectPublic(BaseModel):
    id: uuid.UUID
    name: str
    description: str | None
    format: ProjectFormat
    resolution_width: int
    resolution_height: int
    fps: int
    status: ProjectStatus
    tags: list[str]
    metadata: dict[str, Any]
    is_public: bool
    owner_id: uuid.UUID
    created_at: datetime
    updated_at: datetime
    version: int

    @classmethod
    def of(cls, project: Project) -> ProjectPublic:
        fields = project.model_dump(exclude={"meta", "shot_count", "sequence_count"})
        return cls.model_validate({**fields, "metadata": project.meta})


class ProjectSummary(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    status: ProjectStatus
    shot_count: int
    sequence_count: int
    created_at: datetime
    updated_at: datetime


class ProjectsPublic(BaseModel):
    projects: list[ProjectSummary]
    total: int
    page: int
    page_size: int
