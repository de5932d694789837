"""Per-service tests on real Postgres: one database migrated per service, each test rolled back.

A service's ``tests/conftest.py``::

    from storycore_testkit.service_db import rolled_back_session

    @pytest.fixture
    async def session(unit_database_url: str) -> AsyncIterator[AsyncSession]:
        async with rolled_back_session(unit_database_url, SCHEMA, MIGRATIONS) as session:
            yield session

The schema is migrated with the service's own Alembic tree the first time a test asks for it
(so the migrations themselves are under test); every test then runs inside one outer
transaction that is rolled back, and the code under test may ``flush`` and even ``commit``
(commits become savepoints).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.pool import NullPool

from storycore_shared.db import check_identifier, sqlalchemy_url
from storycore_shared.events.contracts.projects import ProjectCreated
from storycore_shared.events.contracts.sequences import GeneratedShot, SequenceGenerated
from storycore_shared.migrations import migrate
from storycore_shared.replicas.projects import ProjectDirectory

_migrated: dict[tuple[str, str], asyncio.Lock] = {}
_done: set[tuple[str, str]] = set()
_engines: dict[tuple[str, str], AsyncEngine] = {}


@pytest.fixture(scope="session")
def unit_database_url(postgres_admin_url: str) -> Iterator[str]:
    """A database of its own for the per-service tests, dropped at the end of the session."""
    import asyncpg

    name = check_identifier(f"unit_{uuid.uuid4().hex[:10]}")

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(postgres_admin_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'create database "{name}"'))
    yield make_url(postgres_admin_url).set(database=name).render_as_string(hide_password=False)
    asyncio.run(run(f'drop database "{name}" with (force)'))


async def _engine(database_url: str, schema: str, migrations: Path) -> AsyncEngine:
    key = (database_url, schema)
    lock = _migrated.setdefault(key, asyncio.Lock())
    async with lock:
        if key not in _done:
            await migrate(database_url, schema, migrations)
            _done.add(key)
    engine = _engines.get(key)
    if engine is None or engine.sync_engine.pool is None:
        engine = create_async_engine(
            sqlalchemy_url(database_url),
            poolclass=NullPool,
            connect_args={"server_settings": {"search_path": schema, "timezone": "UTC"}},
        )
        _engines[key] = engine
    return engine


@contextlib.asynccontextmanager
async def rolled_back_session(
    database_url: str, schema: str, migrations: Path
) -> AsyncIterator[AsyncSession]:
    """A session on the migrated ``schema`` whose work is all rolled back afterwards."""
    engine = await _engine(database_url, schema, migrations)
    async with engine.connect() as conn:
        outer = await conn.begin()
        session = AsyncSession(
            bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False
        )
        try:
            yield session
        finally:
            await session.close()
            await outer.rollback()


async def model_drift(
    database_url: str, schema: str, migrations: Path, metadata: MetaData
) -> list[object]:
    """What autogenerate would still write after the service's migrations: [] when in step."""
    await _engine(database_url, schema, migrations)  # migrated
    # The default schema must not be the service's, or autogenerate compares it as "no schema".
    engine = create_async_engine(
        sqlalchemy_url(database_url),
        poolclass=NullPool,
        connect_args={"server_settings": {"search_path": "public"}},
    )

    def compare(sync_conn: object) -> list[object]:
        context = MigrationContext.configure(
            sync_conn,  # type: ignore[arg-type]
            opts={
                "include_schemas": True,
                "include_name": lambda name, type_, _parent: (
                    name == schema if type_ == "schema" else name != "alembic_version"
                ),
                "compare_type": True,
            },
        )
        return list(compare_metadata(context, metadata))

    try:
        async with engine.connect() as conn:
            return await conn.run_sync(compare)
    finally:
        await engine.dispose()


def project_created(owner_id: uuid.UUID, *, public: bool = False, **fields: Any) -> ProjectCreated:
    """A ``project.created`` event for a fresh project of ``owner_id``."""
    project_id = uuid.uuid4()
    values: dict[str, Any] = {
        "id": project_id,
        "project_id": project_id,
        "owner_id": owner_id,
        "name": "Lighthouse",
        "is_public": public,
        "status": "draft",
        "version": 1,
        **fields,
    }
    return ProjectCreated(**values)


def storyboard_generated(
    project_id: uuid.UUID, owner_id: uuid.UUID, count: int, *, job_id: uuid.UUID | None = None
) -> SequenceGenerated:
    """A ``sequence.generated`` event: a finished storyboard of ``count`` planned shots (ids
    from the job, as the sequences service derives them; the first one establishing)."""
    job_id = job_id or uuid.uuid4()
    return SequenceGenerated(
        id=job_id,
        project_id=project_id,
        job_id=job_id,
        owner_id=owner_id,
        image_backend="builtin",
        shots=[
            GeneratedShot(
                id=uuid.uuid5(job_id, str(i)),
                order_index=i,
                name=f"Planned {i}",
                prompt=f"prompt {i}",
                shot_type="establishing" if i == 0 else "action",
                framing="wide",
                duration_seconds=2.5,
                keyframe_url=f"/keyframes/{job_id}/{i}.png",
            )
            for i in range(count)
        ],
    )


async def add_project(
    session: AsyncSession,
    directory: ProjectDirectory,
    owner_id: uuid.UUID,
    *,
    public: bool = False,
    **fields: Any,
) -> uuid.UUID:
    """Feed a service's project replica a new project, as its consumer would; its id."""
    created = project_created(owner_id, public=public, **fields)
    await directory.apply(session, created)
    return created.id
