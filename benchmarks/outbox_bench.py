"""Outbox latency: from the commit of a change to the consumer having applied and acked its
event (relay woken by NOTIFY, JetStream publish with PubAck, pull consumer, inbox, ack).
Runs with nats-server `sync_interval: always` and with the default, interleaved in batches;
prints p50/p99 of each and the ratio of p50s. Targets: p50 <= 5 ms, p99 <= 20 ms.
A third lane is a replica's consumer (batches of 50, lingering ``REPLICA_LINGER_SECONDS``), which
trades this latency for fewer transactions (docs/benchmarks.md): its figures are printed apart."""

from __future__ import annotations

import asyncio
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from pydantic import create_model
from sqlalchemy import Column, Integer, MetaData, Table, text
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from storycore_shared.config import ServiceSettings
from storycore_shared.db import sqlalchemy_url, transaction
from storycore_shared.events.broker import Broker
from storycore_shared.events.consumer import EventConsumer
from storycore_shared.events.contracts import EventData, StreamSpec
from storycore_shared.events.outbox import add_event
from storycore_shared.events.relay import OutboxRelay
from storycore_shared.events.tables import EventTables
from storycore_testkit.infra.servers import EmbeddedNats, EmbeddedPostgres

BATCH = 40
ROUNDS = 5


class Lane:
    """One schema, stream, relay and consumer, on one NATS server."""

    def __init__(
        self, name: str, admin_url: str, nats_url: str, *, batch_size: int = 1, linger: float = 0.0
    ) -> None:
        self.name = name
        self.admin_url = admin_url
        self.nats_url = nats_url
        self.batch_size = batch_size
        self.linger = linger
        self.acked: dict[str, asyncio.Event] = {}

    async def start(self) -> None:
        metadata = MetaData(schema=self.name)
        self.tables = EventTables.on(metadata)
        Table("applied", metadata, Column("n", Integer))
        self.engine = create_async_engine(sqlalchemy_url(self.admin_url), pool_size=5)
        async with self.engine.begin() as conn:
            await conn.execute(text(f'create schema "{self.name}"'))
            await conn.run_sync(metadata.create_all)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        model = create_model(f"Bench_{self.name}", __base__=EventData, n=(int, ...))
        model.event_type = f"{self.name}.happened"  # type: ignore[misc]
        self.model = model
        stream = StreamSpec(name=self.name.upper(), subjects=[f"{self.name}.>"])
        self.broker = Broker(self.nats_url, name=self.name)
        await self.broker.start()
        self.relay = OutboxRelay(
            database_url=self.admin_url, tables=self.tables, broker=self.broker, streams=[stream]
        )
        lane = self

        class TimedConsumer(EventConsumer):
            async def _handle(self, msg: Any) -> None:
                await super()._handle(msg)
                event_id = msg.headers.get("Nats-Msg-Id") if msg.headers else None
                if event_id in lane.acked:
                    lane.acked[event_id].set()

        async def apply(session: Any, data: Any) -> None:
            await session.execute(
                text(f'insert into "{self.name}".applied values (:n)'), {"n": data.n}
            )

        self.consumer = TimedConsumer(
            name=f"{self.name}-c",
            stream=stream,
            handlers={model: apply},
            sessionmaker=self.sessionmaker,
            tables=self.tables,
            broker=self.broker,
            fetch_timeout=1.0,
            batch_size=self.batch_size,
            linger=self.linger,
        )
        await self.relay.start()
        await self.consumer.start()
        await self.one()  # warm-up: stream, consumer and connections exist

    async def one(self) -> float:
        async with transaction(self.sessionmaker) as session:
            event = await add_event(
                session, self.tables, self.model(id=uuid.uuid4(), n=1), source="bench"
            )
            self.acked[event.id] = asyncio.Event()
        committed = time.perf_counter()
        await asyncio.wait_for(self.acked[event.id].wait(), timeout=30)
        return (time.perf_counter() - committed) * 1000

    async def stop(self) -> None:
        await self.consumer.stop()
        await self.relay.stop()
        await self.broker.close()
        await self.engine.dispose()


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def run(admin_url: str, sync_url: str, plain_url: str) -> None:
    synced = Lane("bench_sync", admin_url, sync_url)
    plain = Lane("bench_plain", admin_url, plain_url)
    replica = Lane("bench_replica", admin_url, sync_url, batch_size=50, linger=replica_linger())
    await synced.start()
    await plain.start()
    await replica.start()
    results: dict[str, list[float]] = {"always": [], "default": []}
    lingering: list[float] = []
    ratios = []
    for _ in range(ROUNDS):
        a = [await synced.one() for _ in range(BATCH)]
        b = [await plain.one() for _ in range(BATCH)]
        lingering += [await replica.one() for _ in range(BATCH // 4)]
        results["always"] += a
        results["default"] += b
        ratios.append(statistics.median(a) / statistics.median(b))
    for label, values in results.items():
        print(
            f"outbox commit -> applied+acked, sync_interval {label:7}: n={len(values)} "
            f"p50 {pct(values, 50):.2f} ms, p99 {pct(values, 99):.2f} ms, "
            f"max {max(values):.2f} ms"
        )
    print(
        f"ratio of p50 (always / default), median of {ROUNDS} interleaved batches: "
        f"{statistics.median(ratios):.2f}"
    )
    print(
        f"a replica's consumer (lingering {1000 * replica.linger:.0f} ms), sync_interval always: "
        f"n={len(lingering)} p50 {pct(lingering, 50):.2f} ms, p99 {pct(lingering, 99):.2f} ms"
    )
    await synced.stop()
    await plain.stop()
    await replica.stop()


def replica_linger() -> float:
    """The services' default ``REPLICA_LINGER_SECONDS``."""
    return float(ServiceSettings.model_fields["REPLICA_LINGER_SECONDS"].default)


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="storycore-outbox-"))
    folder.chmod(0o755)
    pg = EmbeddedPostgres(folder / "pg").start()
    sync = EmbeddedNats(folder / "nats-sync", sync_always=True).start()
    plain = EmbeddedNats(folder / "nats-plain", sync_always=False).start()
    try:
        asyncio.run(run(pg.admin_url, sync.url, plain.url))
    finally:
        sync.stop()
        plain.stop()
        pg.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
