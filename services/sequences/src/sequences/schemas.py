from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

JobStatus = Literal["pending", "processing", "completed", "failed", "cancelled"]


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


class JobPublic(BaseModel):
    job_id: uuid.UUID
    project_id: uuid.UUID
    status: JobStatus
    progress: int
    current_step: str
    estimated_time_remaining: float | None
    result: dict[str, Any] | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None


class JobSummary(BaseModel):
    job_id: uuid.UUID
    project_id: uuid.UUID
    status: JobStatus
    progress: int
    created_at: datetime


class JobsPublic(BaseModel):
    jobs: list[JobSummary]
    total: int
    page: int
    page_size: int


class StreamTicketPublic(BaseModel):
    ticket: str
    expires_in: int
