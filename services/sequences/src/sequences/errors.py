from __future__ import annotations

from storycore_shared.errors import Conflict, InvalidState, NotFound, Unauthorized


class JobNotFound(NotFound):
    code = "job_not_found"
    title = "Job not found"


class ProjectNotFound(NotFound):
    code = "project_not_found"
    title = "Project not found"


class JobNotCancellable(InvalidState):
    title = "Only a pending or processing job can be cancelled"


class ResultNotReady(Conflict):
    code = "result_not_ready"
    title = "The job has not completed"


class KeyframeNotFound(NotFound):
    code = "keyframe_not_found"
    title = "Keyframe not found"


class InvalidTicket(Unauthorized):
    code = "invalid_stream_ticket"
    title = "Invalid stream ticket"


class JobFailure(Exception):
    """An honest reason for a job to fail (planner, ComfyUI...), shown to the user."""
