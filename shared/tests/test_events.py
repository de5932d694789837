"""The outbox, relay and consumer against real Postgres and real JetStream."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import pytest
from nats.js.api import DiscardPolicy, StreamConfig
from nats.js.errors import NotFoundError
from sqlalchemy import bindparam, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from storycore_shared.db import DriverConnection, Prepared, executemany, transaction
from storycore_shared.events.broker import Broker, ensure_stream
from storycore_shared.events.consumer import (
    STORED_PULL_TIMEOUT,
    Batched,
    EventConsumer,
    PullError,
    StoredPull,
)
from storycore_shared.events.envelope import CloudEvent
from storycore_shared.events.outbox import add_event
from storycore_shared.events.relay import OutboxRelay
from storycore_testkit.polling import eventually


async def write_events(kit: Any, count: int, *, start: int = 0) -> list[str]:
    ids = []
    for n in range(start, start + count):
        async with transaction(kit.sessionmaker) as session:
            event = await add_event(
                session, kit.tables, kit.event(id=uuid.uuid4(), n=n), source="kit"
            )
            ids.append(event.id)
    return ids


def applying_handler(kit: Any, *, fail: bool = False) -> Any:
    async def handle(session: Any, data: Any) -> None:
        if fail:
            raise RuntimeError("this handler always fails")
        await session.execute(
            insert(kit.applied).values(event_id=str(data.id), entity_id=data.id, n=data.n)
        )

    return handle


def make_consumer(kit: Any, broker: Broker, **kwargs: Any) -> EventConsumer:
    handler = kwargs.pop("handler", None) or applying_handler(kit)
    return EventConsumer(
        name=f"{kit.name}-consumer",
        stream=kit.stream,
        handlers={kit.event: handler},
        sessionmaker=kit.sessionmaker,
        tables=kit.tables,
        broker=broker,
        **kwargs,
    )


async def test_relay_publishes_committed_events_in_order_with_msg_id(kit: Any, broker: Broker):
    relay = OutboxRelay(
        database_url=kit.database_url, tables=kit.tables, broker=broker, streams=[kit.stream]
    )
    await relay.start()
    try:
        ids = await write_events(kit, 20)

        async def rolled_back_write() -> None:
            async with transaction(kit.sessionmaker) as session:
                await add_event(
                    session, kit.tables, kit.event(id=uuid.uuid4(), n=999), source="kit"
                )
                raise RuntimeError("abort")

        with pytest.raises(RuntimeError):  # a rolled-back write must not publish its event
            await rolled_back_write()
        js = await broker.jetstream()

        async def all_published() -> bool:
            info = await js.stream_info(kit.stream.name)
            return bool(info.state.messages == 20)

        await eventually(all_published, within=10, what="20 events in the stream")
        sub = await js.pull_subscribe(f"{kit.name}.>", stream=kit.stream.name)
        messages = await sub.fetch(20, timeout=5)
        assert [m.headers["Nats-Msg-Id"] for m in messages] == ids  # type: ignore[index]
        assert [CloudEvent.model_validate_json(m.data).data["n"] for m in messages] == list(
            range(20)
        )
        assert await kit.unpublished_count() == 0
        assert relay.role == "leader"
    finally:
        await relay.stop()


async def test_relay_marks_published_only_what_jetstream_acknowledged(kit: Any, broker: Broker):
    js = await broker.jetstream()
    # A stream with room for 10 messages that refuses more: most of the relay's batch is refused.
    config = StreamConfig(
        name=kit.stream.name,
        subjects=kit.stream.subjects,
        max_msgs=10,
        discard=DiscardPolicy.NEW,
        duplicate_window=kit.stream.duplicate_window,
    )
    await js.add_stream(config)
    ids = await write_events(kit, 30)
    relay = OutboxRelay(
        database_url=kit.database_url,
        tables=kit.tables,
        broker=broker,
        streams=[kit.stream],
        publish_timeout=2,
    )
    await relay.start()
    try:

        async def refused_after_ten() -> bool:
            return relay.last_error is not None and await _published(kit) == 10

        await eventually(refused_after_ten, within=10, what="10 acknowledged, the rest refused")
        assert relay.last_error is not None
        assert "maximum messages" in relay.last_error
        config.max_msgs = -1  # room again: the rest go, after the first ten
        await js.update_stream(config)
        await eventually(lambda: _is_count(_published(kit), 30), within=15, what="all published")
        sub = await js.pull_subscribe(f"{kit.name}.>", stream=kit.stream.name)
        messages = await sub.fetch(30, timeout=5)
        assert [m.headers["Nats-Msg-Id"] for m in messages] == ids  # type: ignore[index]
        assert (await js.stream_info(kit.stream.name)).state.messages == 30
    finally:
        await relay.stop()


async def _published(kit: Any) -> int:
    async with kit.engine.connect() as conn:
        count = await conn.scalar(
            select(func.count())
            .select_from(kit.tables.outbox)
            .where(kit.tables.outbox.c.published_at.is_not(None))
        )
    return int(count or 0)


async def _is_count(value: Awaitable[int], expected: int) -> bool:
    return await value == expected


async def test_second_relay_stands_by_while_the_first_leads(kit: Any, broker: Broker):
    first = OutboxRelay(
        database_url=kit.database_url, tables=kit.tables, broker=broker, streams=[kit.stream]
    )
    second = OutboxRelay(
        database_url=kit.database_url, tables=kit.tables, broker=broker, streams=[kit.stream]
    )
    await first.start()
    await eventually(lambda: _is(first.role, "leader"), within=10, what="first leads")
    await second.start()
    try:
        await eventually(lambda: _is(second.role, "standby"), within=10, what="second waits")
        await first.stop()
        await eventually(lambda: _is(second.role, "leader"), within=10, what="second takes over")
    finally:
        await second.stop()


async def _is(value: str, expected: str) -> bool:
    return value == expected


async def test_consumer_applies_a_redelivered_event_once(kit: Any, broker: Broker):
    js = await broker.jetstream()
    await ensure_stream(js, kit.stream)
    event = CloudEvent.wrap(kit.event(id=uuid.uuid4(), n=7), source="kit")
    # The same event twice, under different message ids: JetStream cannot dedupe it, the inbox must.
    for msg_id in ("first", "second"):
        await js.publish(event.type, event.to_bytes(), headers={"Nats-Msg-Id": msg_id})
    consumer = make_consumer(kit, broker)
    await consumer.start()
    try:

        async def both_seen() -> bool:
            async with kit.engine.connect() as conn:
                seen = await conn.scalar(
                    select(func.count()).select_from(kit.tables.processed_event)
                )
            return seen == 1 and await _drained(js, kit.stream.name, consumer.name)

        await eventually(both_seen, within=10, what="both deliveries handled")
        assert await kit.applied_count() == 1
    finally:
        await consumer.stop()


async def test_failing_handler_dead_letters_after_max_deliver(kit: Any, broker: Broker):
    js = await broker.jetstream()
    await ensure_stream(js, kit.stream)
    event = CloudEvent.wrap(kit.event(id=uuid.uuid4(), n=1), source="kit")
    await js.publish(event.type, event.to_bytes())
    consumer = make_consumer(kit, broker, handler=applying_handler(kit, fail=True), max_deliver=3)
    await consumer.start()
    try:

        async def dead_lettered() -> bool:
            async with kit.engine.connect() as conn:
                rows = (await conn.execute(select(kit.tables.dead_letter))).all()
            return len(rows) == 1

        await eventually(dead_lettered, within=15, what="one dead letter")
        async with kit.engine.connect() as conn:
            row = (await conn.execute(select(kit.tables.dead_letter))).one()
        assert row.event_id == event.id
        assert row.deliveries == 3
        assert "always fails" in row.error
        assert await kit.applied_count() == 0

        async def terminated() -> bool:
            return await _drained(js, kit.stream.name, consumer.name)

        await eventually(terminated, within=5, what="message terminated")
    finally:
        await consumer.stop()


async def test_undecodable_message_is_dead_lettered_at_once(kit: Any, broker: Broker):
    js = await broker.jetstream()
    await ensure_stream(js, kit.stream)
    await js.publish(kit.event.event_type, b"{not json")
    consumer = make_consumer(kit, broker)
    await consumer.start()
    try:

        async def one_dead() -> bool:
            async with kit.engine.connect() as conn:
                rows = (await conn.execute(select(kit.tables.dead_letter))).all()
            return len(rows) == 1 and rows[0].deliveries == 1

        await eventually(one_dead, within=10, what="poison message dead-lettered")
    finally:
        await consumer.stop()


async def _drained(js: Any, stream: str, consumer: str) -> bool:
    """Every message delivered and acknowledged (False while the consumer does not exist yet)."""
    try:
        info = await js.consumer_info(stream, consumer)
    except NotFoundError:
        return False
    return bool(info.num_ack_pending == 0 and info.num_pending == 0)


CONSUMER_PROCESS = Path(__file__).with_name("consumer_process.py")


async def test_consumer_killed_mid_batch_applies_every_event_exactly_once(
    kit: Any, broker: Broker, tmp_path: Path
):
    total = 120
    js = await broker.jetstream()
    await ensure_stream(js, kit.stream)
    for n in range(total):
        event = CloudEvent.wrap(kit.event(id=uuid.uuid4(), n=n), source="kit")
        await js.publish(event.type, event.to_bytes(), headers={"Nats-Msg-Id": event.id})
    env = {
        **os.environ,
        "KIT_DATABASE_URL": kit.database_url,
        "KIT_NAME": kit.name,
        "KIT_NATS_URL": broker.url,
    }

    log = tmp_path / "consumer.log"

    def spawn() -> subprocess.Popen[bytes]:
        with log.open("ab") as sink:
            return subprocess.Popen(
                [sys.executable, str(CONSUMER_PROCESS)],
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )

    first = spawn()
    try:
        await eventually(
            lambda: _at_least(kit, total // 4), within=30, what="a quarter applied before the kill"
        )
        first.kill()  # SIGKILL mid-batch: fetched messages stay unacknowledged
        first.wait(10)
        applied_at_kill = await kit.applied_count()
        assert applied_at_kill < total, "the kill came too late to be mid-batch"
        second = spawn()
        try:
            await eventually(lambda: _at_least(kit, total), within=60, what="all applied")

            async def drained() -> bool:
                return await _drained(js, kit.stream.name, f"{kit.name}-consumer")

            await eventually(drained, within=30, what="every message acknowledged")
        finally:
            second.kill()
            second.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    rows = await kit.applied_rows()
    assert len(rows) == total
    assert sorted(r.n for r in rows) == list(range(total))


BURST = 500
STALL_AT = 260  # inside the 11th batch of 25: the first process is killed in that handler


@pytest.mark.parametrize("driver", [False, True], ids=["in-a-session", "on-the-driver"])
async def test_a_burst_is_applied_in_batches_exactly_once_across_a_kill_mid_batch(
    kit: Any, broker: Broker, tmp_path: Path, driver: bool
):
    js = await broker.jetstream()
    await ensure_stream(js, kit.stream)
    acks = []
    for n in range(BURST):
        event = CloudEvent.wrap(kit.event(id=uuid.uuid4(), n=n), source="kit")
        acks.append(
            await js.publish_async(event.type, event.to_bytes(), headers={"Nats-Msg-Id": event.id})
        )
    await asyncio.gather(*acks)
    started = tmp_path / "started.txt"
    log = tmp_path / "consumer.log"
    env = {
        **os.environ,
        "KIT_DATABASE_URL": kit.database_url,
        "KIT_NAME": kit.name,
        "KIT_NATS_URL": broker.url,
        "KIT_HANDLER_SECONDS": "0.005",
        "KIT_BATCH_SIZE": "25",
        "KIT_STARTED_FILE": str(started),
        "KIT_DRIVER": "1" if driver else "0",
    }

    def spawn(**extra: str) -> subprocess.Popen[bytes]:
        with log.open("ab") as sink:
            return subprocess.Popen(
                [sys.executable, str(CONSUMER_PROCESS)],
                env={**env, **extra},
                stdout=sink,
                stderr=subprocess.STDOUT,
            )

    def started_events() -> list[int]:
        return [int(line) for line in started.read_text().split()] if started.exists() else []

    async def stalled() -> bool:
        return STALL_AT in started_events()

    first = spawn(KIT_STALL_AT=str(STALL_AT))
    try:
        await eventually(stalled, within=60, what=f"the handler of event {STALL_AT} running")
        first.kill()  # SIGKILL inside a handler: its batch's transaction is open
        first.wait(10)
        at_kill = {row.n for row in await kit.applied_rows()}
        in_flight = set(started_events()) - at_kill
        # Killed mid-batch: events whose handlers ran in the open transaction are not applied.
        assert STALL_AT in in_flight
        assert len(at_kill) < BURST
        second = spawn()
        try:
            await eventually(lambda: _at_least(kit, BURST), within=90, what="all applied")

            async def drained() -> bool:
                return await _drained(js, kit.stream.name, f"{kit.name}-consumer")

            await eventually(drained, within=30, what="every message acknowledged")
        finally:
            second.kill()
            second.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    rows = await kit.applied_rows()
    assert sorted(r.n for r in rows) == list(range(BURST))  # each exactly once
    transactions = {r.tx for r in rows}
    assert None not in transactions
    assert len(transactions) < BURST // 5, f"{len(transactions)} transactions for {BURST} events"


def tx_recording_handler(kit: Any) -> Any:
    async def handle(session: Any, data: Any) -> None:
        tx = await session.scalar(text("select txid_current()"))
        await session.execute(
            insert(kit.applied).values(event_id=str(data.id), entity_id=data.id, n=data.n, tx=tx)
        )

    return handle


@pytest.mark.parametrize("linger", [0.0, 0.5])
async def test_events_trickling_in_share_a_transaction_when_the_consumer_lingers(
    kit: Any, broker: Broker, linger: float
):
    """One client's writes arrive one at a time; lingering gathers them into batches."""
    js = await broker.jetstream()
    await ensure_stream(js, kit.stream)
    consumer = make_consumer(kit, broker, handler=tx_recording_handler(kit), linger=linger)
    await consumer.start()
    total = 12
    try:
        for n in range(total):
            await _publish(js, kit, n)
            if not linger:  # each one applied on its own before the next is published
                await eventually(
                    lambda n=n: _at_least(kit, n + 1), within=10, what=f"event {n} applied"
                )
            await asyncio.sleep(0.02)
        await _all_applied(js, kit, consumer, total)
    finally:
        await consumer.stop()
    rows = await kit.applied_rows()
    assert sorted(r.n for r in rows) == list(range(total))  # each exactly once
    transactions = {r.tx for r in rows}
    if linger:
        # 12 events 20 ms apart, a 500 ms linger: a few batches, not one transaction each.
        assert len(transactions) <= total // 3, f"{len(transactions)} transactions"
    else:
        assert len(transactions) == total


async def test_a_lingering_consumer_takes_a_backlog_in_full_batches_without_waiting(
    kit: Any, broker: Broker
):
    """Events already stored fill a lingering consumer's batches at once: it waits its linger
    only for a batch the stream cannot fill (here the last one), in transactions of 50."""
    js = await broker.jetstream()
    await ensure_stream(js, kit.stream)
    acks = []
    for n in range(120):
        event = CloudEvent.wrap(kit.event(id=uuid.uuid4(), n=n), source="kit")
        acks.append(
            await js.publish_async(event.type, event.to_bytes(), headers={"Nats-Msg-Id": event.id})
        )
    await asyncio.gather(*acks)
    linger = 8.0
    consumer = make_consumer(kit, broker, handler=tx_recording_handler(kit), linger=linger)
    began = time.monotonic()
    await consumer.start()
    try:
        await eventually(lambda: _at_least(kit, 100), within=linger / 2, what="two full batches")
        assert time.monotonic() - began < linger
        await _all_applied(js, kit, consumer, 120)
    finally:
        await consumer.stop()
    rows = await kit.applied_rows()
    assert sorted(r.n for r in rows) == list(range(120))
    sizes = Counter(r.tx for r in rows)
    assert sorted(sizes.values()) == [20, 50, 50]


async def test_a_stored_pull_takes_what_is_stored_at_once_and_nothing_more(
    kit: Any, broker: Broker
):
    """A lingering consumer's second pull: what the stream holds now, answered at once."""
    js = await broker.jetstream()
    await ensure_stream(js, kit.stream)
    consumer = make_consumer(kit, broker)
    await js.add_consumer(kit.stream.name, consumer._config())
    for n in range(5):
        await _publish(js, kit, n)
    pull = await StoredPull(await broker.connected(), kit.stream.name, consumer.name).open()
    try:
        first = await pull.take(3)
        started = time.monotonic()
        rest = await pull.take(10)  # two are left: the server says so without waiting
        empty = await pull.take(10)
        answered_in = time.monotonic() - started
        assert [_n(m) for m in first] == [0, 1, 2]
        assert [_n(m) for m in rest] == [3, 4]
        assert empty == []
        assert answered_in < STORED_PULL_TIMEOUT / 2
        for msg in first + rest:
            await msg.ack()
        await _publish(js, kit, 5)
        assert [_n(m) for m in await pull.take(10)] == [5]  # a new one comes in a later pull
        await js.delete_consumer(kit.stream.name, consumer.name)
        with pytest.raises(PullError):  # nobody answers for a deleted consumer: not "empty"
            await pull.take(10)
    finally:
        await pull.close()


async def test_a_stopped_consumer_leaves_nothing_to_hold_up_its_connections_drain(
    kit: Any, nats_url: str
):
    """A consumer gives up its inboxes when it stops, and when its loop starts over. A pull
    request cut short by a restart is answered later (408, its expiry); an inbox still
    subscribed queues that answer, and the connection's drain then waits for it until the
    broker gives up (5 s)."""
    broker = Broker(nats_url, name="kit-drain-test")
    await broker.start()
    await asyncio.wait_for(broker.connected(), timeout=10)
    try:
        js = await broker.jetstream()
        await ensure_stream(js, kit.stream)
        # Fetches wait 2 s, the watchdog restarts a loop idle for 1 s: restarts mid-fetch.
        consumer = make_consumer(kit, broker, linger=0.05, fetch_timeout=2.0, stall_after=1.0)
        await consumer.start()
        try:
            for n in range(3):
                await _publish(js, kit, n)
            await _all_applied(js, kit, consumer, 3)
            await eventually(
                lambda: _true(consumer.restarts >= 2), within=15, what="the loop restarted twice"
            )
            await asyncio.sleep(2.5)  # the cut-short pull requests expire and are answered
        finally:
            await consumer.stop()
        started = time.monotonic()
    finally:
        await broker.close()
    assert time.monotonic() - started < 2.0


async def test_closing_the_broker_is_not_logged_as_an_outage(
    nats_url: str, caplog: pytest.LogCaptureFixture
):
    broker = Broker(nats_url, name="kit-close-test")
    await broker.start()
    await asyncio.wait_for(broker.connected(), timeout=10)
    with caplog.at_level(logging.INFO, logger="storycore_shared.events.broker"):
        await broker.close()
    logged = [r.getMessage() for r in caplog.records if r.name == "storycore_shared.events.broker"]
    assert "nats.closed" in logged
    assert "nats.disconnected" not in logged


async def _true(value: bool) -> bool:
    return value


def _n(msg: Any) -> int:
    return int(CloudEvent.model_validate_json(msg.data).data["n"])


async def test_a_failing_event_does_not_hold_up_the_rest_of_its_batch(kit: Any, broker: Broker):
    js = await broker.jetstream()
    await ensure_stream(js, kit.stream)
    total, poison = 20, 7
    for n in range(total):
        await _publish(js, kit, n)
    inner = applying_handler(kit)

    async def handle(session: Any, data: Any) -> None:
        if data.n == poison:
            raise RuntimeError("this event always fails")
        await inner(session, data)

    consumer = make_consumer(kit, broker, handler=handle, max_deliver=2)
    await consumer.start()
    try:

        async def settled() -> bool:
            async with kit.engine.connect() as conn:
                dead = await conn.scalar(select(func.count()).select_from(kit.tables.dead_letter))
            return dead == 1 and await _drained(js, kit.stream.name, consumer.name)

        await eventually(settled, within=20, what="the others applied, the poison dead-lettered")
        rows = await kit.applied_rows()
        assert sorted(r.n for r in rows) == [n for n in range(total) if n != poison]
        async with kit.engine.connect() as conn:
            row = (await conn.execute(select(kit.tables.dead_letter))).one()
            inbox = await conn.scalar(select(func.count()).select_from(kit.tables.processed_event))
        assert "always fails" in row.error
        assert row.deliveries == 2
        assert inbox == total - 1  # the failed event left no inbox row
    finally:
        await consumer.stop()


async def _at_least(kit: Any, count: int) -> bool:
    return await kit.applied_count() >= count


async def _all_applied(js: Any, kit: Any, consumer: EventConsumer, total: int) -> None:
    """Wait until ``total`` events are applied and the consumer has acknowledged them all."""

    async def settled() -> bool:
        return await _at_least(kit, total) and await _drained(js, kit.stream.name, consumer.name)

    await eventually(settled, within=20, what="every event applied and acknowledged")


async def test_consumer_resumes_after_nats_restart(kit: Any, infra_dir: Path):
    from storycore_testkit.infra.servers import EmbeddedNats

    # A NATS of this test's own, so killing it disturbs nobody else.
    server = EmbeddedNats(infra_dir / f"nats-{kit.name}").start()
    broker = Broker(server.url, name="restart-test", ping_interval=1)
    await broker.start()
    consumer = None
    try:
        js = await asyncio.wait_for(broker.jetstream(), timeout=10)
        await ensure_stream(js, kit.stream)
        consumer = make_consumer(kit, broker, fetch_timeout=0.5)
        await consumer.start()
        await _publish(js, kit, 0)
        await eventually(lambda: _at_least(kit, 1), within=10, what="first event applied")
        server.kill()
        server.start()
        await _publish_when_back(broker, kit, 1)
        took = await eventually(
            lambda: _at_least(kit, 2), within=15, what="consumer resumed after restart"
        )
        assert took < 15
        assert await kit.applied_count() == 2
    finally:
        if consumer is not None:
            await consumer.stop()
        await broker.close()
        server.stop()


async def _publish(js: Any, kit: Any, n: int) -> None:
    event = CloudEvent.wrap(kit.event(id=uuid.uuid4(), n=n), source="kit")
    await js.publish(event.type, event.to_bytes(), headers={"Nats-Msg-Id": event.id})


async def _publish_when_back(broker: Broker, kit: Any, n: int) -> None:
    async def sent() -> bool:
        try:
            await _publish((await broker.jetstream()), kit, n)
            return True
        except Exception:
            return False

    await eventually(sent, within=15, what="publish after the restart")


def batched_handler(
    kit: Any,
    runs: list[list[int]],
    *,
    many_fails: bool = False,
    driver: bool = False,
    given: list[type] | None = None,
) -> Batched:
    """Applies an event alone through ``one`` and a run of them through ``many`` (one
    executemany), recording the events of each run ``many`` was given (and in ``given`` what
    it was given to run them on). With ``driver``, ``many`` runs on a driver connection too."""
    insert_row = Prepared(
        insert(kit.applied).values(
            event_id=bindparam("event_id"), entity_id=bindparam("entity_id"), n=bindparam("n")
        )
    )

    async def one(session: Any, data: Any) -> None:
        await session.execute(
            insert(kit.applied).values(event_id=str(data.id), entity_id=data.id, n=data.n)
        )

    async def many(db: Any, items: list[Any]) -> None:
        runs.append([d.n for d in items])
        if given is not None:
            given.append(type(db))
        if many_fails:
            raise RuntimeError("this run cannot be applied together")
        rows = [{"event_id": str(d.id), "entity_id": d.id, "n": d.n} for d in items]
        await executemany(db, insert_row, rows)

    return Batched(one, many, driver=driver)


@pytest.mark.parametrize("driver", [False, True], ids=["in-a-session", "on-the-driver"])
@pytest.mark.parametrize("many_fails", [False, True])
async def test_a_batched_handler_applies_a_fetched_run_in_one_call_exactly_once(
    kit: Any, broker: Broker, many_fails: bool, driver: bool
):
    """Events waiting when the consumer starts arrive as one batch: its Batched handler gets
    them as one run, in order. A run that fails is applied again one event at a time. A
    handler with ``driver`` gets its runs on asyncpg's connection, a session otherwise."""
    js = await broker.jetstream()
    await ensure_stream(js, kit.stream)
    total = 30
    for n in range(total):
        await _publish(js, kit, n)
    runs: list[list[int]] = []
    given: list[type] = []
    handler = batched_handler(kit, runs, many_fails=many_fails, driver=driver, given=given)
    consumer = make_consumer(kit, broker, handler=handler, max_deliver=2)
    await consumer.start()
    try:
        await _all_applied(js, kit, consumer, total)
    finally:
        await consumer.stop()
    rows = await kit.applied_rows()
    assert sorted(r.n for r in rows) == list(range(total))  # each exactly once
    assert max(len(run) for run in runs) > 1
    assert all(run == sorted(run) for run in runs)  # in the stream's order
    assert set(given) == {DriverConnection if driver else AsyncSession}
    async with kit.engine.connect() as conn:
        dead = await conn.scalar(select(func.count()).select_from(kit.tables.dead_letter))
        inbox = await conn.scalar(select(func.count()).select_from(kit.tables.processed_event))
    assert (dead, inbox) == (0, total)
