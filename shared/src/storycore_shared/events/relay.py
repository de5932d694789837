"""The outbox relay: publishes committed events to JetStream, in order, exactly as written.

One relay per service is active at a time (it holds a Postgres advisory lock; other replicas
stand by). It is woken by ``LISTEN`` on the outbox channel, with a short fallback poll, publishes
pending rows in ``seq`` order with ``Nats-Msg-Id`` = event id, a fetched batch at a time and
pipelined (every message sent, then the PubAcks awaited together), and marks a row published
only after JetStream's PubAck for it. While NATS is down rows simply wait; nothing is lost and
no user write fails. Published rows are kept ``retention_days`` so :func:`republish` can send
them again::

    relay = OutboxRelay(database_url=settings.DATABASE_URL, tables=event_tables,
                        broker=broker, streams=[contracts.projects.STREAM])
    await relay.start()
    ...
    await relay.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import logging
import time
from datetime import datetime
from typing import Any

import asyncpg
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from prometheus_client import Counter

from storycore_shared.db import asyncpg_dsn
from storycore_shared.events.broker import Broker, ensure_stream
from storycore_shared.events.contracts import StreamSpec
from storycore_shared.events.tables import EventTables

logger = logging.getLogger(__name__)

# How long the relay's connection keeps a prepared statement. Postgres plans a prepared
# statement for the table it sees then: the mark, prepared while the outbox was a few rows,
# kept a sequential scan as the table grew (2 ms a mark at 20,000 rows instead of 0.3) until
# the next ANALYZE. Prepared again every few seconds, it is planned for the table as it is.
STATEMENT_LIFETIME_SECONDS = 10

PUBLISHED = Counter("storycore_outbox_published_total", "Events published from the outbox")
PUBLISH_FAILURES = Counter("storycore_outbox_publish_failures_total", "Failed publish attempts")


class _PublishFailed(Exception):
    """JetStream did not acknowledge; the row stays pending (database errors propagate)."""


class PubAckError(Exception):
    """JetStream answered a publish with an error (or no stream took the subject)."""


class _PipelinedPublisher:
    """JetStream publishes sent back to back on one connection, their PubAcks read as they come.

    nats.py's ``publish_async`` leaves a publish whose PubAck is an error unsettled forever
    (``APIError.from_error`` raises inside its reply callback), so the relay reads its PubAcks
    itself, on one subscription under the identity's inbox (``_INBOX.<user>.``, as the bus
    allows)::

        future = await publisher.send(subject, payload, msg_id=event_id)
        await future   # None once JetStream has stored it; PubAckError when it refused it
    """

    def __init__(self, nc: NATS) -> None:
        self.nc = nc
        self.inbox = ""
        self._futures: dict[str, asyncio.Future[None]] = {}
        self._tokens = itertools.count(1)

    async def send(self, subject: str, payload: bytes, *, msg_id: str) -> asyncio.Future[None]:
        if not self.inbox:
            inbox = self.nc.new_inbox()
            await self.nc.subscribe(f"{inbox}.*", cb=self._on_reply)
            self.inbox = inbox
        token = str(next(self._tokens))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._futures[token] = future
        future.add_done_callback(functools.partial(self._forget, token))
        await self.nc.publish(
            subject, payload, reply=f"{self.inbox}.{token}", headers={"Nats-Msg-Id": msg_id}
        )
        return future

    def _forget(self, token: str, _: asyncio.Future[None]) -> None:
        self._futures.pop(token, None)

    async def _on_reply(self, msg: Msg) -> None:
        future = self._futures.get(msg.subject.rpartition(".")[2])
        if future is None or future.done():
            return
        if msg.headers and msg.headers.get("Status") == "503":
            future.set_exception(PubAckError("no stream takes this subject"))
            return
        try:
            answer = json.loads(msg.data)
        except ValueError:
            future.set_exception(PubAckError(f"unreadable PubAck: {msg.data[:200]!r}"))
            return
        if not isinstance(answer, dict) or "error" in answer:
            error = answer.get("error") if isinstance(answer, dict) else answer
            description = error.get("description") if isinstance(error, dict) else error
            future.set_exception(PubAckError(str(description)))
            return
        future.set_result(None)


class OutboxRelay:
    def __init__(
        self,
        *,
        database_url: str,
        tables: EventTables,
        broker: Broker,
        streams: list[StreamSpec],
        batch_size: int = 200,
        poll_interval: float = 1.0,
        retention_days: int = 7,
        publish_timeout: float = 5.0,
    ) -> None:
        self.dsn = asyncpg_dsn(database_url)
        self.tables = tables
        self.broker = broker
        self.streams = streams
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.retention_days = retention_days
        self.publish_timeout = publish_timeout
        self.role = "starting"
        self.last_error: str | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._publisher: _PipelinedPublisher | None = None
        self._last_cleanup = 0.0
        self._outbox = f'"{tables.schema}".outbox'

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"{self.tables.schema}-relay")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def status(self) -> dict[str, Any]:
        return {"role": self.role, "last_error": self.last_error}

    async def _run(self) -> None:
        delay = 0.2
        while True:
            try:
                await self._lead()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.role = "reconnecting"
                self.last_error = repr(exc)
                logger.warning("outbox.relay.failed", extra={"error": repr(exc), "retry_in": delay})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _lead(self) -> None:
        conn: asyncpg.Connection = await asyncpg.connect(
            self.dsn, timeout=5, max_cached_statement_lifetime=STATEMENT_LIFETIME_SECONDS
        )
        try:
            key = f"storycore.relay.{self.tables.schema}"
            while not await conn.fetchval("select pg_try_advisory_lock(hashtext($1))", key):
                self.role = "standby"
                await asyncio.sleep(2)
            await conn.add_listener(self.tables.notify_channel, self._on_notify)
            js = await self.broker.jetstream()
            for spec in self.streams:
                await ensure_stream(js, spec)
            self.role = "leader"
            self.last_error = None
            logger.info("outbox.relay.leading", extra={"schema": self.tables.schema})
            backoff = 0.1
            while True:
                self._wake.clear()
                try:
                    sent = await self._publish_pending(conn)
                except _PublishFailed as exc:  # NATS is down or slow: keep the lock, retry.
                    PUBLISH_FAILURES.inc()
                    self.last_error = repr(exc.__cause__)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 2.0)
                    continue
                backoff = 0.1
                if sent == self.batch_size:
                    continue
                await self._cleanup(conn)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self.poll_interval)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), timeout=2)

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    async def _publish_pending(self, conn: asyncpg.Connection) -> int:
        """Publish a batch of pending rows pipelined: every message goes out in ``seq`` order on
        the one connection (so the stream keeps that order), then the PubAcks are awaited
        together. Only acknowledged rows are marked published; the others stay pending and go
        again (``Nats-Msg-Id`` lets JetStream drop a copy it already has)."""
        rows = await conn.fetch(
            f"select seq, event_id, subject, payload::text as payload from {self._outbox} "
            "where published_at is null order by seq limit $1",
            self.batch_size,
        )
        if not rows:
            return 0
        if self._publisher is None:
            self._publisher = _PipelinedPublisher(await self.broker.connected())
        sent: list[tuple[int, asyncio.Future[None]]] = []
        failure: BaseException | None = None
        try:
            for row in rows:  # one coroutine, one connection: the stream gets them in order
                future = await self._publisher.send(
                    row["subject"], row["payload"].encode(), msg_id=row["event_id"]
                )
                sent.append((row["seq"], future))
        except Exception as exc:  # NATS went away mid-batch: keep what was acknowledged
            failure = exc
        acked: list[int] = []
        try:
            if sent:
                _, late = await asyncio.wait([f for _, f in sent], timeout=self.publish_timeout)
                for future in late:
                    future.cancel()
            for seq, future in sent:
                if future.cancelled():
                    failure = failure or TimeoutError("no PubAck in time")
                elif (error := future.exception()) is not None:
                    failure = failure or error
                else:
                    acked.append(seq)
        finally:
            if acked:
                await conn.execute(
                    f"update {self._outbox} set published_at = now() where seq = any($1::bigint[])",
                    acked,
                )
                PUBLISHED.inc(len(acked))
        if failure is not None:
            raise _PublishFailed from failure
        return len(rows)

    async def _cleanup(self, conn: asyncpg.Connection) -> None:
        if time.monotonic() - self._last_cleanup < 600:
            return
        self._last_cleanup = time.monotonic()
        await conn.execute(
            f"delete from {self._outbox} where published_at < now() - make_interval(days => $1)",
            self.retention_days,
        )


async def republish(
    *,
    database_url: str,
    tables: EventTables,
    nats_url: str,
    since: datetime,
    until: datetime,
) -> int:
    """Send the outbox rows created in ``[since, until)`` again, with their original ids.

    JetStream drops the copies still inside its duplicate window; consumers' processed-event
    inbox drops the rest, so re-publishing is always safe.
    """
    broker = Broker(nats_url, name=f"{tables.schema}-republish")
    await broker.start()
    conn: asyncpg.Connection = await asyncpg.connect(asyncpg_dsn(database_url), timeout=5)
    try:
        js = await asyncio.wait_for(broker.jetstream(), timeout=10)
        rows = await conn.fetch(
            f'select event_id, subject, payload::text as payload from "{tables.schema}".outbox '
            "where created_at >= $1 and created_at < $2 order by seq",
            since,
            until,
        )
        for row in rows:
            await js.publish(
                row["subject"], row["payload"].encode(), headers={"Nats-Msg-Id": row["event_id"]}
            )
        return len(rows)
    finally:
        await conn.close()
        await broker.close()
