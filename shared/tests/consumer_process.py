"""A consumer in a process of its own, for the kill-mid-batch test (run by test_events.py)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

sys.path.insert(0, str(Path(__file__).parent))
from conftest import make_event_model, make_kit_metadata

from storycore_shared.db import sqlalchemy_url
from storycore_shared.events.broker import Broker
from storycore_shared.events.consumer import EventConsumer
from storycore_shared.events.contracts import StreamSpec


async def main() -> None:
    name = os.environ["KIT_NAME"]
    _, tables, applied = make_kit_metadata(name)
    event = make_event_model(name)
    stream = StreamSpec(name=name.upper(), subjects=[f"{name}.>"])
    engine = create_async_engine(sqlalchemy_url(os.environ["KIT_DATABASE_URL"]))
    sessionmaker = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)

    async def handle(session: AsyncSession, data: object) -> None:
        await asyncio.sleep(0.02)  # slow enough that a kill lands inside a batch
        await session.execute(
            insert(applied).values(event_id=str(data.id), entity_id=data.id, n=data.n)
        )  # type: ignore[attr-defined]

    broker = Broker(os.environ["KIT_NATS_URL"], name="kill-test")
    await broker.start()
    consumer = EventConsumer(
        name=f"{name}-consumer",
        stream=stream,
        handlers={event: handle},
        sessionmaker=sessionmaker,
        tables=tables,
        broker=broker,
        ack_wait=2.0,
        batch_size=25,
    )
    await consumer.start()
    await asyncio.Event().wait()


asyncio.run(main())
