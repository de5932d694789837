"""A consumer in a process of its own, for the kill-mid-batch tests (run by test_events.py).

Each applied event records its transaction id. With ``KIT_STARTED_FILE`` the handler appends the
event's ``n`` there when it starts; with ``KIT_STALL_AT`` it stops inside the handler of that
event (and so inside its batch's open transaction), for the test to kill it there. With
``KIT_DRIVER=1`` the handler is a ``Batched`` one whose runs are applied on asyncpg's connection.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, func, insert, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

sys.path.insert(0, str(Path(__file__).parent))
from conftest import make_event_model, make_kit_metadata

from storycore_shared.db import DriverConnection, Prepared, fetchrow, sqlalchemy_url
from storycore_shared.events.broker import Broker
from storycore_shared.events.consumer import Batched, EventConsumer
from storycore_shared.events.contracts import StreamSpec


def _note(path: str, n: int) -> None:
    with open(path, "a") as sink:
        sink.write(f"{n}\n")


async def main() -> None:
    name = os.environ["KIT_NAME"]
    _, tables, applied = make_kit_metadata(name)
    event = make_event_model(name)
    stream = StreamSpec(name=name.upper(), subjects=[f"{name}.>"])
    engine = create_async_engine(sqlalchemy_url(os.environ["KIT_DATABASE_URL"]))
    sessionmaker = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)

    delay = float(os.environ.get("KIT_HANDLER_SECONDS", "0.02"))
    started = os.environ.get("KIT_STARTED_FILE")
    stall_at = int(os.environ.get("KIT_STALL_AT", "-1"))
    driver = os.environ.get("KIT_DRIVER") == "1"

    async def begin(data: Any) -> None:
        if started:
            _note(started, data.n)
        if data.n == stall_at:
            await asyncio.Event().wait()  # until killed
        await asyncio.sleep(delay)  # slow enough that a kill lands inside a batch

    async def handle(session: AsyncSession, data: Any) -> None:
        await begin(data)
        tx = await session.scalar(text("select txid_current()"))
        await session.execute(
            insert(applied).values(event_id=str(data.id), entity_id=data.id, n=data.n, tx=tx)
        )

    insert_row = Prepared(
        insert(applied).values(
            event_id=bindparam("event_id"),
            entity_id=bindparam("entity_id"),
            n=bindparam("n"),
            tx=func.txid_current(),
        )
    )

    async def handle_many(db: AsyncSession | DriverConnection, items: list[Any]) -> None:
        for data in items:
            await begin(data)
            await fetchrow(
                db, insert_row, {"event_id": str(data.id), "entity_id": data.id, "n": data.n}
            )

    broker = Broker(os.environ["KIT_NATS_URL"], name="kill-test")
    await broker.start()
    consumer = EventConsumer(
        name=f"{name}-consumer",
        stream=stream,
        # KIT_DRIVER: runs of events applied on asyncpg's connection (Batched with driver).
        handlers={event: Batched(handle, handle_many, driver=True) if driver else handle},
        sessionmaker=sessionmaker,
        tables=tables,
        broker=broker,
        ack_wait=2.0,
        batch_size=int(os.environ.get("KIT_BATCH_SIZE", "25")),
    )
    await consumer.start()
    await asyncio.Event().wait()


asyncio.run(main())
