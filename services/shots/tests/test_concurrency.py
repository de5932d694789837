"""Two writers of one shot at once, on two real connections.

Unlike the other tests this one needs committed rows (a transaction only waits for another
that really holds a lock), so it commits its project and shot to the unit database and deletes
them, and their events, afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import delete, select, text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool
from sqlmodel import col

from shots.models import SCHEMA, Shot, event_tables, project_replica
from shots.schemas import ShotCreate, ShotUpdate
from shots.service import Shots, create_generated_shots
from storycore_shared.auth import Principal
from storycore_shared.db import DriverConnection, pooled_driver_connection, sqlalchemy_url
from storycore_shared.errors import VersionConflict
from storycore_shared.replicas.projects import ProjectDirectory
from storycore_testkit.polling import eventually
from storycore_testkit.service_db import project_created, storyboard_generated

OWNER = Principal(user_id=uuid.uuid4())


@pytest.fixture
async def engine(session: AsyncSession, unit_database_url: str) -> AsyncIterator[AsyncEngine]:
    del session  # asked for only so that the schema is migrated
    engine = create_async_engine(
        sqlalchemy_url(unit_database_url),
        poolclass=NullPool,
        connect_args={"server_settings": {"search_path": SCHEMA, "timezone": "UTC"}},
    )
    yield engine
    await engine.dispose()


async def _blocked(engine: AsyncEngine, pid: int) -> bool:
    async with engine.connect() as conn:
        waiting = await conn.scalar(
            text("select cardinality(pg_blocking_pids(:pid)) > 0"), {"pid": pid}
        )
    return bool(waiting)


async def _forget(engine: AsyncEngine, project_id: uuid.UUID) -> None:
    async with engine.begin() as conn:
        await conn.execute(delete(Shot).where(col(Shot.project_id) == project_id))
        await conn.execute(delete(project_replica).where(project_replica.c.id == project_id))
        await conn.execute(
            delete(event_tables.outbox).where(
                event_tables.outbox.c.payload["data"]["project_id"].astext == str(project_id)
            )
        )


async def test_a_writer_that_waited_for_the_lock_sees_the_version_it_waited_for(
    engine: AsyncEngine,
) -> None:
    shots = Shots(ProjectDirectory(project_replica, "http://127.0.0.1:9"))
    maker = async_sessionmaker(engine, expire_on_commit=False)
    created = project_created(OWNER.user_id)
    project_id = created.id
    first, second = maker(), maker()
    task: asyncio.Task[Shot] | None = None
    try:
        async with maker() as setup, setup.begin():
            await shots.directory.apply(setup, created)
            shot = await shots.create_shot(
                await DriverConnection.of(setup),
                principal=OWNER,
                data=ShotCreate(project_id=project_id, name="Stairs", prompt="p"),
            )
        # Both writers read version 1. The first writes version 2 and holds its locks.
        await shots.update_shot(
            first,
            principal=OWNER,
            shot_id=shot.id,
            data=ShotUpdate(name="First"),
            expected_version=1,
        )
        pid = int(await second.scalar(text("select pg_backend_pid()")) or 0)
        task = asyncio.create_task(
            shots.update_shot(
                second,
                principal=OWNER,
                shot_id=shot.id,
                data=ShotUpdate(name="Second"),
                expected_version=1,
            )
        )
        await eventually(
            lambda: _blocked(engine, pid), within=5, what="the second writer waits for the lock"
        )
        await first.commit()
        # The shot is at version 2 now: the second writer's version 1 is stale.
        with pytest.raises(VersionConflict):
            await task
    finally:
        await first.close()
        if task is not None:
            with contextlib.suppress(Exception):
                await task
        await second.close()
        await _forget(engine, project_id)


async def test_shots_appended_at_once_get_distinct_indexes_and_matching_events(
    engine: AsyncEngine,
) -> None:
    """Each append's statement waits for the project's lock, then reads the last index: it must
    count the shot of the writer it waited for."""
    shots = Shots(ProjectDirectory(project_replica, "http://127.0.0.1:9"))
    maker = async_sessionmaker(engine, expire_on_commit=False)
    created = project_created(OWNER.user_id)
    project_id = created.id
    try:
        async with maker() as setup, setup.begin():
            await shots.directory.apply(setup, created)

        async def append(n: int) -> tuple[uuid.UUID, int]:
            # As the route runs it: one statement in autocommit, on a connection of its own.
            async with pooled_driver_connection(engine) as connection:
                shot = await shots.create_shot(
                    connection,
                    principal=OWNER,
                    data=ShotCreate(project_id=project_id, name=f"s{n}", prompt="p"),
                )
                return shot.id, shot.order_index

        answers = await asyncio.gather(*(append(n) for n in range(12)))
        assert sorted(index for _, index in answers) == list(range(12))
        outbox = event_tables.outbox
        async with engine.connect() as conn:
            rows = await conn.execute(
                select(outbox.c.payload["data"]).where(
                    outbox.c.payload["data"]["project_id"].astext == str(project_id)
                )
            )
            events = {uuid.UUID(data["id"]): data["order_index"] for (data,) in rows}
        assert events == dict(answers)  # each event names the index its shot was given
    finally:
        await _forget(engine, project_id)


async def test_a_storyboards_shots_and_an_append_at_the_same_time_get_distinct_indexes(
    engine: AsyncEngine,
) -> None:
    """The consumer adding a finished storyboard's shots holds the project's lock too: an append
    that arrives meanwhile waits, and then goes after them."""
    shots = Shots(ProjectDirectory(project_replica, "http://127.0.0.1:9"))
    maker = async_sessionmaker(engine, expire_on_commit=False)
    created = project_created(OWNER.user_id)
    project_id = created.id
    storyboard = storyboard_generated(project_id, OWNER.user_id, 3)
    consumer = maker()
    append: asyncio.Task[Any] | None = None
    try:
        async with maker() as setup, setup.begin():
            await shots.directory.apply(setup, created)
        await create_generated_shots(consumer, storyboard)  # its transaction is still open

        async def add() -> Any:
            async with pooled_driver_connection(engine) as connection:
                return await shots.create_shot(
                    connection,
                    principal=OWNER,
                    data=ShotCreate(project_id=project_id, name="mine", prompt="p"),
                )

        append = asyncio.create_task(add())
        await asyncio.sleep(0.5)
        assert not append.done(), "the append did not wait for the storyboard's transaction"
        await consumer.commit()
        mine = await append
        assert mine.order_index == 3
        async with engine.connect() as conn:
            indexes = (
                await conn.scalars(
                    select(Shot.order_index).where(col(Shot.project_id) == project_id)
                )
            ).all()
        assert sorted(indexes) == [0, 1, 2, 3]
    finally:
        await consumer.close()
        if append is not None:
            with contextlib.suppress(Exception):
                await append
        await _forget(engine, project_id)
