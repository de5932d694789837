"""API use cases of the sequences service. Functions flush, never commit."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from sequences.config import Settings
from sequences.errors import KeyframeNotFound, ResultNotReady
from sequences.kinds import KindJobs
from sequences.models import event_tables, job_tables
from sequences.schemas import GenerateRequest
from storycore_shared.auth import Principal
from storycore_shared.errors import ServiceUnavailable
from storycore_shared.events.contracts.sequences import (
    SequenceCancelled,
    SequenceRequested,
    progress_subject,
)
from storycore_shared.jobs import repository as jobs_repository
from storycore_shared.jobs.repository import Job
from storycore_shared.jobs.schemas import JobsPublic
from storycore_shared.jobs.service import Jobs
from storycore_shared.media import MediaSigner
from storycore_shared.replicas.projects import ProjectDirectory

SOURCE = "sequences"
KIND = "sequence"


def _cancelled(job: Job) -> SequenceCancelled:
    return SequenceCancelled(id=job["id"], project_id=job["project_id"], job_id=job["id"])


def signed_result(
    signer: MediaSigner, result: dict[str, Any], user_id: uuid.UUID
) -> dict[str, Any]:
    """A storyboard as ``user_id`` reads it: keyframe URLs signed for them, so ``<img src>``
    loads them (in the result, the job's status and the stream's last frame alike)."""
    shots = [
        {**shot, "keyframe_url": signer.sign_suite_url(shot.get("keyframe_url"), user_id=user_id)}
        for shot in result.get("shots", [])
    ]
    return {**result, "shots": shots}


def make_jobs(settings: Settings) -> Jobs:
    signer = MediaSigner.from_settings(settings)
    return KindJobs(
        job_tables,
        event_tables,
        settings,
        kind=KIND,
        service=SOURCE,
        progress_subject=progress_subject,
        cancelled_event=_cancelled,
        present_result=lambda result, user_id: signed_result(signer, result, user_id),
    )


class Sequences:
    def __init__(self, directory: ProjectDirectory, settings: Settings, jobs: Jobs) -> None:
        self.directory = directory
        self.settings = settings
        self.jobs = jobs

    def unavailable(self, backend: str) -> str | None:
        """Why ``backend`` cannot render here (comfyui without its URL), or None when it can."""
        if backend == "comfyui" and not self.settings.COMFYUI_URL:
            return "The comfyui image backend is not configured here."
        return None

    async def generate(
        self,
        session: AsyncSession,
        *,
        principal: Principal,
        data: GenerateRequest,
    ) -> Job:
        project = await self.directory.require(
            session, data.project_id, principal, write=True, lock=False
        )
        backend = data.settings.image_backend or self.settings.IMAGE_BACKEND
        if (reason := self.unavailable(backend)) is not None:
            raise ServiceUnavailable(reason)
        return await self.jobs.create(
            session,
            principal=principal,
            project_id=project.id,
            request=SequenceRequested,
            kind=KIND,
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

    async def list_jobs(
        self,
        session: AsyncSession,
        *,
        principal: Principal,
        project_id: uuid.UUID | None,
        status: str | None,
        page: int,
        page_size: int,
    ) -> JobsPublic:
        items, total = await jobs_repository.list_owned(
            session,
            job_tables,
            principal.user_id,
            project_id=project_id,
            status=status,
            kind=KIND,
            offset=(page - 1) * page_size,
            limit=page_size,
        )
        return JobsPublic(
            jobs=[self.jobs.summary(j) for j in items], total=total, page=page, page_size=page_size
        )

    async def result(
        self, session: AsyncSession, *, principal: Principal, job_id: uuid.UUID
    ) -> dict[str, Any]:
        job = await self.jobs.owned(session, principal, job_id)
        if job["status"] != "completed" or job["result"] is None:
            raise ResultNotReady(f"The job is {job['status']}; its result exists once completed.")
        return signed_result(
            MediaSigner.from_settings(self.settings), job["result"], principal.user_id
        )

    async def keyframe_job(
        self, session: AsyncSession, *, principal: Principal, job_id: uuid.UUID, index: int
    ) -> Job:
        job = await self.jobs.owned(session, principal, job_id)
        if not 0 <= index < job["shot_count"]:
            raise KeyframeNotFound(f"Job {job_id} has no keyframe {index}.")
        return job
