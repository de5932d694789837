"""Jobs of one kind. Sequences and rigs share the service's ``job`` table (the kit's tables are
one set per schema); each API sees only its own kind, so a rig's job is not a sequence's."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from storycore_shared.auth import Principal
from storycore_shared.jobs.errors import JobNotFound
from storycore_shared.jobs.repository import Job
from storycore_shared.jobs.service import Jobs


class KindJobs(Jobs):
    """The kit's :class:`Jobs`, answering 404 for a job of another kind."""

    def __init__(self, *args: Any, kind: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.kind = kind

    async def owned(self, session: AsyncSession, principal: Principal, job_id: uuid.UUID) -> Job:
        job = await super().owned(session, principal, job_id)
        if job["kind"] != self.kind:
            raise JobNotFound(f"No job {job_id}.")
        return job
