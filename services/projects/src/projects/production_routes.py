"""Productions: POST a story (or a scenario) to a project, follow it, read its artefacts.

The production's job routes (status, cancel, stream ticket, SSE stream) are the kit's, under
``/api/productions/{id}``; ``/api/projects/{id}/productions/{production_id}`` adds the steps and
the result.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Response, status

from projects import service
from projects.production_schemas import ProductionCreate, ProductionPublic, ProductionsPublic
from projects.productions import Productions
from storycore_shared.app import state_dependency
from storycore_shared.auth import PrincipalDep
from storycore_shared.db import SessionDep
from storycore_shared.http import Page, PageSize
from storycore_shared.jobs.routes import job_router
from storycore_shared.jobs.service import Jobs

ProductionsDep = Annotated[Productions, Depends(state_dependency(Productions))]


async def get_jobs(productions: ProductionsDep) -> Jobs:
    return productions.jobs


router = APIRouter(prefix="/api/projects/{project_id}/productions", tags=["productions"])
jobs_router = job_router(
    get_jobs,
    prefix="/api/productions",
    tags=["productions"],
    status_suffix="",
    name_prefix="production_",
)


@router.post("", status_code=status.HTTP_202_ACCEPTED)
async def create_production(
    project_id: uuid.UUID,
    data: ProductionCreate,
    session: SessionDep,
    principal: PrincipalDep,
    productions: ProductionsDep,
    response: Response,
) -> ProductionPublic:
    """Turn a story (or one of your scenarios) into a film: scenario, storyboards, narration,
    music, mix, timeline and export, one after the other. Follow it on its job routes."""
    await service.get_writable(session, principal=principal, project_id=project_id)
    job = await productions.start(session, principal=principal, project_id=project_id, data=data)
    response.headers["Location"] = f"/api/projects/{project_id}/productions/{job['id']}"
    return await productions.public(session, job, viewer=principal.user_id)


@router.get("")
async def list_productions(
    project_id: uuid.UUID,
    session: SessionDep,
    principal: PrincipalDep,
    productions: ProductionsDep,
    page: Page = 1,
    page_size: PageSize = 20,
) -> ProductionsPublic:
    """Your productions of this project, newest first."""
    await service.get_readable(session, principal=principal, project_id=project_id)
    jobs, total = await productions.of_project(
        session, principal=principal, project_id=project_id, page=page, page_size=page_size
    )
    return ProductionsPublic(
        productions=[
            await productions.public(session, job, viewer=principal.user_id) for job in jobs
        ],
        total=total,
        page=page,
        page_size=page_size,
    )


@router.get("/{production_id}")
async def get_production(
    project_id: uuid.UUID,
    production_id: uuid.UUID,
    session: SessionDep,
    principal: PrincipalDep,
    productions: ProductionsDep,
) -> ProductionPublic:
    """One production: status, current step, each step with its timing, and the result (every
    artefact's id and the film's signed download URL)."""
    await service.get_readable(session, principal=principal, project_id=project_id)
    job = await productions.owned(session, principal, project_id, production_id)
    return await productions.public(session, job, viewer=principal.user_id)
