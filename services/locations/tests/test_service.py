"""Locations use cases and their strict schemas on real Postgres, each test rolled back.

The project replica is fed through the service's own consumer handlers; principals carry no
token, so a replica miss is a 404 without any call to the projects service.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from locations.errors import LocationNotFound, LocationReadOnly
from locations.models import Location, event_tables, project_replica
from locations.schemas import LocationCreate, LocationUpdate
from locations.service import Locations
from storycore_shared.auth import Principal
from storycore_shared.errors import ProjectNotFound, ProjectReadOnly, VersionConflict
from storycore_shared.replicas.projects import ProjectDirectory
from storycore_testkit.service_db import add_project

OWNER = Principal(user_id=uuid.uuid4())
STRANGER = Principal(user_id=uuid.uuid4())


@pytest.fixture
def locations() -> Locations:
    return Locations(ProjectDirectory(project_replica, "http://127.0.0.1:9"))


async def _project(
    session: AsyncSession,
    locations: Locations,
    *,
    owner: Principal = OWNER,
    public: bool = False,
) -> uuid.UUID:
    return await add_project(session, locations.directory, owner.user_id, public=public)


async def _create(
    session: AsyncSession, locations: Locations, principal: Principal = OWNER, **fields: Any
) -> Location:
    data = LocationCreate.model_validate({"name": "Lantern room", **fields})
    return await locations.create_location(session, principal=principal, data=data)


async def _outbox(session: AsyncSession) -> list[tuple[str, dict[str, Any]]]:
    rows = await session.execute(
        select(event_tables.outbox.c.subject, event_tables.outbox.c.payload).order_by(
            event_tables.outbox.c.seq
        )
    )
    return [(subject, payload["data"]) for subject, payload in rows]


async def _row(session: AsyncSession, location_id: uuid.UUID) -> Location | None:
    return (
        await session.scalars(
            select(Location)
            .where(col(Location.id) == location_id)
            .execution_options(populate_existing=True)
        )
    ).first()


# -- the strict schemas ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [
        {"owner_id": str(uuid.uuid4())},
        {"id": str(uuid.uuid4())},
        {"version": 3},
        {"created_at": "2026-01-01T00:00:00Z"},
        {"colour": "blue"},
    ],
)
def test_create_refuses_unknown_and_protected_keys(extra: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as caught:
        LocationCreate.model_validate({"name": "Room", **extra})
    assert [e["type"] for e in caught.value.errors()] == ["extra_forbidden"]
    assert [e["loc"] for e in caught.value.errors()] == [(next(iter(extra)),)]


@pytest.mark.parametrize(
    "extra",
    [
        {"owner_id": str(uuid.uuid4())},
        {"id": str(uuid.uuid4())},
        {"updated_at": "2026-01-01T00:00:00Z"},
        {"colour": "blue"},
    ],
)
def test_update_refuses_unknown_and_protected_keys(extra: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as caught:
        LocationUpdate.model_validate({"name": "Room", **extra})
    assert [e["type"] for e in caught.value.errors()] == ["extra_forbidden"]


@pytest.mark.parametrize(
    "body",
    [
        {"name": "   "},
        {"name": "Room", "location_type": "underwater"},
        {"name": "Room", "cube_faces": {"diagonal": "/a.png"}},
        {"name": "x" * 256},
    ],
)
def test_create_refuses_bad_values(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        LocationCreate.model_validate(body)


@pytest.mark.parametrize("field", ["name", "location_type", "metadata"])
def test_update_refuses_null_for_required_fields(field: str) -> None:
    with pytest.raises(ValidationError, match="cannot be null"):
        LocationUpdate.model_validate({field: None})
    # ... while null clears an optional one.
    assert LocationUpdate.model_validate({"description": None}).changes() == {"description": None}


# -- use cases ---------------------------------------------------------------------------------


async def test_create_stores_the_callers_location_and_emits_created(
    session: AsyncSession, locations: Locations
) -> None:
    project_id = await _project(session, locations)
    location = await _create(
        session,
        locations,
        project_id=project_id,
        location_type="interior",
        metadata={"floor": 9},
        cube_faces={"front": "/f.png"},
    )
    stored = await _row(session, location.id)
    assert stored is not None
    assert (stored.owner_id, stored.project_id, stored.version) == (OWNER.user_id, project_id, 1)
    assert (stored.location_type, stored.meta, stored.cube_faces) == (
        "interior",
        {"floor": 9},
        {"front": "/f.png"},
    )
    unattached = await _create(session, locations, name="Anywhere")
    assert (unattached.project_id, unattached.location_type) == (None, "generic")
    events = await _outbox(session)
    assert events[0] == (
        "location.created",
        {
            "id": str(location.id),
            "project_id": str(project_id),
            "owner_id": str(OWNER.user_id),
            "name": "Lantern room",
            "location_type": "interior",
            "version": 1,
        },
    )
    assert [s for s, _ in events] == ["location.created"] * 2


async def test_create_needs_the_project_to_be_the_callers(
    session: AsyncSession, locations: Locations
) -> None:
    private = await _project(session, locations)
    public = await _project(session, locations, public=True)
    with pytest.raises(ProjectNotFound):
        await _create(session, locations, STRANGER, project_id=private)
    with pytest.raises(ProjectReadOnly):
        await _create(session, locations, STRANGER, project_id=public)
    with pytest.raises(ProjectNotFound):
        await _create(session, locations, OWNER, project_id=uuid.uuid4())
    assert await _outbox(session) == []
    assert (await session.scalars(select(Location))).all() == []


async def test_update_is_partial_versioned_and_emits_updated(
    session: AsyncSession, locations: Locations
) -> None:
    location = await _create(session, locations, description="old", atmosphere="salt")
    before = location.updated_at
    updated = await locations.update_location(
        session,
        principal=OWNER,
        location_id=location.id,
        data=LocationUpdate.model_validate(
            {"name": "Keeper's room", "description": None, "version": 1}
        ),
        expected_version=1,
    )
    stored = await _row(session, location.id)
    assert stored is not None
    assert updated.version == stored.version == 2
    assert (stored.name, stored.description, stored.atmosphere) == ("Keeper's room", None, "salt")
    assert stored.updated_at > before
    subject, data = (await _outbox(session))[-1]
    assert (subject, data["name"], data["version"]) == ("location.updated", "Keeper's room", 2)


async def test_a_stale_version_is_a_409_and_changes_nothing(
    session: AsyncSession, locations: Locations
) -> None:
    location = await _create(session, locations)
    await locations.update_location(
        session,
        principal=OWNER,
        location_id=location.id,
        data=LocationUpdate(name="Second"),
        expected_version=None,
    )
    with pytest.raises(VersionConflict) as caught:
        await locations.update_location(
            session,
            principal=OWNER,
            location_id=location.id,
            data=LocationUpdate(name="Lost"),
            expected_version=1,
        )
    assert caught.value.status == 409
    stored = await _row(session, location.id)
    assert stored is not None
    assert (stored.name, stored.version) == ("Second", 2)
    assert [s for s, _ in await _outbox(session)] == ["location.created", "location.updated"]


async def test_moving_a_location_needs_the_new_project_to_be_the_callers(
    session: AsyncSession, locations: Locations
) -> None:
    mine = await _project(session, locations)
    also_mine = await _project(session, locations)
    theirs = await _project(session, locations, owner=STRANGER, public=True)
    location = await _create(session, locations, project_id=mine)
    with pytest.raises(ProjectReadOnly):
        await locations.update_location(
            session,
            principal=OWNER,
            location_id=location.id,
            data=LocationUpdate(project_id=theirs),
            expected_version=1,
        )
    with pytest.raises(ProjectNotFound):
        await locations.update_location(
            session,
            principal=OWNER,
            location_id=location.id,
            data=LocationUpdate(project_id=uuid.uuid4()),
            expected_version=1,
        )
    stored = await _row(session, location.id)
    assert stored is not None
    assert (stored.project_id, stored.version) == (mine, 1)
    moved = await locations.update_location(
        session,
        principal=OWNER,
        location_id=location.id,
        data=LocationUpdate(project_id=also_mine),
        expected_version=1,
    )
    assert (moved.project_id, moved.version) == (also_mine, 2)
    detached = await locations.update_location(
        session,
        principal=OWNER,
        location_id=location.id,
        data=LocationUpdate.model_validate({"project_id": None}),
        expected_version=2,
    )
    assert (detached.project_id, detached.version) == (None, 3)


async def test_others_read_only_locations_of_public_projects_and_write_none(
    session: AsyncSession, locations: Locations
) -> None:
    public = await _project(session, locations, public=True)
    private = await _project(session, locations)
    shown = await _create(session, locations, project_id=public)
    hidden = await _create(session, locations, project_id=private)
    loose = await _create(session, locations)
    seen = await locations.get_location(session, principal=STRANGER, location_id=shown.id)
    assert seen.id == shown.id
    for location_id in (hidden.id, loose.id, uuid.uuid4()):
        with pytest.raises(LocationNotFound):
            await locations.get_location(session, principal=STRANGER, location_id=location_id)
        with pytest.raises(LocationNotFound):
            await locations.delete_location(session, principal=STRANGER, location_id=location_id)
    with pytest.raises(LocationReadOnly) as caught:
        await locations.update_location(
            session,
            principal=STRANGER,
            location_id=shown.id,
            data=LocationUpdate(name="Mine"),
            expected_version=None,
        )
    assert caught.value.status == 403
    with pytest.raises(LocationReadOnly):
        await locations.delete_location(session, principal=STRANGER, location_id=shown.id)
    for location in (shown, hidden, loose):
        stored = await _row(session, location.id)
        assert stored is not None
        assert (stored.name, stored.version) == ("Lantern room", 1)
    assert [s for s, _ in await _outbox(session)] == ["location.created"] * 3


async def test_list_mine_is_newest_first_filtered_by_project_and_paged(
    session: AsyncSession, locations: Locations
) -> None:
    project_id = await _project(session, locations)
    a = await _create(session, locations, name="a", project_id=project_id)
    b = await _create(session, locations, name="b")
    c = await _create(session, locations, name="c", project_id=project_id)
    await _create(session, locations, STRANGER, name="theirs")
    items, total = await locations.list_mine(
        session, principal=OWNER, project_id=None, page=1, page_size=20
    )
    assert (total, [i.id for i in items]) == (3, [c.id, b.id, a.id])
    items, total = await locations.list_mine(
        session, principal=OWNER, project_id=project_id, page=1, page_size=20
    )
    assert (total, [i.id for i in items]) == (2, [c.id, a.id])
    items, total = await locations.list_mine(
        session, principal=OWNER, project_id=None, page=2, page_size=2
    )
    assert (total, [i.id for i in items]) == (3, [a.id])
    items, total = await locations.list_mine(
        session, principal=STRANGER, project_id=project_id, page=1, page_size=20
    )
    assert (total, items) == (0, [])


async def test_list_project_needs_read_access(session: AsyncSession, locations: Locations) -> None:
    public = await _project(session, locations, public=True)
    private = await _project(session, locations)
    in_public = await _create(session, locations, project_id=public)
    await _create(session, locations, project_id=private)
    items, total = await locations.list_project(
        session, principal=STRANGER, project_id=public, page=1, page_size=20
    )
    assert (total, [i.id for i in items]) == (1, [in_public.id])
    with pytest.raises(ProjectNotFound):
        await locations.list_project(
            session, principal=STRANGER, project_id=private, page=1, page_size=20
        )
    items, total = await locations.list_project(
        session, principal=OWNER, project_id=private, page=1, page_size=20
    )
    assert total == 1


async def test_delete_removes_the_location_and_emits_deleted(
    session: AsyncSession, locations: Locations
) -> None:
    project_id = await _project(session, locations)
    location = await _create(session, locations, project_id=project_id)
    keep = await _create(session, locations, project_id=project_id)
    await locations.delete_location(session, principal=OWNER, location_id=location.id)
    assert await _row(session, location.id) is None
    assert await _row(session, keep.id) is not None
    with pytest.raises(LocationNotFound):
        await locations.get_location(session, principal=OWNER, location_id=location.id)
    subject, data = (await _outbox(session))[-1]
    assert (subject, data) == (
        "location.deleted",
        {"id": str(location.id), "project_id": str(project_id), "owner_id": str(OWNER.user_id)},
    )
