from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import create_model
from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    Uuid,
    func,
    select,
    text,
)
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from storycore_shared.db import sqlalchemy_url
from storycore_shared.events.broker import Broker
from storycore_shared.events.contracts import EventData, StreamSpec
from storycore_shared.events.tables import EventTables


@dataclass
class Kit:
    """A throwaway service shape: own schema, event tables, an ``applied`` table and a stream."""

    name: str
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    tables: EventTables
    applied: Table
    stream: StreamSpec
    event: type[EventData]
    database_url: str

    async def applied_rows(self) -> list[Any]:
        async with self.engine.connect() as conn:
            result = await conn.execute(
                select(self.applied.c.event_id, self.applied.c.n, self.applied.c.tx)
            )
            return list(result)

    async def applied_count(self) -> int:
        async with self.engine.connect() as conn:
            return int(await conn.scalar(select(func.count()).select_from(self.applied)) or 0)

    async def unpublished_count(self) -> int:
        """Outbox rows the relay has not published yet."""
        outbox = self.tables.outbox
        async with self.engine.connect() as conn:
            unpublished = select(func.count()).where(outbox.c.published_at.is_(None))
            return int(await conn.scalar(unpublished) or 0)


def make_kit_metadata(name: str) -> tuple[MetaData, EventTables, Table]:
    metadata = MetaData(schema=name)
    tables = EventTables.on(metadata)
    # No unique constraint on purpose: a duplicate application would show up as a second row.
    applied = Table(
        "applied",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("event_id", String(64), nullable=False),
        Column("entity_id", Uuid, nullable=False),
        Column("n", Integer, nullable=False),
        # The applying transaction (txid_current()), where a test records it: batch boundaries.
        Column("tx", BigInteger, nullable=True),
    )
    return metadata, tables, applied


def make_event_model(name: str) -> type[EventData]:
    model = create_model(f"Happened_{name}", __base__=EventData, n=(int, ...))
    model.event_type = f"{name}.happened"  # type: ignore[misc]
    return model


@pytest.fixture
async def kit(postgres_admin_url: str, unique_name: str) -> AsyncIterator[Kit]:
    metadata, tables, applied = make_kit_metadata(unique_name)
    url = sqlalchemy_url(postgres_admin_url)
    engine = create_async_engine(
        url, connect_args={"server_settings": {"search_path": unique_name}}
    )
    async with engine.begin() as conn:
        await conn.execute(text(f'create schema "{unique_name}"'))
        await conn.run_sync(metadata.create_all)
    event = make_event_model(unique_name)
    stream = StreamSpec(name=unique_name.upper(), subjects=[f"{unique_name}.>"])
    stream.register(event)
    yield Kit(
        unique_name,
        engine,
        async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False),
        tables,
        applied,
        stream,
        event,
        postgres_admin_url,
    )
    async with engine.begin() as conn:
        await conn.execute(text(f'drop schema "{unique_name}" cascade'))
    await engine.dispose()


@pytest.fixture
async def broker(nats_url: str) -> AsyncIterator[Broker]:
    broker = Broker(nats_url, name="kit-test")
    await broker.start()
    await asyncio.wait_for(broker.connected(), timeout=10)
    yield broker
    await broker.close()
