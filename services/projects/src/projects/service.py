"""Business rules of the projects service. Functions flush, never commit."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from projects import repository
from projects.models import Project, event_tables
from projects.productions import delete_productions
from projects.schemas import ProjectCreate, ProjectPublic, ProjectUpdate
from storycore_shared.auth import Principal
from storycore_shared.db import DriverConnection, utcnow
from storycore_shared.errors import VersionConflict
from storycore_shared.events.contracts.projects import (
    ProjectCreated,
    ProjectDeleted,
    ProjectUpdated,
)
from storycore_shared.events.outbox import add_event, envelope_parameters, event_parameters
from storycore_shared.http import check_version
from storycore_shared.replicas.projects import check_access

SOURCE = "projects"


async def create_project(
    connection: DriverConnection, *, principal: Principal, data: ProjectCreate
) -> ProjectPublic:
    """The project and its ``project.created`` event, in one statement."""
    now = utcnow()
    row = data.model_dump() | {
        "id": uuid.uuid4(),
        "owner_id": principal.user_id,
        "status": "draft",
        "shot_count": 0,
        "sequence_count": 0,
        "created_at": now,
        "updated_at": now,
        "version": 1,
    }
    event = ProjectCreated.model_validate(repository.event_state(row))
    await repository.insert(
        connection, row, event_parameters(event, source=SOURCE, actor=principal.user_id)
    )
    return ProjectPublic.model_validate(row)


async def get_public(
    connection: DriverConnection, *, principal: Principal, project_id: uuid.UUID
) -> ProjectPublic:
    """What ``GET /api/projects/{id}`` answers: one prepared statement, no ORM object."""
    row = await repository.get_row(connection, project_id)
    project = None if row is None else ProjectPublic.model_validate(row)
    return check_access(project, project_id, principal, write=False)


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
    connection: DriverConnection,
    *,
    principal: Principal,
    project_id: uuid.UUID,
    data: ProjectUpdate,
    expected_version: int | None,
) -> ProjectPublic:
    changes = data.changes()
    if changes:  # the usual case: one statement checks, locks, writes and records the event
        row = await repository.update_owned_with_event(
            connection,
            project_id,
            principal.user_id,
            changes=changes,
            expected_version=expected_version,
            now=utcnow(),
            envelope=envelope_parameters(
                ProjectUpdated, project_id, source=SOURCE, actor=principal.user_id
            ),
        )
        if row is not None:
            return ProjectPublic.model_validate(row)
    # Nothing to change, or the reason it was not changed.
    row = await repository.get_row(connection, project_id)
    project = None if row is None else ProjectPublic.model_validate(row)
    project = check_access(project, project_id, principal, write=True)
    check_version("project", project.version, expected_version)
    if changes:  # not reached (versions only grow), but a conflict is the safe answer
        raise VersionConflict(
            "The project changed while it was being updated; reload and retry.",
            extra={"current_version": project.version},
        )
    return project  # nothing to write: no new version, no event


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
