from __future__ import annotations

from storycore_shared.errors import InvalidState, NotFound, Unauthorized


class JobNotFound(NotFound):
    code = "job_not_found"
    title = "Job not found"


class JobNotCancellable(InvalidState):
    title = "Only a pending or processing job can be cancelled"


class InvalidTicket(Unauthorized):
    code = "invalid_stream_ticket"
    title = "Invalid stream ticket"
