"""Events published by the audio service. ``id`` is the audio record's id (the job's for the
command and for failures)."""

from __future__ import annotations

import uuid
from typing import ClassVar

from storycore_shared.events.contracts import EventData, StreamSpec

STREAM = StreamSpec(name="AUDIO", subjects=["audio.>"])


class AudioRequested(EventData):
    """The work item the audio worker consumes (a JetStream work queue); ``id`` is the job's:
    a generation, a multitrack or a mix."""

    event_type: ClassVar[str] = "audio.requested"
    project_id: uuid.UUID
    owner_id: uuid.UUID


class AudioGenerated(EventData):
    """A voice, music, sfx or ambient record (or one stem of a multitrack) is ready."""

    event_type: ClassVar[str] = "audio.generated"
    project_id: uuid.UUID
    owner_id: uuid.UUID
    audio_id: uuid.UUID
    type: str
    duration_seconds: float
    job_id: uuid.UUID
    multitrack_id: uuid.UUID | None = None


class AudioMixed(EventData):
    """A mixdown (``mix`` or ``export-mix``) is ready."""

    event_type: ClassVar[str] = "audio.mixed"
    project_id: uuid.UUID
    owner_id: uuid.UUID
    audio_id: uuid.UUID
    type: str
    duration_seconds: float
    job_id: uuid.UUID


class AudioDeleted(EventData):
    """A record and its file are gone; clips that used it show missing media."""

    event_type: ClassVar[str] = "audio.deleted"
    project_id: uuid.UUID
    owner_id: uuid.UUID
    audio_id: uuid.UUID
    type: str


class AudioFailed(EventData):
    event_type: ClassVar[str] = "audio.failed"
    project_id: uuid.UUID
    job_id: uuid.UUID
    error: str


class AudioCancelled(EventData):
    event_type: ClassVar[str] = "audio.cancelled"
    project_id: uuid.UUID
    job_id: uuid.UUID


def progress_subject(job_id: uuid.UUID | str) -> str:
    """Core NATS subject (not JetStream) that wakes the streams of one audio job."""
    return f"audio.progress.{job_id}"


STREAM.register(
    AudioRequested, AudioGenerated, AudioMixed, AudioDeleted, AudioFailed, AudioCancelled
)
