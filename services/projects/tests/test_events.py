"""The counters the projects service keeps from shot and sequence events, on real Postgres."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from projects import service
from projects.events import (
    on_sequence_generated,
    on_shot_created,
    on_shot_deleted,
    shot_created,
)
from projects.models import Project, event_tables
from projects.schemas import ProjectCreate
from storycore_shared.auth import Principal
from storycore_shared.db import DriverConnection
from storycore_shared.events.contracts.sequences import SequenceGenerated
from storycore_shared.events.contracts.shots import ShotCreated, ShotDeleted
from storycore_testkit.service_db import storyboard_generated

OWNER = Principal(user_id=uuid.uuid4())


async def _project(session: AsyncSession, name: str = "Lighthouse") -> Project:
    return await service.create_project(
        await DriverConnection.of(session), principal=OWNER, data=ProjectCreate(name=name)
    )


async def _fresh(session: AsyncSession, project_id: uuid.UUID) -> Project:
    project = (
        await session.scalars(
            select(Project)
            .where(Project.id == project_id)  # type: ignore[arg-type]
            .execution_options(populate_existing=True)
        )
    ).one()
    return project


def _shot_created(project_id: uuid.UUID, index: int = 0) -> ShotCreated:
    return ShotCreated(
        id=uuid.uuid4(),
        project_id=project_id,
        order_index=index,
        name=f"Shot {index}",
        prompt="A keeper climbs the stairs.",
        shot_type="action",
        framing="wide",
        version=1,
    )


def _sequence_generated(project_id: uuid.UUID) -> SequenceGenerated:
    return storyboard_generated(project_id, OWNER.user_id, 1)


async def test_shot_events_keep_the_shot_count_of_their_project_only(
    session: AsyncSession,
) -> None:
    project = await _project(session)
    other = await _project(session, "Other")
    for index in range(3):
        await on_shot_created(session, _shot_created(project.id, index))
    await on_shot_created(session, _shot_created(other.id))
    await on_shot_deleted(session, ShotDeleted(id=uuid.uuid4(), project_id=project.id))
    assert (await _fresh(session, project.id)).shot_count == 2
    assert (await _fresh(session, other.id)).shot_count == 1


@pytest.mark.parametrize("on_driver", [False, True], ids=["in-a-session", "on-the-driver"])
async def test_a_run_of_shot_created_raises_each_count_once_by_its_shots(
    session: AsyncSession, on_driver: bool
) -> None:
    """What the consumer does with consecutive ``shot.created`` of one fetched batch: in a
    session, or (the handler is ``driver``) on asyncpg's connection."""
    assert shot_created.driver
    project = await _project(session)
    other = await _project(session, "Other")
    run = [_shot_created(project.id, i) for i in range(4)] + [_shot_created(other.id)]
    run.insert(2, _shot_created(other.id))
    await shot_created.many(await DriverConnection.of(session) if on_driver else session, run)
    assert (await _fresh(session, project.id)).shot_count == 4
    assert (await _fresh(session, other.id)).shot_count == 2
    await shot_created(session, _shot_created(project.id))  # alone, as after a failed batch
    assert (await _fresh(session, project.id)).shot_count == 5


async def test_the_shot_count_never_goes_below_zero(session: AsyncSession) -> None:
    project = await _project(session)
    await on_shot_deleted(session, ShotDeleted(id=uuid.uuid4(), project_id=project.id))
    await on_shot_deleted(session, ShotDeleted(id=uuid.uuid4(), project_id=project.id))
    assert (await _fresh(session, project.id)).shot_count == 0
    await on_shot_created(session, _shot_created(project.id))
    assert (await _fresh(session, project.id)).shot_count == 1


async def test_sequence_generated_counts_sequences(session: AsyncSession) -> None:
    project = await _project(session)
    await on_sequence_generated(session, _sequence_generated(project.id))
    await on_sequence_generated(session, _sequence_generated(project.id))
    fresh = await _fresh(session, project.id)
    assert (fresh.sequence_count, fresh.shot_count) == (2, 0)


async def test_a_counter_changes_neither_version_nor_updated_at_nor_emits(
    session: AsyncSession,
) -> None:
    project = await _project(session)
    version, updated_at = project.version, project.updated_at
    await on_shot_created(session, _shot_created(project.id))
    await on_sequence_generated(session, _sequence_generated(project.id))
    await on_shot_deleted(session, ShotDeleted(id=uuid.uuid4(), project_id=project.id))
    fresh = await _fresh(session, project.id)
    assert (fresh.shot_count, fresh.sequence_count) == (0, 1)
    assert (fresh.version, fresh.updated_at) == (version, updated_at)
    subjects = (await session.scalars(select(event_tables.outbox.c.subject))).all()
    assert subjects == ["project.created"]


async def test_events_about_an_unknown_project_change_nothing(session: AsyncSession) -> None:
    project = await _project(session)
    stranger_project = uuid.uuid4()
    await on_shot_created(session, _shot_created(stranger_project))
    await on_sequence_generated(session, _sequence_generated(stranger_project))
    fresh = await _fresh(session, project.id)
    assert (fresh.shot_count, fresh.sequence_count) == (0, 0)
    assert await session.get(Project, stranger_project) is None
