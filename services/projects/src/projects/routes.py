from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from projects import service
from projects.schemas import (
    ProjectCreate,
    ProjectPublic,
    ProjectsPublic,
    ProjectStatus,
    ProjectSummary,
    ProjectUpdate,
)
from storycore_shared.auth import PrincipalDep
from storycore_shared.db import DriverConnectionDep, SessionDep
from storycore_shared.http import (
    IfMatch,
    IfNoneMatch,
    Page,
    PageSize,
    etag,
    expected_version,
    not_modified,
)

router = APIRouter(prefix="/api/projects", tags=["projects"])


def _with_etag(response: Response, project: ProjectPublic) -> ProjectPublic:
    response.headers["ETag"] = etag(project.version)
    return project


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_project(
    data: ProjectCreate,
    connection: DriverConnectionDep,
    principal: PrincipalDep,
    response: Response,
) -> ProjectPublic:
    """Create a project owned by the caller."""
    project = await service.create_project(connection, principal=principal, data=data)
    response.headers["Location"] = f"/api/projects/{project.id}"
    return _with_etag(response, project)


@router.get("")
async def list_projects(
    session: SessionDep,
    principal: PrincipalDep,
    status: ProjectStatus | None = None,
    page: Page = 1,
    page_size: PageSize = 20,
) -> ProjectsPublic:
    """The caller's projects, most recently updated first."""
    items, total = await service.list_projects(
        session, principal=principal, status=status, page=page, page_size=page_size
    )
    return ProjectsPublic(
        projects=[ProjectSummary.model_validate(p) for p in items],
        total=total,
        page=page,
        page_size=page_size,
    )


@router.get("/{project_id}", response_model=ProjectPublic)
async def get_project(
    project_id: uuid.UUID,
    connection: DriverConnectionDep,
    principal: PrincipalDep,
    response: Response,
    if_none_match: IfNoneMatch = None,
) -> ProjectPublic | Response:
    """One project: the caller's own, or anyone's public one (304 for a current ETag)."""
    project = await service.get_public(connection, principal=principal, project_id=project_id)
    if cached := not_modified(if_none_match, project.version):
        return cached
    return _with_etag(response, project)


@router.put("/{project_id}")
async def update_project(
    project_id: uuid.UUID,
    data: ProjectUpdate,
    connection: DriverConnectionDep,
    principal: PrincipalDep,
    response: Response,
    if_match: IfMatch = None,
) -> ProjectPublic:
    """Change some fields; a stale `version` (or If-Match) answers 409."""
    project = await service.update_project(
        connection,
        principal=principal,
        project_id=project_id,
        data=data,
        expected_version=expected_version(data.version, if_match),
    )
    return _with_etag(response, project)


@router.delete("/{project_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_project(
    project_id: uuid.UUID, session: SessionDep, principal: PrincipalDep, if_match: IfMatch = None
) -> Response:
    """Delete a project; the other services then delete what belongs to it."""
    await service.delete_project(
        session,
        principal=principal,
        project_id=project_id,
        expected_version=expected_version(None, if_match),
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{project_id}/summary")
async def get_project_summary(
    project_id: uuid.UUID, session: SessionDep, principal: PrincipalDep
) -> ProjectSummary:
    """Name, status and counters of one project."""
    project = await service.get_readable(session, principal=principal, project_id=project_id)
    return ProjectSummary.model_validate(project)
