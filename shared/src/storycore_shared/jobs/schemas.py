"""The job answers every job-producing service gives, in one shape."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

JobStatus = Literal["pending", "processing", "completed", "failed", "cancelled"]


class JobPublic(BaseModel):
    job_id: uuid.UUID
    project_id: uuid.UUID
    status: JobStatus
    progress: int = Field(ge=0, le=100)
    current_step: str
    estimated_time_remaining: float | None = None
    # True while the job is processing but no worker has reported for a while (it crashed and
    # the job waits for redelivery, or no worker runs): the percentage is not moving.
    waiting_for_worker: bool = False
    result: dict[str, Any] | None = None
    error: str | None = None
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None


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
