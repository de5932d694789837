from __future__ import annotations

from typing import ClassVar

from storycore_shared.errors import Conflict, NotFound, ServiceError, Unprocessable


class TimelineNotFound(NotFound):
    code = "timeline_not_found"
    title = "Timeline not found"


class TrackNotFound(NotFound):
    code = "track_not_found"
    title = "Track not found"


class ClipNotFound(NotFound):
    code = "clip_not_found"
    title = "Clip not found"


class MediaNotFound(NotFound):
    code = "media_not_found"
    title = "Media not found"


class ExportNotFound(NotFound):
    code = "export_not_found"
    title = "Export not found"


class ClipOverlap(Conflict):
    code = "clip_overlap"
    title = "Clips overlap on the track"


class TrackLocked(Conflict):
    code = "track_locked"
    title = "The track is locked"


class ExportNotReady(Conflict):
    code = "export_not_ready"
    title = "The export has not completed"


class InvalidEdit(Unprocessable):
    code = "invalid_edit"
    title = "The edit cannot be applied"


class UnsupportedMediaType(ServiceError):
    status: ClassVar[int] = 415
    code = "unsupported_media_type"
    title = "Unsupported media type"
