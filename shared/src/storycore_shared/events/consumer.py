"""Durable JetStream pull consumers with an idempotent inbox and a dead-letter table.

Each fetched batch is applied in one database transaction, every event together with an insert
into ``processed_event``; a redelivered event (even one re-published long after JetStream's
duplicate window) finds its row and is skipped. The acks follow the commit. When a handler
fails, the batch is applied again one event per transaction, so one poison event holds up no
other. A message that keeps failing is kept in ``dead_letter`` with its error after
``max_deliver`` attempts and terminated. A watchdog re-creates the pull subscription when the
fetch loop stalls (nats.py issue 504)::

    consumer = EventConsumer(
        name="shots-projects", stream=contracts.projects.STREAM,
        handlers={ProjectDeleted: on_project_deleted},
        sessionmaker=sessionmaker, tables=event_tables, broker=broker,
    )
    await consumer.start()

A handler is ``async def on_project_deleted(session, data: ProjectDeleted) -> None``; it
flushes, never commits.

Defence in depth behind the bus's permissions: an event whose CloudEvents ``source`` is not the
service that owns its subject (:mod:`storycore_shared.events.bus`: ``project.*`` is
``"projects"``'s), or whose ``type`` is not the subject it arrived on, or whose ``data`` breaks
its contract (e.g. a ``javascript:`` URL), is dead-lettered and changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.client import JetStreamContext
from nats.js.errors import BadRequestError
from prometheus_client import Counter
from pydantic import ValidationError
from sqlalchemy import bindparam, insert, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.sql.dml import ReturningInsert

from storycore_shared.db import (
    DriverConnection,
    Prepared,
    fetchall,
    pooled_driver_connection,
    transaction,
)
from storycore_shared.errors import is_connection_failure
from storycore_shared.events.broker import Broker, ensure_stream
from storycore_shared.events.bus import owner_of_stream, owner_of_subject
from storycore_shared.events.contracts import EventData, StreamSpec
from storycore_shared.events.envelope import CloudEvent
from storycore_shared.events.tables import EventTables

logger = logging.getLogger(__name__)

Handler = Callable[[AsyncSession, Any], Awaitable[None]]


class Batched:
    """A handler that can also apply a run of events in one call.

    ``many(session, items)`` gets the data of consecutive events of a fetched batch whose handler
    is this same object, in their order, inside the batch's transaction; it must leave the same
    state as ``one`` applied to each in turn. A replica that upserts by version does that with
    one statement for the run instead of one per event. Alone (a batch of one, or the fallback
    after a failed batch) an event goes through ``one``.

    With ``driver=True``, ``many`` also takes a :class:`~storycore_shared.db.DriverConnection`
    in place of the session (it runs :class:`~storycore_shared.db.Prepared` statements through
    ``storycore_shared.db.executemany`` and the like). A batch whose every handler is such a
    one is then applied on asyncpg's own connection, inbox rows included: no session, no
    execution context, no ``Result``. For a project replica that is about a fifth less CPU per
    event (``benchmarks/consumer_bench.py``).
    """

    def __init__(
        self,
        one: Handler,
        many: Callable[[Any, list[Any]], Awaitable[None]],
        *,
        driver: bool = False,
    ) -> None:
        self.one = one
        self.many = many
        self.driver = driver

    async def __call__(self, session: AsyncSession, data: Any) -> None:
        await self.one(session, data)


HANDLED = Counter("storycore_events_handled_total", "Events applied", ["consumer"])
DUPLICATES = Counter("storycore_events_duplicate_total", "Redelivered events skipped", ["consumer"])
DEAD = Counter("storycore_events_dead_lettered_total", "Events dead-lettered", ["consumer"])
BATCHES = Counter(
    "storycore_events_transactions_total", "Transactions that applied events", ["consumer"]
)
# How long a lingering consumer waits for the server's answer to its pull of what is stored
# (see StoredPull); the answer normally takes well under a millisecond.
STORED_PULL_TIMEOUT = 1.0
# JetStream's status for a heartbeat, and those that end a pull request normally ("no
# messages", "request timeout"); any other status (409: the consumer was deleted, ...) is an
# error.
_HEARTBEAT = "100"
_END_OF_PULL = frozenset({"404", "408"})


@dataclass(frozen=True, slots=True)
class _Decoded:
    msg: Msg
    event: CloudEvent
    data: EventData
    handler: Handler


def _runs(items: list[_Decoded]) -> list[list[_Decoded]]:
    """Consecutive events that share one :class:`Batched` handler; every other event alone."""

    def key(item: _Decoded) -> object:
        return item.handler if isinstance(item.handler, Batched) else id(item)

    return [list(group) for _, group in itertools.groupby(items, key=key)]


class _PoisonMessage(Exception):
    def __init__(self, reason: str, event_id: str | None = None) -> None:
        super().__init__(reason)
        self.event_id = event_id


class PullError(RuntimeError):
    """JetStream ended a pull request with an error status (the consumer was deleted, its
    leader changed, ...): the fetch loop binds again."""


class StoredPull:
    """What a lingering consumer's stream has stored for it, in one pull on an inbox of its
    own, collected by a callback.

    After its linger, a consumer asks for what arrived meanwhile. nats.py's ``fetch`` would
    hand those messages over one ``next_msg`` at a time, each with two tasks, a timer and a
    uuid of its own: in a consumer alone, a fifth of its CPU per event. :meth:`take` publishes
    one pull request with ``no_wait`` and no ``expires``: the server sends what is stored now,
    up to the batch, then a "no messages" status unless the batch was filled. A subscription
    callback collects the answer as it is read.

    A message that arrives after :meth:`take` gave up waiting is kept for the next take; if
    none comes, it is redelivered after the consumer's ``ack_wait``, like any message that was
    never acknowledged.
    """

    def __init__(self, nc: NATS, stream: str, durable: str) -> None:
        self.nc = nc
        self.subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self.inbox = nc.new_inbox()
        self._subscription: Subscription | None = None
        self._messages: list[Msg] = []
        self._wanted = 0
        self._answered: asyncio.Future[str | None] | None = None

    async def open(self) -> StoredPull:
        self._subscription = await self.nc.subscribe(self.inbox, cb=self._receive)
        return self

    async def close(self) -> None:
        if self._subscription is not None:
            with contextlib.suppress(Exception):
                await self._subscription.unsubscribe()
            self._subscription = None

    async def take(self, wanted: int) -> list[Msg]:
        """Up to ``wanted`` messages (none when nothing is stored).

        Raises :class:`PullError` when the server refuses the pull.
        """
        if len(self._messages) < wanted:
            self._wanted = wanted
            answered = self._answered = asyncio.get_running_loop().create_future()
            request = {"batch": wanted - len(self._messages), "no_wait": True}
            await self.nc.publish(self.subject, json.dumps(request).encode(), reply=self.inbox)
            try:
                async with asyncio.timeout(STORED_PULL_TIMEOUT):
                    status = await answered
            except TimeoutError:
                status = None
            finally:
                self._answered = None
            if status is not None and status not in _END_OF_PULL:
                raise PullError(f"pull request ended with status {status}")
        taken, self._messages = self._messages[:wanted], self._messages[wanted:]
        return taken

    async def _receive(self, msg: Msg) -> None:
        status = JetStreamContext.is_status_msg(msg)
        if status is None:
            self._messages.append(msg)
            if len(self._messages) < self._wanted:
                return
        elif status == _HEARTBEAT:
            return
        if self._answered is not None and not self._answered.done():
            self._answered.set_result(status)


class PullConsumer:
    """A durable JetStream pull consumer's fetch loop, with a watchdog.

    Subclasses give the consumer's configuration (:meth:`_config`) and what to do with one
    message (:meth:`_handle`). The loop (re)creates the durable consumer, binds a pull
    subscription and fetches forever; on any error it backs off and starts over. A watchdog
    restarts the loop when it has made no progress for ``stall_after`` seconds (nats.py's pull
    subscriptions can go silent after a server restart, nats.py issue 504); long handlers call
    :meth:`touch` to show they are alive.

    ``linger`` trades latency for batches: when a fetch brings fewer than ``batch_size``
    messages, the loop waits that long and takes what has arrived meanwhile into the same batch.
    Events that trickle in one at a time (a single client's writes) would otherwise cost one
    transaction each. The default, 0, applies every event as soon as it arrives; consumers that
    keep a copy of another service's data take ``REPLICA_LINGER_SECONDS``.
    """

    def __init__(
        self,
        *,
        name: str,
        stream: StreamSpec,
        broker: Broker,
        batch_size: int,
        fetch_timeout: float,
        stall_after: float,
        linger: float = 0.0,
    ) -> None:
        self.name = name
        self.stream = stream
        self.broker = broker
        self.batch_size = batch_size
        self.fetch_timeout = fetch_timeout
        self.stall_after = stall_after
        self.linger = linger
        self.subscribed = False
        self.restarts = 0
        self.last_error: str | None = None
        self._last_progress = time.monotonic()
        self._loop_task: asyncio.Task[None] | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._stored: StoredPull | None = None
        self._sub: JetStreamContext.PullSubscription | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self._spawn_loop()
        self._watchdog = asyncio.create_task(self._watch(), name=f"{self.name}-watchdog")

    async def stop(self) -> None:
        for task in (self._watchdog, self._loop_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self._release()

    def status(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "subscribed": self.subscribed,
            "seconds_since_progress": round(time.monotonic() - self._last_progress, 1),
            "restarts": self.restarts,
            "last_error": self.last_error,
        }

    @property
    def healthy(self) -> bool:
        return self.subscribed and time.monotonic() - self._last_progress < self.stall_after

    def touch(self) -> None:
        """Record progress, so the watchdog leaves a busy loop alone."""
        self._last_progress = time.monotonic()

    def _spawn_loop(self) -> None:
        self.touch()
        self._loop_task = asyncio.create_task(self._run(), name=f"{self.name}-loop")

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(min(5.0, self.stall_after / 3))
            stalled = time.monotonic() - self._last_progress > self.stall_after
            if stalled and self._loop_task is not None:
                logger.warning("events.consumer.stalled", extra={"consumer": self.name})
                self._loop_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._loop_task
                self.restarts += 1
                self.subscribed = False
                self._spawn_loop()

    # -- the fetch loop --------------------------------------------------------------------

    def _config(self) -> ConsumerConfig:
        raise NotImplementedError

    async def _handle(self, msg: Msg) -> None:
        raise NotImplementedError

    async def _handle_batch(self, messages: list[Msg]) -> None:
        """What to do with one fetched batch: by default, each message on its own."""
        for msg in messages:
            await self._handle(msg)
            self.touch()

    def _accepting(self) -> bool:
        """False once the consumer should fetch no more (a draining worker)."""
        return True

    async def _subscribe(self) -> JetStreamContext.PullSubscription:
        await self._release()
        nc = await self.broker.connected()
        js = nc.jetstream()
        await ensure_stream(js, self.stream)
        config = self._config()
        try:
            await js.add_consumer(self.stream.name, config)
        except BadRequestError:
            await js.delete_consumer(self.stream.name, self.name)
            await js.add_consumer(self.stream.name, config)
        if self.linger:
            self._stored = await StoredPull(nc, self.stream.name, self.name).open()
        self._sub = await js.pull_subscribe_bind(durable=self.name, stream=self.stream.name)
        return self._sub

    async def _release(self) -> None:
        """Give up the inboxes of the last subscription: the stored pull's, and the pull
        subscription's (the durable consumer stays on the server).

        A pull subscription left open held up the connection's drain at every shutdown for as
        long as the broker let it (5 s), then logged a cancelled ``_GatheringFuture``: nats.py's
        ``fetch`` takes messages off the subscription's queue without marking them done, so the
        drain's wait for that queue never ends. Every restart of the loop also left one
        behind."""
        if self._stored is not None:
            await self._stored.close()
            self._stored = None
        if self._sub is not None:
            with contextlib.suppress(Exception):  # the connection may be closed or draining
                await self._sub.unsubscribe()
            self._sub = None

    async def _fetch(self, sub: JetStreamContext.PullSubscription) -> list[Msg]:
        """The next batch: what is stored, else the first messages to arrive within
        ``fetch_timeout`` (none when it is up).

        A lingering consumer takes only its first message through nats.py's ``fetch``, which
        hands each message over through ``next_msg`` (two tasks, a timer and a uuid apiece),
        and the rest of what is stored through its :class:`StoredPull`. A batch still not full
        then waits ``linger`` and adds what arrived meanwhile (the first messages are held, not
        acked, in the meantime)."""
        stored = self._stored
        try:
            wanted = 1 if stored is not None else self.batch_size
            first = await sub.fetch(wanted, timeout=self.fetch_timeout)
        except TimeoutError:  # nats' own TimeoutError subclasses it; fetch raises both
            return []
        if stored is None:
            return first
        messages = first + await stored.take(self.batch_size - len(first))
        if len(messages) < self.batch_size:
            await asyncio.sleep(self.linger)
            messages += await stored.take(self.batch_size - len(messages))
        return messages

    async def _run(self) -> None:
        delay = 0.2
        while True:
            try:
                sub = await self._subscribe()
                self.subscribed = True
                self.last_error = None
                delay = 0.2
                while self._accepting():
                    self.touch()
                    if messages := await self._fetch(sub):
                        await self._handle_batch(messages)
                return
            except asyncio.CancelledError:
                self.subscribed = False
                raise
            except Exception as exc:
                self.subscribed = False
                self.last_error = repr(exc)
                logger.warning(
                    "events.consumer.error", extra={"consumer": self.name, "error": repr(exc)}
                )
                self.touch()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)  # back within seconds of an outage


class EventConsumer(PullConsumer):
    """Applies events exactly once: handler and inbox row in one transaction, then the ack."""

    def __init__(
        self,
        *,
        name: str,
        stream: StreamSpec,
        handlers: Mapping[type[EventData], Handler],
        sessionmaker: async_sessionmaker[AsyncSession],
        tables: EventTables,
        broker: Broker,
        max_deliver: int = 5,
        # Handlers are short transactions; after a crash, unacknowledged messages come back
        # this soon.
        ack_wait: float = 10.0,
        batch_size: int = 50,
        fetch_timeout: float = 2.0,
        stall_after: float = 30.0,
        linger: float = 0.0,
    ) -> None:
        super().__init__(
            name=name,
            stream=stream,
            broker=broker,
            batch_size=batch_size,
            fetch_timeout=fetch_timeout,
            stall_after=stall_after,
            linger=linger,
        )
        self.handlers = {model.event_type: (model, fn) for model, fn in handlers.items()}
        self.sessionmaker = sessionmaker
        # The pool driver batches check a connection out of: the sessions' own engine. A
        # sessionmaker bound to one connection (a test's) keeps every batch in a session.
        bind = sessionmaker.kw.get("bind")
        self.engine = bind if isinstance(bind, AsyncEngine) else None
        self.tables = tables
        self.max_deliver = max_deliver
        self.ack_wait = ack_wait
        # Streams of the bus declaration are checked for their owner; others (the kit's own
        # test streams) are not.
        self.checks_source = owner_of_stream(stream.name) is not None

    def _config(self) -> ConsumerConfig:
        return ConsumerConfig(
            durable_name=self.name,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            # Redelivery is bounded by our own dead-letter rule, which spares infrastructure
            # outages; the server must not give up first.
            max_deliver=-1,
            ack_wait=self.ack_wait,
            filter_subjects=sorted(self.handlers),
            max_ack_pending=1000,
        )

    # -- one message -----------------------------------------------------------------------

    def _decode(self, msg: Msg) -> tuple[CloudEvent, EventData, Handler]:
        try:
            event = CloudEvent.model_validate_json(msg.data)
        except ValidationError as exc:
            raise _PoisonMessage(repr(exc)) from exc
        if event.type != msg.subject:
            raise _PoisonMessage(
                f"type {event.type!r} arrived on subject {msg.subject!r}", event.id
            )
        if self.checks_source and event.source != (owner := owner_of_subject(msg.subject)):
            raise _PoisonMessage(
                f"source {event.source!r} is not {owner!r}, the owner of {msg.subject!r}",
                event.id,
            )
        try:
            model, handler = self.handlers[event.type]
            return event, model.model_validate(event.data), handler
        except (ValidationError, KeyError) as exc:
            raise _PoisonMessage(repr(exc), event.id) from exc

    async def _claim(self, session: AsyncSession, event: CloudEvent) -> bool:
        """Insert the inbox row; False when this consumer has applied the event already."""
        claimed = await session.execute(
            self._claim_statement, {"consumer": self.name, "event_id": event.id}
        )
        return claimed.first() is not None

    async def _claim_all(
        self, db: AsyncSession | DriverConnection, event_ids: list[str]
    ) -> set[str]:
        """Insert the inbox rows of a batch; the ids this consumer had not applied yet."""
        claimed = await fetchall(
            db, self._claim_all_statement, {"consumer": self.name, "event_ids": event_ids}
        )
        return {row["event_id"] for row in claimed}

    @functools.cached_property
    def _claim_all_statement(self) -> Prepared:
        return Prepared(
            text(
                f'insert into "{self.tables.schema}".processed_event (consumer, event_id) '
                "select :consumer, unnest(cast(:event_ids as varchar(64)[])) "
                "on conflict do nothing returning event_id"
            )
        )

    @functools.cached_property
    def _claim_statement(self) -> ReturningInsert[Any]:
        inbox = self.tables.processed_event
        return (
            pg_insert(inbox)
            .values(consumer=bindparam("consumer"), event_id=bindparam("event_id"))
            .on_conflict_do_nothing()
            .returning(inbox.c.event_id)
        )

    async def _handle_batch(self, messages: list[Msg]) -> None:
        """Apply a fetched batch in one transaction, then ack it.

        Each event still gets its inbox row in that transaction (a duplicate, even one inside
        the same batch, is skipped), and handlers see a fresh identity map each, as they would
        in sessions of their own. When any handler fails, the transaction is rolled back and the
        batch is applied again one event per transaction, so a poison event is retried and
        dead-lettered on its own while the others are applied. Acks follow the commit.
        """
        if len(messages) == 1:
            await self._handle(messages[0])
            self.touch()
            return
        batch: list[_Decoded] = []
        for msg in messages:
            try:
                batch.append(_Decoded(msg, *self._decode(msg)))
            except _PoisonMessage as exc:
                deliveries = msg.metadata.num_delivered or 1
                await self._dead_letter(msg, exc.event_id, f"undecodable event: {exc}", deliveries)
        if not batch:
            return
        try:
            if self.engine is not None and all(
                isinstance(item.handler, Batched) and item.handler.driver for item in batch
            ):
                claimed = await self._apply_on_driver(self.engine, batch)
            else:
                claimed = await self._apply_in_session(batch)
        except Exception as exc:
            logger.info(
                "events.batch.fallback",
                extra={"consumer": self.name, "events": len(batch), "error": repr(exc)},
            )
            for item in batch:
                await self._apply_alone(item)
                self.touch()
            return
        BATCHES.labels(self.name).inc()
        HANDLED.labels(self.name).inc(claimed)
        if duplicates := len(batch) - claimed:
            DUPLICATES.labels(self.name).inc(duplicates)
        for item in batch:
            await item.msg.ack()
        self.touch()

    async def _apply_in_session(self, batch: list[_Decoded]) -> int:
        """The batch in one session's transaction; the number of events it applied."""
        claimed = 0
        async with self.sessionmaker() as session:
            try:
                todo = await self._fresh(session, batch)
                for run in _runs(todo):
                    handler = run[0].handler
                    if len(run) > 1 and isinstance(handler, Batched):
                        await handler.many(session, [item.data for item in run])
                    else:
                        await handler(session, run[0].data)
                    claimed += len(run)
                    await session.flush()
                    session.expunge_all()
                await session.commit()
            except BaseException:
                await session.rollback()
                raise
        return claimed

    async def _apply_on_driver(self, engine: AsyncEngine, batch: list[_Decoded]) -> int:
        """The batch in one transaction on asyncpg's connection, every run through its
        handler's ``many`` (each handler is a ``Batched`` with ``driver``)."""
        async with pooled_driver_connection(engine) as connection, connection.transaction():
            todo = await self._fresh(connection, batch)
            for run in _runs(todo):
                handler = run[0].handler
                assert isinstance(handler, Batched)
                await handler.many(connection, [item.data for item in run])
        return len(todo)

    async def _fresh(
        self, db: AsyncSession | DriverConnection, batch: list[_Decoded]
    ) -> list[_Decoded]:
        """Claim the batch's inbox rows in one statement; the events to apply, in order. A
        duplicate (one applied before, or a second copy inside the batch) is not claimed
        again."""
        fresh = await self._claim_all(db, [item.event.id for item in batch])
        todo = []
        for item in batch:
            if item.event.id in fresh:
                fresh.discard(item.event.id)
                todo.append(item)
        return todo

    async def _handle(self, msg: Msg) -> None:
        try:
            item = _Decoded(msg, *self._decode(msg))
        except _PoisonMessage as exc:
            deliveries = msg.metadata.num_delivered or 1
            await self._dead_letter(msg, exc.event_id, f"undecodable event: {exc}", deliveries)
            return
        await self._apply_alone(item)

    async def _apply_alone(self, item: _Decoded) -> None:
        """One event in a transaction of its own; a failure is retried, then dead-lettered."""
        msg = item.msg
        deliveries = msg.metadata.num_delivered or 1
        try:
            async with transaction(self.sessionmaker) as session:
                if await self._claim(session, item.event):
                    await item.handler(session, item.data)
                    claimed = True
                else:
                    claimed = False
            BATCHES.labels(self.name).inc()
            if claimed:
                HANDLED.labels(self.name).inc()
            else:
                DUPLICATES.labels(self.name).inc()
        except Exception as exc:
            transient = is_connection_failure(exc)
            logger.warning(
                "events.handler.failed",
                extra={
                    "consumer": self.name,
                    "event_id": item.event.id,
                    "error": repr(exc),
                    "deliveries": deliveries,
                    "transient": transient,
                },
            )
            if transient or deliveries < self.max_deliver:
                await msg.nak(delay=min(0.2 * 2**deliveries, 10.0))
            else:
                await self._dead_letter(msg, item.event.id, repr(exc), deliveries)
            return
        await msg.ack()

    async def _dead_letter(self, msg: Msg, event_id: str | None, error: str, n: int) -> None:
        try:
            async with transaction(self.sessionmaker) as session:
                await session.execute(
                    insert(self.tables.dead_letter).values(
                        consumer=self.name,
                        # A forged event's id and subject can be anything: kept to the columns.
                        event_id=event_id[:64] if event_id else None,
                        subject=msg.subject[:255],
                        payload=msg.data.decode(errors="replace"),
                        error=error[:4000],
                        deliveries=n,
                    )
                )
        except Exception as exc:
            logger.warning("events.dead_letter.failed", extra={"error": repr(exc)})
            await msg.nak(delay=5)
            return
        DEAD.labels(self.name).inc()
        logger.error(
            "events.dead_lettered",
            extra={"consumer": self.name, "event_id": event_id, "error": error},
        )
        await msg.term()
