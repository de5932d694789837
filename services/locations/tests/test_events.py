"""The project events the locations service consumes, applied as the consumer does."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from locations.models import Location, project_replica
from locations.schemas import LocationCreate
from locations.service import Locations, delete_project_locations
from storycore_shared.auth import Principal
from storycore_shared.errors import ProjectNotFound
from storycore_shared.events.contracts.projects import ProjectCreated, ProjectDeleted
from storycore_shared.replicas.projects import ProjectDirectory

OWNER = Principal(user_id=uuid.uuid4())


@pytest.fixture
def locations() -> Locations:
    return Locations(ProjectDirectory(project_replica, "http://127.0.0.1:9"))


@pytest.fixture
def handlers(locations: Locations) -> dict[type, Any]:
    return locations.directory.handlers(delete_project_locations)


def _created(project_id: uuid.UUID, **fields: Any) -> ProjectCreated:
    values: dict[str, Any] = {
        "id": project_id,
        "project_id": project_id,
        "owner_id": OWNER.user_id,
        "name": "Lighthouse",
        "is_public": False,
        "status": "draft",
        "version": 1,
        **fields,
    }
    return ProjectCreated(**values)


async def _project(session: AsyncSession, handlers: dict[type, Any]) -> uuid.UUID:
    project_id = uuid.uuid4()
    await handlers[ProjectCreated](session, _created(project_id))
    return project_id


async def _add(
    session: AsyncSession, locations: Locations, project_id: uuid.UUID | None
) -> Location:
    return await locations.create_location(
        session, principal=OWNER, data=LocationCreate(name="Room", project_id=project_id)
    )


async def _ids(session: AsyncSession) -> set[uuid.UUID]:
    return set((await session.scalars(select(col(Location.id)))).all())


async def test_project_deleted_cascades_its_locations_only(
    session: AsyncSession, locations: Locations, handlers: dict[type, Any]
) -> None:
    doomed = await _project(session, handlers)
    kept = await _project(session, handlers)
    await _add(session, locations, doomed)
    await _add(session, locations, doomed)
    survivor = await _add(session, locations, kept)
    loose = await _add(session, locations, None)
    await handlers[ProjectDeleted](
        session, ProjectDeleted(id=doomed, project_id=doomed, owner_id=OWNER.user_id)
    )
    assert await _ids(session) == {survivor.id, loose.id}
    assert await locations.directory.get(session, doomed) is None


async def test_a_deleted_project_stays_deleted_whatever_arrives_late(
    session: AsyncSession, locations: Locations, handlers: dict[type, Any]
) -> None:
    project_id = await _project(session, handlers)
    await handlers[ProjectDeleted](
        session, ProjectDeleted(id=project_id, project_id=project_id, owner_id=OWNER.user_id)
    )
    await handlers[ProjectCreated](session, _created(project_id, version=50, is_public=True))
    assert await locations.directory.get(session, project_id) is None
    with pytest.raises(ProjectNotFound):
        await _add(session, locations, project_id)
    assert await _ids(session) == set()
