"""The request pool, and prepared statements on the driver's connection, against a real Postgres."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    Uuid,
    bindparam,
    func,
    insert,
    literal,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncEngine

from storycore_shared.config import ServiceSettings
from storycore_shared.db import (
    DriverConnection,
    Prepared,
    asyncpg_dsn,
    create_engine,
    pooled_driver_connection,
)
from storycore_testkit.polling import eventually


def _pool_of(postgres_admin_url: str, size: int) -> AsyncEngine:
    """A service's engine (``create_engine``) with a pool of ``size`` connections."""
    settings = ServiceSettings(
        DATABASE_URL=postgres_admin_url,
        NATS_URL="nats://127.0.0.1:4222",
        JWKS_URL="http://127.0.0.1/jwks",
        DATABASE_POOL_SIZE=size,
        DATABASE_MAX_OVERFLOW=0,
    )
    return create_engine(settings, "public")


async def test_a_connection_the_server_closed_is_never_handed_out(postgres_admin_url: str) -> None:
    engine = _pool_of(postgres_admin_url, 1)
    admin = await asyncpg.connect(asyncpg_dsn(postgres_admin_url))
    try:
        async with engine.connect() as conn:
            raw: Any = (await conn.get_raw_connection()).driver_connection
            first = await conn.scalar(text("select pg_backend_pid()"))
        # The only pooled connection's server side goes away (as in a database restart).
        await admin.execute("select pg_terminate_backend($1)", first)

        async def seen_closed() -> bool:
            return bool(raw.is_closed())

        await eventually(seen_closed, within=5, what="the client saw the connection close")
        async with engine.connect() as conn:  # no ping round trip, and no error either
            second = await conn.scalar(text("select pg_backend_pid()"))
        assert second != first
    finally:
        await admin.close()
        await engine.dispose()


async def test_one_client_keeps_to_the_connection_it_used_last(postgres_admin_url: str) -> None:
    """After a burst has opened several connections, one client's requests do not go round
    all of them (each to a backend idle the longest): the pool hands out the last returned."""
    engine = _pool_of(postgres_admin_url, 4)
    try:
        burst = [await engine.connect() for _ in range(4)]
        backends = [await conn.scalar(text("select pg_backend_pid()")) for conn in burst]
        for conn in burst:
            await conn.close()  # returned in order: backends[3] last
        served = []
        for _ in range(6):
            async with engine.connect() as conn:
                served.append(await conn.scalar(text("select pg_backend_pid()")))
        assert len(set(backends)) == 4
        assert served == [backends[3]] * 6
    finally:
        await engine.dispose()


def _typed_table(schema: str) -> Table:
    """A column of each type the prepared statements of the services carry."""
    return Table(
        "typed",
        MetaData(schema=schema),
        Column("id", Uuid, primary_key=True),
        Column("name", String(255), nullable=False),
        Column("note", Text, nullable=True),
        Column("count", Integer, nullable=False),
        Column("seconds", Float, nullable=False),
        Column("public", Boolean, nullable=False),
        Column("meta", JSONB, nullable=False),
        Column("tags", JSONB, nullable=False),
        Column("at", DateTime(timezone=True), nullable=False),
    )


async def test_a_prepared_statement_binds_and_returns_what_sqlalchemy_does(kit: Any) -> None:
    typed = _typed_table(kit.name)
    async with kit.engine.begin() as conn:
        await conn.run_sync(typed.metadata.create_all)
    values = {
        "id": uuid.uuid4(),
        "name": "Lighthouse",
        "note": None,
        "count": 3,
        "seconds": 2.5,
        "public": True,
        "meta": {"genre": "noir", "nested": [1, {"a": None}]},
        "tags": ["sea", "night"],
        "at": datetime(2026, 11, 29, 7, 30, tzinfo=UTC),
    }
    insert_row = Prepared(
        insert(typed)
        .values({c.name: bindparam(f"v_{c.name}", type_=c.type) for c in typed.c})
        # A value the statement binds itself: SQLAlchemy's default travels with it.
        .returning(typed.c.id, literal("made").label("how"))
    )
    select_row = Prepared(select(typed).where(typed.c.id == bindparam("w_id")))
    async with kit.engine.connect() as pooled:
        connection = await DriverConnection.of(pooled)
        made = await connection.fetchrow(insert_row, {f"v_{k}": v for k, v in values.items()})
        assert made is not None
        assert dict(made) == {"id": values["id"], "how": "made"}
        raw = await connection.fetchrow(select_row, {"w_id": values["id"]})
        assert await connection.fetchrow(select_row, {"w_id": uuid.uuid4()}) is None
    async with kit.sessionmaker() as session:
        orm = (await session.execute(select_row.statement, {"w_id": values["id"]})).mappings()
        expected = dict(orm.one())
    assert raw is not None
    assert dict(raw) == expected == values
    assert [type(v) for v in dict(raw).values()] == [type(v) for v in expected.values()]


async def test_a_prepared_statement_runs_in_the_transaction_of_its_session(kit: Any) -> None:
    statement = Prepared(
        insert(kit.applied).values(
            event_id=bindparam("e"), entity_id=bindparam("x"), n=bindparam("n")
        )
    )
    async with kit.sessionmaker() as session:
        connection = await DriverConnection.of(session)
        await connection.fetchrow(statement, {"e": "e1", "x": uuid.uuid4(), "n": 1})
        assert await kit.applied_count() == 0  # not committed: another connection sees nothing
        await session.rollback()
    assert await kit.applied_count() == 0
    async with kit.sessionmaker() as session:
        connection = await DriverConnection.of(session)
        await connection.fetchrow(statement, {"e": "e2", "x": uuid.uuid4(), "n": 2})
        await session.commit()
    assert [r.event_id for r in await kit.applied_rows()] == ["e2"]


async def test_a_prepared_statement_refuses_what_it_cannot_bind(kit: Any) -> None:
    applied = kit.applied
    many = Prepared(select(applied).where(applied.c.n.in_(bindparam("ns", expanding=True))))
    async with kit.engine.connect() as pooled:
        connection = await DriverConnection.of(pooled)
        with pytest.raises(ValueError, match="expanding"):
            await connection.fetchrow(many, {"ns": [1, 2]})
        one = Prepared(select(applied).where(applied.c.n == bindparam("n")))
        with pytest.raises(KeyError, match="'n'"):
            await connection.fetchrow(one, {})


async def test_a_routes_connection_is_taken_by_its_first_statement(kit: Any) -> None:
    """A request that fails before its first statement never waits for a pooled connection."""
    count = Prepared(select(func.count()).select_from(kit.applied))
    pool = kit.engine.sync_engine.pool
    async with pooled_driver_connection(kit.engine) as connection:
        assert pool.checkedout() == 0
        row = await connection.fetchrow(count, {})
        assert row is not None
        assert pool.checkedout() == 1
    assert pool.checkedout() == 0


async def test_a_routes_statements_commit_alone_or_in_its_transaction(kit: Any) -> None:
    statement = Prepared(
        insert(kit.applied).values(
            event_id=bindparam("e"), entity_id=bindparam("x"), n=bindparam("n")
        )
    )

    async def refused() -> None:
        async with (
            pooled_driver_connection(kit.engine) as connection,
            connection.transaction(),
        ):
            await connection.fetchrow(statement, {"e": "e1", "x": uuid.uuid4(), "n": 1})
            raise RuntimeError("refused")

    with pytest.raises(RuntimeError, match="refused"):
        await refused()
    assert await kit.applied_count() == 0
    async with pooled_driver_connection(kit.engine) as connection:
        async with connection.transaction():
            await connection.fetchrow(statement, {"e": "e2", "x": uuid.uuid4(), "n": 2})
            await connection.fetchrow(statement, {"e": "e3", "x": uuid.uuid4(), "n": 3})
            assert await kit.applied_count() == 0  # not before the end of the block
        assert [r.event_id for r in await kit.applied_rows()] == ["e2", "e3"]
        # Outside a transaction each statement is visible at once.
        await connection.fetchrow(statement, {"e": "e4", "x": uuid.uuid4(), "n": 4})
        assert await kit.applied_count() == 3
