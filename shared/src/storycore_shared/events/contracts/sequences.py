"""Events published by the sequences service. ``id`` is the job id."""

from __future__ import annotations

import uuid
from typing import ClassVar

from pydantic import BaseModel

from storycore_shared.events.contracts import EventData, LinkUrl, StreamSpec

# ``rig.>``: character rigs are made by the sequences service too (its rigging runner).
STREAM = StreamSpec(name="SEQUENCES", subjects=["sequence.>", "rig.>"])


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
    # Stored by the shots service as the shot's result and thumbnail: https or a path here.
    keyframe_url: LinkUrl


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


class RigRequested(EventData):
    """The work item of the sequences worker's rigging runner (a JetStream work queue);
    ``id`` is the rig's id, which is also its job's id."""

    event_type: ClassVar[str] = "rig.requested"
    project_id: uuid.UUID
    owner_id: uuid.UUID


class RigCreated(EventData):
    """A character rig (a glTF skeleton) is ready; ``id`` and ``rig_id`` are the rig's id."""

    event_type: ClassVar[str] = "rig.created"
    project_id: uuid.UUID
    owner_id: uuid.UUID
    shot_id: uuid.UUID | None
    rig_id: uuid.UUID


def rig_progress_subject(rig_id: uuid.UUID | str) -> str:
    """Core NATS subject (not JetStream) that wakes the streams of one rig's job."""
    return f"rig.progress.{rig_id}"


STREAM.register(
    SequenceRequested,
    SequenceGenerated,
    SequenceFailed,
    SequenceCancelled,
    RigRequested,
    RigCreated,
)
