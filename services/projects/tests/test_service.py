"""Projects use cases on real Postgres, each test rolled back."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from projects import service
from projects.models import Project, event_tables
from projects.schemas import ProjectCreate, ProjectSummary, ProjectUpdate
from storycore_shared.auth import Principal
from storycore_shared.db import DriverConnection
from storycore_shared.errors import ProjectNotFound, ProjectReadOnly, VersionConflict

OWNER = Principal(user_id=uuid.uuid4())
STRANGER = Principal(user_id=uuid.uuid4())


async def _outbox(session: AsyncSession) -> list[tuple[str, dict[str, Any]]]:
    rows = await session.execute(
        select(event_tables.outbox.c.subject, event_tables.outbox.c.payload).order_by(
            event_tables.outbox.c.seq
        )
    )
    return [(subject, payload) for subject, payload in rows]


async def _create(session: AsyncSession, principal: Principal = OWNER, **fields: Any) -> Project:
    data = ProjectCreate.model_validate({"name": "Lighthouse", **fields})
    return await service.create_project(
        await DriverConnection.of(session), principal=principal, data=data
    )


def _event_data(
    project_id: uuid.UUID, name: str, version: int, *, size: tuple[int, int] = (1920, 1080)
) -> dict[str, Any]:
    """A project event's data, as JSON, for OWNER's private draft."""
    return {
        "id": str(project_id),
        "project_id": str(project_id),
        "owner_id": str(OWNER.user_id),
        "name": name,
        "is_public": False,
        "status": "draft",
        "version": version,
        "resolution_width": size[0],
        "resolution_height": size[1],
    }


async def _stored(session: AsyncSession, project_id: uuid.UUID) -> Project | None:
    return (
        await session.scalars(
            select(Project)
            .where(Project.id == project_id)  # type: ignore[arg-type]
            .execution_options(populate_existing=True)
        )
    ).first()


async def test_create_is_version_1_owned_by_the_caller_with_a_created_event(
    session: AsyncSession,
) -> None:
    project = await _create(
        session,
        name="  Lighthouse  ",
        resolution_width=640,
        resolution_height=360,
        tags=["sea"],
        metadata={"genre": "noir"},
    )
    stored = await _stored(session, project.id)
    assert stored is not None
    assert (stored.version, stored.owner_id, stored.name) == (1, OWNER.user_id, "Lighthouse")
    assert (stored.status, stored.is_public, stored.shot_count) == ("draft", False, 0)
    assert (stored.tags, stored.meta) == (["sea"], {"genre": "noir"})
    [(subject, payload)] = await _outbox(session)
    assert subject == "project.created"
    assert payload["source"] == "projects"
    assert payload["actor"] == str(OWNER.user_id)
    assert payload["data"] == _event_data(project.id, "Lighthouse", 1, size=(640, 360))


async def test_a_partial_update_changes_only_what_was_sent_and_bumps_the_version(
    session: AsyncSession,
) -> None:
    project = await _create(session, description="old", fps=30, metadata={"a": 1})
    created_at, updated_at = project.created_at, project.updated_at
    updated = await service.update_project(
        await DriverConnection.of(session),
        principal=OWNER,
        project_id=project.id,
        data=ProjectUpdate.model_validate(
            {"name": "Harbour", "description": None, "metadata": {"b": 2}, "version": 1}
        ),
        expected_version=1,
    )
    stored = await _stored(session, project.id)
    assert stored is not None
    assert updated.version == stored.version == 2
    assert (stored.name, stored.description, stored.meta) == ("Harbour", None, {"b": 2})
    assert (stored.fps, stored.format, stored.status) == (30, "landscape", "draft")
    assert stored.created_at == created_at
    assert stored.updated_at > updated_at
    [(_, created), (subject, event)] = await _outbox(session)
    assert (created["data"]["name"], created["data"]["version"]) == ("Lighthouse", 1)
    # Postgres builds this event from the updated row, in the update's own statement.
    assert subject == event["type"] == "project.updated"
    assert (event["subject"], event["source"]) == (str(project.id), "projects")
    assert event["actor"] == str(OWNER.user_id)
    assert event["data"] == _event_data(project.id, "Harbour", 2)
    assert set(event) == set(created)  # the same envelope as an event built in Python


async def test_an_empty_update_writes_nothing(session: AsyncSession) -> None:
    project = await _create(session)
    same = await service.update_project(
        await DriverConnection.of(session),
        principal=OWNER,
        project_id=project.id,
        data=ProjectUpdate.model_validate({"version": 1}),
        expected_version=1,
    )
    assert same.version == 1
    assert [s for s, _ in await _outbox(session)] == ["project.created"]


async def test_a_stale_version_is_a_409_and_changes_nothing(session: AsyncSession) -> None:
    project = await _create(session)
    await service.update_project(
        await DriverConnection.of(session),
        principal=OWNER,
        project_id=project.id,
        data=ProjectUpdate(name="Second"),
        expected_version=None,  # no version named: last write wins
    )
    with pytest.raises(VersionConflict) as caught:
        await service.update_project(
            await DriverConnection.of(session),
            principal=OWNER,
            project_id=project.id,
            data=ProjectUpdate(name="Lost update"),
            expected_version=1,
        )
    assert caught.value.status == 409
    assert caught.value.extra == {"current_version": 2}
    with pytest.raises(VersionConflict):
        await service.delete_project(
            session, principal=OWNER, project_id=project.id, expected_version=1
        )
    stored = await _stored(session, project.id)
    assert stored is not None
    assert (stored.name, stored.version) == ("Second", 2)
    assert [s for s, _ in await _outbox(session)] == ["project.created", "project.updated"]


async def test_another_users_private_project_does_not_exist_for_them(
    session: AsyncSession,
) -> None:
    project = await _create(session)
    with pytest.raises(ProjectNotFound):
        await service.get_readable(session, principal=STRANGER, project_id=project.id)
    with pytest.raises(ProjectNotFound):
        await service.update_project(
            await DriverConnection.of(session),
            principal=STRANGER,
            project_id=project.id,
            data=ProjectUpdate(name="Mine now"),
            expected_version=None,
        )
    with pytest.raises(ProjectNotFound):
        await service.delete_project(
            session, principal=STRANGER, project_id=project.id, expected_version=None
        )
    with pytest.raises(ProjectNotFound):
        await service.get_readable(session, principal=OWNER, project_id=uuid.uuid4())
    stored = await _stored(session, project.id)
    assert stored is not None
    assert (stored.name, stored.version) == ("Lighthouse", 1)
    assert [s for s, _ in await _outbox(session)] == ["project.created"]


async def test_a_public_project_is_readable_by_others_but_not_writable(
    session: AsyncSession,
) -> None:
    project = await _create(session, is_public=True)
    seen = await service.get_readable(session, principal=STRANGER, project_id=project.id)
    assert seen.id == project.id
    with pytest.raises(ProjectReadOnly) as caught:
        await service.update_project(
            await DriverConnection.of(session),
            principal=STRANGER,
            project_id=project.id,
            data=ProjectUpdate(is_public=False),
            expected_version=None,
        )
    assert caught.value.status == 403
    with pytest.raises(ProjectReadOnly):
        await service.delete_project(
            session, principal=STRANGER, project_id=project.id, expected_version=None
        )
    stored = await _stored(session, project.id)
    assert stored is not None
    assert (stored.is_public, stored.version) == (True, 1)
    assert [s for s, _ in await _outbox(session)] == ["project.created"]


async def test_making_a_project_private_hides_it_and_says_so_in_the_event(
    session: AsyncSession,
) -> None:
    project = await _create(session, is_public=True)
    await service.update_project(
        await DriverConnection.of(session),
        principal=OWNER,
        project_id=project.id,
        data=ProjectUpdate(is_public=False),
        expected_version=1,
    )
    with pytest.raises(ProjectNotFound):
        await service.get_readable(session, principal=STRANGER, project_id=project.id)
    last_subject, last = (await _outbox(session))[-1]
    assert last_subject == "project.updated"
    assert (last["data"]["is_public"], last["data"]["version"]) == (False, 2)


async def test_delete_removes_the_project_and_emits_deleted(session: AsyncSession) -> None:
    project = await _create(session)
    keep = await _create(session, name="Keep")
    await service.delete_project(
        session, principal=OWNER, project_id=project.id, expected_version=1
    )
    assert await _stored(session, project.id) is None
    assert await _stored(session, keep.id) is not None
    with pytest.raises(ProjectNotFound):
        await service.get_readable(session, principal=OWNER, project_id=project.id)
    subject, payload = (await _outbox(session))[-1]
    assert subject == "project.deleted"
    assert payload["data"] == {
        "id": str(project.id),
        "project_id": str(project.id),
        "owner_id": str(OWNER.user_id),
    }


async def test_the_list_is_the_callers_newest_first_filtered_and_paged(
    session: AsyncSession,
) -> None:
    first = await _create(session, name="first")
    second = await _create(session, name="second")
    third = await _create(session, name="third")
    await _create(session, STRANGER, name="not mine", is_public=True)

    items, total = await service.list_projects(
        session, principal=OWNER, status=None, page=1, page_size=20
    )
    assert (total, [p.name for p in items]) == (3, ["third", "second", "first"])

    # An update makes the project the most recently updated one.
    await service.update_project(
        await DriverConnection.of(session),
        principal=OWNER,
        project_id=first.id,
        data=ProjectUpdate(status="in_progress"),
        expected_version=1,
    )
    items, total = await service.list_projects(
        session, principal=OWNER, status=None, page=1, page_size=2
    )
    assert (total, [p.id for p in items]) == (3, [first.id, third.id])
    items, total = await service.list_projects(
        session, principal=OWNER, status=None, page=2, page_size=2
    )
    assert (total, [p.id for p in items]) == (3, [second.id])
    items, total = await service.list_projects(
        session, principal=OWNER, status=None, page=3, page_size=2
    )
    assert (total, items) == (3, [])

    items, total = await service.list_projects(
        session, principal=OWNER, status="in_progress", page=1, page_size=20
    )
    assert (total, [p.id for p in items]) == (1, [first.id])
    items, total = await service.list_projects(
        session, principal=OWNER, status="archived", page=1, page_size=20
    )
    assert (total, items) == (0, [])
    items, total = await service.list_projects(
        session, principal=Principal(user_id=uuid.uuid4()), status=None, page=1, page_size=20
    )
    assert (total, items) == (0, [])


async def test_the_summary_carries_name_status_and_counters(session: AsyncSession) -> None:
    project = await _create(session, name="Summary", is_public=True)
    readable = await service.get_readable(session, principal=STRANGER, project_id=project.id)
    summary = ProjectSummary.model_validate(readable)
    assert (summary.id, summary.name, summary.status) == (project.id, "Summary", "draft")
    assert (summary.shot_count, summary.sequence_count) == (0, 0)
    assert summary.created_at == project.created_at
