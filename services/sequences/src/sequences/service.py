"""API use cases of the sequences service. Functions flush, never commit."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from sequences import repository
from sequences.config import Settings
from sequences.errors import JobNotCancellable, JobNotFound, ProjectNotFound, ResultNotReady
from sequences.models import Job, JobEvent, StreamTicket, event_tables
from sequences.schemas import GenerateRequest, JobPublic
from storycore_shared.auth import Principal
from storycore_shared.db import utcnow
from storycore_shared.errors import ServiceUnavailable
from storycore_shared.events.contracts.sequences import SequenceCancelled, SequenceRequested
from storycore_shared.events.outbox import add_event
from storycore_shared.replicas.projects import ProjectDirectory

SOURCE = "sequences"


def public(job: Job) -> JobPublic:
    remaining = None
    if job.status == "processing" and job.started_at and 0 < job.progress < 100:
        elapsed = (datetime.now(UTC) - job.started_at).total_seconds()
        remaining = round(elapsed * (100 - job.progress) / job.progress, 1)
    return JobPublic(
        job_id=job.id,
        project_id=job.project_id,
        status=job.status,
        progress=job.progress,
        current_step=job.current_step,
        estimated_time_remaining=remaining,
        result=job.result,
        error=job.error,
        created_at=job.created_at,
        started_at=job.started_at,
        completed_at=job.completed_at,
    )


def ticket_hash(ticket: str) -> str:
    return hashlib.sha256(ticket.encode()).hexdigest()


class Sequences:
    def __init__(self, directory: ProjectDirectory, settings: Settings) -> None:
        self.directory = directory
        self.settings = settings

    async def generate(
        self,
        session: AsyncSession,
        *,
        principal: Principal,
        data: GenerateRequest,
        authorization: str | None,
    ) -> Job:
        project = await self.directory.get(session, data.project_id, authorization=authorization)
        if project is None or not project.writable_by(principal):
            raise ProjectNotFound(f"No project {data.project_id}.")
        backend = data.settings.image_backend or self.settings.IMAGE_BACKEND
        if backend == "comfyui" and not self.settings.COMFYUI_URL:
            raise ServiceUnavailable("The comfyui image backend is not configured here.")
        job = Job(
            project_id=project.id,
            owner_id=principal.user_id,
            prompt=data.prompt,
            shot_count=data.shot_count,
            style=data.style,
            mood=data.mood,
            characters=data.characters,
            settings=data.settings.model_dump(),
            image_backend=backend,
            width=project.resolution_width,
            height=project.resolution_height,
        )
        session.add(job)
        await session.flush()
        # Event 1, so a stream opened right after the 202 has something to show at once.
        job.event_seq = 1
        session.add(
            JobEvent(job_id=job.id, seq=1, status="pending", progress=0, current_step="queued")
        )
        await session.flush()
        await add_event(
            session,
            event_tables,
            SequenceRequested(id=job.id, project_id=job.project_id, owner_id=job.owner_id),
            source=SOURCE,
            actor=principal.user_id,
        )
        return job

    async def owned(self, session: AsyncSession, principal: Principal, job_id: uuid.UUID) -> Job:
        job = await repository.get(session, job_id)
        if job is None or job.owner_id != principal.user_id:
            raise JobNotFound(f"No job {job_id}.")
        return job

    async def cancel(
        self, session: AsyncSession, *, principal: Principal, job_id: uuid.UUID
    ) -> Job:
        await self.owned(session, principal, job_id)
        now = utcnow()
        job = await repository.advance(
            session,
            job_id,
            from_statuses={"pending", "processing"},
            status="cancelled",
            current_step="cancelled",
            completed_at=now,
        )
        if job is None:  # completed, failed or cancelled first: that outcome stands
            raise JobNotCancellable("The job already finished; it can no longer be cancelled.")
        await add_event(
            session,
            event_tables,
            SequenceCancelled(id=job.id, project_id=job.project_id, job_id=job.id),
            source=SOURCE,
            actor=principal.user_id,
        )
        return job

    async def result(
        self, session: AsyncSession, *, principal: Principal, job_id: uuid.UUID
    ) -> dict[str, object]:
        job = await self.owned(session, principal, job_id)
        if job.status != "completed" or job.result is None:
            raise ResultNotReady(f"The job is {job.status}; its result exists once completed.")
        return job.result

    async def issue_ticket(
        self, session: AsyncSession, *, principal: Principal, job_id: uuid.UUID
    ) -> str:
        await self.owned(session, principal, job_id)
        ticket = secrets.token_urlsafe(32)
        session.add(
            StreamTicket(
                ticket_hash=ticket_hash(ticket),
                job_id=job_id,
                user_id=principal.user_id,
                expires_at=utcnow() + timedelta(seconds=self.settings.TICKET_TTL_SECONDS),
            )
        )
        await session.flush()
        return ticket
