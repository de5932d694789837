"""Events published by the sequences service. ``id`` is the job id."""

from __future__ import annotations

import uuid
from typing import ClassVar

from pydantic import BaseModel

from storycore_shared.events.contracts import EventData, StreamSpec

STREAM = StreamSpec(name="SEQUENCES", subjects=["sequence.>"])


class SequenceRequested(EventData):
    """The work item the sequences worker consumes (a JetStream work queue)."""

    event_type: ClassVar[str] = "sequence.requested"
    project_id: uuid.UUID
    owner_id: uuid.UUID


class GeneratedShot(BaseModel):
    id: uuid.UUID
    order_index: int
    name: str
    prompt: str
    shot_type: str
    framing: str
    duration_seconds: float
    keyframe_url: str


class SequenceGenerated(EventData):
    """A storyboard is ready; the shots service creates ``shots`` (with these ids)."""

    event_type: ClassVar[str] = "sequence.generated"
    project_id: uuid.UUID
    job_id: uuid.UUID
    owner_id: uuid.UUID
    shots: list[GeneratedShot]
    image_backend: str


class SequenceFailed(EventData):
    event_type: ClassVar[str] = "sequence.failed"
    project_id: uuid.UUID
    job_id: uuid.UUID
    error: str


class SequenceCancelled(EventData):
    event_type: ClassVar[str] = "sequence.cancelled"
    project_id: uuid.UUID
    job_id: uuid.UUID


def progress_subject(job_id: uuid.UUID | str) -> str:
    """Core NATS subject (not JetStream) that wakes the streams of one job."""
    return f"sequence.progress.{job_id}"


STREAM.register(SequenceRequested, SequenceGenerated, SequenceFailed, SequenceCancelled)
