"""The events the shots service consumes, applied as the consumer does: ``handler(session, data)``.

``project.*`` keep the replica (and ``project.deleted`` cascades); ``sequence.generated``
creates the storyboard's shots.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from shots.models import Shot, event_tables, project_replica
from shots.schemas import ShotCreate, ShotPublic
from shots.service import Shots, create_generated_shots, delete_project_shots
from storycore_shared.auth import Principal
from storycore_shared.db import DriverConnection
from storycore_shared.errors import ProjectNotFound
from storycore_shared.events.contracts.projects import (
    ProjectCreated,
    ProjectDeleted,
    ProjectUpdated,
)
from storycore_shared.events.contracts.sequences import SequenceGenerated
from storycore_shared.replicas.projects import ProjectDirectory
from storycore_testkit.service_db import storyboard_generated

OWNER = Principal(user_id=uuid.uuid4())
STRANGER = Principal(user_id=uuid.uuid4())


@pytest.fixture
def shots() -> Shots:
    return Shots(ProjectDirectory(project_replica, "http://127.0.0.1:9"))


@pytest.fixture
def handlers(shots: Shots) -> dict[type, Any]:
    return shots.directory.handlers(delete_project_shots)


def _created(project_id: uuid.UUID, *, version: int = 1, **fields: Any) -> ProjectCreated:
    values: dict[str, Any] = {
        "id": project_id,
        "project_id": project_id,
        "owner_id": OWNER.user_id,
        "name": "Lighthouse",
        "is_public": False,
        "status": "draft",
        "version": version,
        **fields,
    }
    return ProjectCreated(**values)


def _deleted(project_id: uuid.UUID) -> ProjectDeleted:
    return ProjectDeleted(id=project_id, project_id=project_id, owner_id=OWNER.user_id)


def _generated(project_id: uuid.UUID, job_id: uuid.UUID, count: int) -> SequenceGenerated:
    return storyboard_generated(project_id, OWNER.user_id, count, job_id=job_id)


async def _project(session: AsyncSession, handlers: dict[type, Any]) -> uuid.UUID:
    project_id = uuid.uuid4()
    await handlers[ProjectCreated](session, _created(project_id))
    return project_id


async def _add(session: AsyncSession, shots: Shots, project_id: uuid.UUID, name: str) -> ShotPublic:
    return await shots.create_shot(
        await DriverConnection.of(session),
        principal=OWNER,
        data=ShotCreate(project_id=project_id, name=name, prompt="p"),
    )


async def _shots_of(session: AsyncSession, project_id: uuid.UUID) -> list[Shot]:
    rows = await session.scalars(
        select(Shot)
        .where(col(Shot.project_id) == project_id)
        .order_by(col(Shot.order_index))
        .execution_options(populate_existing=True)
    )
    return list(rows.all())


async def _subjects(session: AsyncSession) -> list[str]:
    rows = await session.scalars(
        select(event_tables.outbox.c.subject).order_by(event_tables.outbox.c.seq)
    )
    return list(rows.all())


async def test_project_deleted_cascades_its_shots_and_leaves_others(
    session: AsyncSession, shots: Shots, handlers: dict[type, Any]
) -> None:
    doomed = await _project(session, handlers)
    kept = await _project(session, handlers)
    for name in ("a", "b"):
        await _add(session, shots, doomed, name)
    survivor = await _add(session, shots, kept, "c")
    await handlers[ProjectDeleted](session, _deleted(doomed))
    assert await _shots_of(session, doomed) == []
    assert [s.id for s in await _shots_of(session, kept)] == [survivor.id]
    assert await shots.directory.get(session, doomed) is None
    assert await shots.directory.get(session, kept) is not None


async def test_a_late_project_created_does_not_resurrect_a_deleted_project(
    session: AsyncSession, shots: Shots, handlers: dict[type, Any]
) -> None:
    project_id = await _project(session, handlers)
    await handlers[ProjectDeleted](session, _deleted(project_id))
    late = _created(project_id, version=99, owner_id=STRANGER.user_id, is_public=True)
    await handlers[ProjectCreated](session, late)
    await handlers[ProjectUpdated](session, ProjectUpdated(**late.model_dump()))
    assert await shots.directory.get(session, project_id) is None
    for principal in (OWNER, STRANGER):
        with pytest.raises(ProjectNotFound):
            await shots.create_shot(
                await DriverConnection.of(session),
                principal=principal,
                data=ShotCreate(project_id=project_id, name="n", prompt="p"),
            )
    # A storyboard that finishes after the delete adds nothing either.
    await create_generated_shots(session, _generated(project_id, uuid.uuid4(), 2))
    assert await _shots_of(session, project_id) == []
    assert await _subjects(session) == []


async def test_a_delete_arriving_before_the_create_still_wins(
    session: AsyncSession, shots: Shots, handlers: dict[type, Any]
) -> None:
    project_id = uuid.uuid4()
    await handlers[ProjectDeleted](session, _deleted(project_id))
    await handlers[ProjectCreated](session, _created(project_id))
    assert await shots.directory.get(session, project_id) is None


async def test_project_updates_apply_by_version(
    session: AsyncSession, shots: Shots, handlers: dict[type, Any]
) -> None:
    project_id = await _project(session, handlers)
    shot = await _add(session, shots, project_id, "a")
    newer = _created(project_id, version=3, is_public=True, name="Public now")
    await handlers[ProjectUpdated](session, ProjectUpdated(**newer.model_dump()))
    older = _created(project_id, version=2, is_public=False, name="Stale")
    await handlers[ProjectUpdated](session, ProjectUpdated(**older.model_dump()))
    view = await shots.directory.get(session, project_id)
    assert view is not None
    assert (view.version, view.is_public, view.name) == (3, True, "Public now")
    assert (await shots.get_shot(session, principal=STRANGER, shot_id=shot.id)).id == shot.id


@pytest.mark.parametrize("on_driver", [False, True], ids=["in-a-session", "on-the-driver"])
async def test_a_run_of_project_events_keeps_each_projects_newest_state(
    session: AsyncSession, shots: Shots, handlers: dict[type, Any], on_driver: bool
) -> None:
    """What the consumer does with consecutive project events of one fetched batch: one call
    for the run (``Batched.many``), with the state ``apply`` would leave event by event; in a
    session, or (the handler is ``driver``) on asyncpg's connection."""
    first, second = uuid.uuid4(), uuid.uuid4()
    states = handlers[ProjectUpdated]
    assert states is handlers[ProjectCreated]  # created and updated events form one run
    assert states.driver
    db = await DriverConnection.of(session) if on_driver else session
    run = [
        _created(first),
        ProjectUpdated(**_created(first, version=3, name="Third").model_dump()),
        _created(second, is_public=True),
        ProjectUpdated(**_created(first, version=2, name="Second, late").model_dump()),
    ]
    await states.many(db, run)
    one, two = [await shots.directory.get(session, p) for p in (first, second)]
    assert one is not None
    assert two is not None
    assert (one.version, one.name) == (3, "Third")
    assert (two.version, two.is_public) == (1, True)
    # A newer state than the replica's wins; a tombstone is never overwritten by a run.
    await handlers[ProjectDeleted](session, _deleted(second))
    await states.many(
        db, [ProjectUpdated(**_created(s, version=9).model_dump()) for s in (first, second)]
    )
    again = await shots.directory.get(session, first)
    assert again is not None
    assert again.version == 9
    assert await shots.directory.get(session, second) is None


async def test_sequence_generated_creates_the_planned_shots_after_the_projects_own(
    session: AsyncSession, shots: Shots, handlers: dict[type, Any]
) -> None:
    project_id = await _project(session, handlers)
    first = await _add(session, shots, project_id, "by hand")
    job_id = uuid.uuid4()
    await create_generated_shots(session, _generated(project_id, job_id, 3))
    stored = await _shots_of(session, project_id)
    assert [s.id for s in stored] == [first.id] + [uuid.uuid5(job_id, str(i)) for i in range(3)]
    assert [s.order_index for s in stored] == [0, 1, 2, 3]
    planned = stored[1]
    assert (planned.sequence_id, planned.status, planned.name) == (job_id, "completed", "Planned 0")
    assert (planned.shot_type, planned.framing, planned.duration_seconds) == (
        "establishing",
        "wide",
        2.5,
    )
    assert planned.result_url == planned.thumbnail_url == f"/keyframes/{job_id}/0.png"
    assert await _subjects(session) == ["shot.created"] * 4


async def test_sequence_generated_applied_twice_creates_its_shots_once(
    session: AsyncSession, handlers: dict[type, Any]
) -> None:
    project_id = await _project(session, handlers)
    job_id = uuid.uuid4()
    event = _generated(project_id, job_id, 2)
    await create_generated_shots(session, event)
    await create_generated_shots(session, event)
    stored = await _shots_of(session, project_id)
    assert [(s.id, s.order_index) for s in stored] == [
        (uuid.uuid5(job_id, "0"), 0),
        (uuid.uuid5(job_id, "1"), 1),
    ]
    assert await _subjects(session) == ["shot.created"] * 2
    # A second storyboard is appended after the first.
    second = uuid.uuid4()
    await create_generated_shots(session, _generated(project_id, second, 1))
    stored = await _shots_of(session, project_id)
    assert [(s.sequence_id, s.order_index) for s in stored][-1] == (second, 2)
