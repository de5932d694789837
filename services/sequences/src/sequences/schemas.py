from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from storycore_shared.types import Int32, TextRules

Short = Annotated[str, StringConstraints(max_length=200), TextRules]


class GenerateSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image_backend: Literal["builtin", "comfyui"] | None = None


class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    project_id: uuid.UUID
    prompt: Annotated[str, StringConstraints(min_length=10, max_length=4000), TextRules]
    shot_count: Annotated[Int32, Field(ge=1, le=50)] = 5
    style: Short | None = None
    mood: Short | None = None
    characters: Annotated[list[Short], Field(max_length=50)] = Field(default_factory=list)
    settings: GenerateSettings = Field(default_factory=GenerateSettings)
