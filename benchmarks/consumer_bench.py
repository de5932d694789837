"""A project replica's consumer, alone: its CPU per event while one client's writes trickle in.

The consumer is the one every service with a project replica runs (``ProjectDirectory``'s
handlers on the projects stream, lingering, batches of 50), on embedded Postgres and NATS, under
uvloop as in the services. A second process publishes ``project.created`` events to JetStream at
a steady rate (one client's creates through the gateway come at about 300 a second). The figure
is this process's CPU time (the consumer's, the publisher excluded) from the first publish until
every event is applied, divided by the events; runs of each linger interleave, so a change in
the machine's speed touches all of them alike.

    python3 storycore.py bench consumer_bench
    python3 storycore.py bench consumer_bench -- --rate 100 --lingers 0.05,0.1 --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import nats
import uvloop
from nats.js.api import ConsumerConfig, DeliverPolicy
from prometheus_client import REGISTRY
from sqlalchemy import MetaData, func, select, text
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from storycore_shared.db import sqlalchemy_url
from storycore_shared.events.broker import Broker, ensure_stream
from storycore_shared.events.consumer import EventConsumer
from storycore_shared.events.contracts import projects as project_events
from storycore_shared.events.contracts.projects import ProjectCreated
from storycore_shared.events.envelope import CloudEvent
from storycore_shared.events.tables import EventTables
from storycore_shared.replicas.projects import ProjectDirectory, project_replica_table
from storycore_testkit.infra.servers import EmbeddedNats, EmbeddedPostgres
from storycore_testkit.polling import eventually

SCHEMA = "bench_replica"


async def publish(url: str, count: int, rate: float) -> None:
    """The publisher process: ``count`` project.created events, ``rate`` a second."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    owner = uuid.uuid4()
    started = time.perf_counter()
    for n in range(count):
        project = uuid.uuid4()
        event = CloudEvent.wrap(
            ProjectCreated(
                id=project,
                project_id=project,
                owner_id=owner,
                name=f"project {n}",
                is_public=False,
                status="draft",
                version=1,
                resolution_width=1920,
                resolution_height=1080,
            ),
            source="projects",
        )
        await js.publish(event.type, event.to_bytes(), headers={"Nats-Msg-Id": event.id})
        if (delay := started + (n + 1) / rate - time.perf_counter()) > 0:
            await asyncio.sleep(delay)
    await nc.close()


class NewEventsConsumer(EventConsumer):
    """A durable that starts at the stream's end: each run applies only its own events."""

    def _config(self) -> ConsumerConfig:
        config = super()._config()
        config.deliver_policy = DeliverPolicy.NEW
        return config


async def nothing_to_cascade(_session: Any, _data: Any) -> None:
    return None


async def measure(admin_url: str, nats_url: str, args: argparse.Namespace) -> None:
    metadata = MetaData(schema=SCHEMA)
    tables = EventTables.on(metadata)
    directory = ProjectDirectory(project_replica_table(metadata), "http://127.0.0.1:9")
    engine = create_async_engine(sqlalchemy_url(admin_url), pool_size=5)
    async with engine.begin() as conn:
        await conn.execute(text(f'create schema "{SCHEMA}"'))
        await conn.run_sync(metadata.create_all)
    broker = Broker(nats_url, name="bench")
    await broker.start()
    await ensure_stream(await broker.jetstream(), project_events.STREAM)
    count = int(args.rate * args.seconds)
    figures: dict[float, list[tuple[float, float]]] = {linger: [] for linger in args.lingers}
    print(
        f"{count} project.created events per run at {args.rate:.0f} a second; consumer CPU per "
        "event (this process), and events per transaction"
    )
    for round_ in range(args.rounds):
        for linger in args.lingers:
            name = f"bench-{round_}-{int(linger * 1000)}"
            consumer = NewEventsConsumer(
                name=name,
                stream=project_events.STREAM,
                handlers=directory.handlers(nothing_to_cascade),
                sessionmaker=async_sessionmaker(engine, expire_on_commit=False),
                tables=tables,
                broker=broker,
                linger=linger,
            )
            await consumer.start()
            await asyncio.sleep(0.5)  # bound and fetching
            handled, batches = _counted(name)
            cpu = time.process_time()
            publisher = await asyncio.create_subprocess_exec(
                sys.executable, __file__, "publish", nats_url, str(count), str(args.rate)
            )
            await publisher.wait()

            async def applied(name: str = name, handled: float = handled) -> bool:
                return _counted(name)[0] - handled >= count

            await eventually(applied, within=60, what="every event applied")
            per_event_us = 1e6 * (time.process_time() - cpu) / count
            per_batch = count / max(1.0, _counted(name)[1] - batches)
            await consumer.stop()
            figures[linger].append((per_event_us, per_batch))
            print(
                f"  round {round_ + 1}, linger {1000 * linger:4.0f} ms: {per_event_us:6.1f} us "
                f"per event, {per_batch:5.1f} events per transaction"
            )
    async with engine.connect() as conn:
        rows = await conn.scalar(select(func.count()).select_from(directory.table))
    print(f"replica rows: {rows} (expected {count * args.rounds * len(args.lingers)})")
    for linger, runs in figures.items():
        print(
            f"linger {1000 * linger:4.0f} ms: median {statistics.median(r[0] for r in runs):.1f} "
            f"us per event, {statistics.median(r[1] for r in runs):.1f} events per transaction"
        )
    await broker.close()
    await engine.dispose()


def _counted(name: str) -> tuple[float, float]:
    """Events applied and transactions, by the consumer's own Prometheus counters."""
    labels = {"consumer": name}
    handled = REGISTRY.get_sample_value("storycore_events_handled_total", labels)
    batches = REGISTRY.get_sample_value("storycore_events_transactions_total", labels)
    return handled or 0.0, batches or 0.0


def main() -> None:
    if sys.argv[1:2] == ["publish"]:
        uvloop.run(publish(sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=300.0, help="events a second")
    parser.add_argument("--seconds", type=float, default=8.0, help="per run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--lingers",
        type=lambda v: tuple(float(x) for x in v.split(",")),
        default=(0.05, 0.1, 0.2),
        help="seconds, comma-separated",
    )
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="storycore-consumer-"))
    folder.chmod(0o755)
    pg = EmbeddedPostgres(folder / "pg").start()
    broker = EmbeddedNats(folder / "nats").start()
    try:
        uvloop.run(measure(pg.admin_url, broker.url, args))
    finally:
        broker.stop()
        pg.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
