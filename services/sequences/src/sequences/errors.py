from __future__ import annotations

from storycore_shared.errors import Conflict, NotFound


class ResultNotReady(Conflict):
    code = "result_not_ready"
    title = "The job has not completed"


class KeyframeNotFound(NotFound):
    code = "keyframe_not_found"
    title = "Keyframe not found"
