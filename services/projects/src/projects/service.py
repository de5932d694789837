"""Business rules of the projects service. Functions flush, never commit."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from projects import repository
from projects.models import Project, event_tables
from projects.productions import delete_productions
from projects.schemas import ProjectCreate, ProjectUpdate
from storycore_shared.auth import Principal
from storycore_shared.db import utcnow
from storycore_shared.errors import VersionConflict
from storycore_shared.events.contracts.projects import (
    ProjectCreated,
    ProjectDeleted,
    ProjectUpdated,
)
from storycore_shared.events.outbox import add_event
from storycore_shared.http import check_version
from storycore_shared.replicas.projects import check_access

SOURCE = "projects"


def _state(project: Project) -> dict[str, object]:
    return {
        "id": project.id,
        "project_id": project.id,
        "owner_id": project.owner_id,
        "name": project.name,
        "is_public": project.is_public,
        "status": project.status,
        "version": project.version,
        "resolution_width": project.resolution_width,
        "resolution_height": project.resolution_height,
    }


async def create_project(
    session: AsyncSession, *, principal: Principal, data: ProjectCreate
) -> Project:
    fields = data.model_dump(exclude={"metadata"})
    project = Project(**fields, meta=data.metadata, owner_id=principal.user_id)
    session.add(project)
    await session.flush()
    await add_event(
        session,
        event_tables,
        ProjectCreated.model_validate(_state(project)),
        source=SOURCE,
        actor=principal.user_id,
    )
    return project


async def get_readable(
    session: AsyncSession, *, principal: Principal, project_id: uuid.UUID
) -> Project:
    project = await repository.get(session, project_id)
    return check_access(project, project_id, principal, write=False)


async def get_writable(
    session: AsyncSession, *, principal: Principal, project_id: uuid.UUID, lock: bool = False
) -> Project:
    project = await repository.get(session, project_id, lock=lock)
    return check_access(project, project_id, principal, write=True)


async def update_project(
    session: AsyncSession,
    *,
    principal: Principal,
    project_id: uuid.UUID,
    data: ProjectUpdate,
    expected_version: int | None,
) -> Project:
    changes = {"meta" if f == "metadata" else f: v for f, v in data.changes().items()}
    updated = None
    if changes:  # the usual case: one statement that checks, locks and writes
        updated = await repository.update_owned(
            session,
            project_id,
            principal.user_id,
            changes=changes,
            expected_version=expected_version,
            now=utcnow(),
        )
    if updated is None:  # nothing to change, or the reason it was not changed
        project = await get_writable(session, principal=principal, project_id=project_id)
        check_version("project", project.version, expected_version)
        if changes:  # not reached (versions only grow), but a conflict is the safe answer
            raise VersionConflict(
                "The project changed while it was being updated; reload and retry.",
                extra={"current_version": project.version},
            )
        return project  # nothing to write: no new version, no event
    project = updated
    await add_event(
        session,
        event_tables,
        ProjectUpdated.model_validate(_state(project)),
        source=SOURCE,
        actor=principal.user_id,
    )
    return project


async def delete_project(
    session: AsyncSession,
    *,
    principal: Principal,
    project_id: uuid.UUID,
    expected_version: int | None,
) -> None:
    project = await get_writable(session, principal=principal, project_id=project_id, lock=True)
    check_version("project", project.version, expected_version)
    await repository.delete(session, project)
    await delete_productions(session, project.id)
    await add_event(
        session,
        event_tables,
        ProjectDeleted(id=project.id, project_id=project.id, owner_id=project.owner_id),
        source=SOURCE,
        actor=principal.user_id,
    )


async def list_projects(
    session: AsyncSession,
    *,
    principal: Principal,
    status: str | None,
    page: int,
    page_size: int,
) -> tuple[list[Project], int]:
    return await repository.list_owned(
        session, principal.user_id, status=status, offset=(page - 1) * page_size, limit=page_size
    )
