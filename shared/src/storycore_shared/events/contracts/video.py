"""Events published by the video editor service. ``id`` is the export's id (its job's)."""

from __future__ import annotations

import uuid
from typing import ClassVar

from storycore_shared.events.contracts import EventData, StreamSpec

STREAM = StreamSpec(name="VIDEO", subjects=["video.>"])


class ExportRequested(EventData):
    """The work item the video editor's export workers consume (a JetStream work queue)."""

    event_type: ClassVar[str] = "video.export.requested"
    project_id: uuid.UUID
    owner_id: uuid.UUID


class VideoExported(EventData):
    """An export is rendered and stored; ``file_url`` is its download path."""

    event_type: ClassVar[str] = "video.exported"
    project_id: uuid.UUID
    owner_id: uuid.UUID
    timeline_id: uuid.UUID
    export_id: uuid.UUID
    duration_seconds: float


class ExportFailed(EventData):
    event_type: ClassVar[str] = "video.export.failed"
    project_id: uuid.UUID
    timeline_id: uuid.UUID | None = None
    export_id: uuid.UUID
    error: str


class ExportCancelled(EventData):
    event_type: ClassVar[str] = "video.export.cancelled"
    project_id: uuid.UUID
    export_id: uuid.UUID


def progress_subject(export_id: uuid.UUID | str) -> str:
    """Core NATS subject (not JetStream) that wakes the streams of one export's job."""
    return f"video.progress.{export_id}"


STREAM.register(ExportRequested, VideoExported, ExportFailed, ExportCancelled)
