from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class GenerateSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image_backend: Literal["builtin", "comfyui"] | None = None


class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    project_id: uuid.UUID
    prompt: Annotated[str, Field(min_length=10, max_length=4000)]
    shot_count: Annotated[int, Field(ge=1, le=50)] = 5
    style: Annotated[str, Field(max_length=200)] | None = None
    mood: Annotated[str, Field(max_length=200)] | None = None
    characters: Annotated[list[Annotated[str, Field(max_length=200)]], Field(max_length=50)] = (
        Field(default_factory=list)
    )
    settings: GenerateSettings = Field(default_factory=GenerateSettings)
