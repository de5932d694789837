from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request, Response, status

from sequences.schemas import GenerateRequest
from sequences.state import KeyframesDep, RateLimitedPrincipal, SequencesDep, get_jobs
from storycore_shared.assets.http import file_route
from storycore_shared.auth import PrincipalDep
from storycore_shared.db import SessionDep
from storycore_shared.http import Page, PageSize
from storycore_shared.jobs.routes import job_router
from storycore_shared.jobs.schemas import JobPublic, JobsPublic, JobStatus
from storycore_shared.media import MediaPrincipalDep

router = APIRouter(prefix="/api/sequences", tags=["sequences"])


@router.post("/generate", status_code=status.HTTP_202_ACCEPTED)
async def generate_sequence(
    data: GenerateRequest,
    session: SessionDep,
    sequences: SequencesDep,
    principal: RateLimitedPrincipal,
    response: Response,
) -> JobPublic:
    """Queue a storyboard generation job for one of the caller's projects."""
    job = await sequences.generate(session, principal=principal, data=data)
    response.headers["Location"] = f"/api/sequences/{job['id']}/status"
    return sequences.jobs.public(job, viewer=principal.user_id)


@router.get("")
async def list_jobs(
    session: SessionDep,
    principal: PrincipalDep,
    sequences: SequencesDep,
    project_id: uuid.UUID | None = None,
    status: JobStatus | None = None,
    page: Page = 1,
    page_size: PageSize = 20,
) -> JobsPublic:
    """The caller's jobs, newest first."""
    return await sequences.list_jobs(
        session,
        principal=principal,
        project_id=project_id,
        status=status,
        page=page,
        page_size=page_size,
    )


@router.get("/{job_id}/result")
async def get_job_result(
    job_id: uuid.UUID, session: SessionDep, principal: PrincipalDep, sequences: SequencesDep
) -> dict[str, Any]:
    """The generated storyboard; 409 until the job has completed."""
    return await sequences.result(session, principal=principal, job_id=job_id)


@file_route(
    router,
    "/{job_id}/keyframes/{index}",
    responses={200: {"content": {"image/png": {}}}},
)
async def get_keyframe(
    job_id: uuid.UUID,
    index: int,
    request: Request,
    session: SessionDep,
    principal: MediaPrincipalDep,
    sequences: SequencesDep,
    keyframes: KeyframesDep,
) -> Response:
    """One keyframe, as PNG (bearer or signed URL; Range, ETag and If-None-Match)."""
    await sequences.keyframe_job(session, principal=principal, job_id=job_id, index=index)
    return await keyframes.response(request, session, job_id, index)


router.include_router(job_router(get_jobs, prefix="", tags=["sequences"]))
