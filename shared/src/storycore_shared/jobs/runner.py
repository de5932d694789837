"""One job runner for every service that runs long work (sequences, audio, exports, rigs...).

A job is a row (``JobTables``) plus a command event on JetStream (e.g. ``sequence.requested``,
published through the outbox by the API). Workers bind one durable pull consumer on that
subject, so each job goes to one worker at a time (a work queue). A job is one async function
of its steps::

    async def render(ctx: JobContext) -> None:
        plan = ctx.checkpoint.get("plan") or await make_plan(ctx.job)
        await ctx.step(progress=20, current_step="planned", checkpoint={"plan": plan})
        for i, shot in enumerate(plan):
            await ctx.step(progress=20 + 70 * i // len(plan), current_step=f"shot {i}")
            await ctx.run_sync(draw, shot)          # blocking work in a thread
        await ctx.complete(result={...}, events=[Rendered(...)])

    spec = JobSpec(service="sequences", tables=job_tables, event_tables=event_tables,
                   stream=STREAM, request=SequenceRequested, consumer="sequences-worker",
                   run=render, progress_subject=progress_subject)
    await serve_worker(lambda broker: spec, settings, schema="sequences")  # the worker's main

What the runner guarantees:

- **Compare-and-set.** A job is claimed by bumping ``attempt``; every later write names that
  attempt and the ``processing`` status, so a cancel or another worker's claim that committed
  first always stands (:class:`Superseded`). Each change is the job's next numbered event.
- **Crash recovery.** While a job runs the worker tells JetStream it is alive
  (``in_progress``) and stamps ``heartbeat_at``; a killed worker's message is redelivered after
  ``WORKER_ACK_WAIT_SECONDS`` and the next worker resumes from ``checkpoint``.
- **Cancel within a second.** The runner reads the job's status four times a second; a cancel
  sets :attr:`JobContext.cancelled` (a ``threading.Event`` that blocking code can poll), makes
  the next step raise, and after a short grace the job's task is cancelled.
- **Honest failures.** :class:`JobFailure` fails the job with its reason at once. Any other
  exception is an infrastructure error: retried with backoff, then failed with the reason
  after ``JOB_MAX_ATTEMPTS`` deliveries.
- **Drain.** On SIGTERM the worker fetches nothing more, lets the running job finish for
  ``WORKER_DRAIN_SECONDS``, then hands it back to the queue (``nak``): never lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import anyio.from_thread
import anyio.to_thread
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storycore_shared.db import create_engine, create_sessionmaker, transaction, utcnow
from storycore_shared.events.broker import Broker
from storycore_shared.events.consumer import PullConsumer
from storycore_shared.events.contracts import EventData, StreamSpec
from storycore_shared.events.envelope import CloudEvent
from storycore_shared.events.outbox import add_event
from storycore_shared.events.tables import EventTables
from storycore_shared.jobs import repository
from storycore_shared.jobs.repository import Job
from storycore_shared.jobs.settings import JobSettings
from storycore_shared.jobs.tables import (
    ACTIVE,
    CANCELLED,
    COMPLETED,
    FAILED,
    PENDING,
    PROCESSING,
    TERMINAL,
    JobTables,
)
from storycore_shared.logs import configure_logging

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

# How often a running job's status is read, so a cancel is seen within a second.
CANCEL_POLL_SECONDS = 0.25
# After a cancel is seen, the job gets this long to stop at its next step before its task is
# cancelled outright.
CANCEL_GRACE_SECONDS = 0.3


class JobFailure(Exception):
    """An honest reason for a job to fail (a backend down, bad input), shown to the user."""


class Superseded(Exception):
    """The job moved on without this worker (cancelled, or another worker took it over)."""


@dataclass
class JobSpec:
    """What a service's worker runs: which command subject, which tables, which function."""

    service: str
    tables: JobTables
    event_tables: EventTables
    stream: StreamSpec
    request: type[EventData]
    consumer: str
    run: Callable[[JobContext], Coroutine[Any, Any, None]]
    progress_subject: Callable[[uuid.UUID], str]
    # The event recorded with a failure, when the service publishes one.
    failed_event: Callable[[Job, str], EventData | None] = lambda _job, _error: None
    # Releases what the job's service objects hold (an asset store's client) at shutdown.
    on_close: Callable[[], Awaitable[None]] | None = None


class JobContext:
    """One claimed job, as its steps see it."""

    def __init__(self, runner: JobRunner, job: Job) -> None:
        self.runner = runner
        self.job = job
        self.job_id: uuid.UUID = job["id"]
        self.attempt: int = job["attempt"]
        self.checkpoint: dict[str, Any] = dict(job["checkpoint"] or {})
        self.cancelled = threading.Event()

    @property
    def sessionmaker(self) -> async_sessionmaker[AsyncSession]:
        return self.runner.sessionmaker

    def check(self) -> None:
        """Raise :class:`Superseded` when the job was cancelled meanwhile."""
        if self.cancelled.is_set():
            raise Superseded(str(self.job_id))

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A transaction in which the job is still this worker's (its row is locked).

        Work written here commits together with :meth:`record`, so a step's effect and its
        checkpoint are never apart.
        """
        self.check()
        async with transaction(self.sessionmaker) as session:
            job = await repository.get(session, self.runner.tables, self.job_id, lock=True)
            if job is None or job["status"] != PROCESSING or job["attempt"] != self.attempt:
                raise Superseded(str(self.job_id))
            yield session
        await self.runner.wake(self.job_id)

    async def record(
        self,
        session: AsyncSession,
        *,
        checkpoint: dict[str, Any] | None = None,
        **values: Any,
    ) -> Job:
        """Advance the job (progress, current_step, columns) inside ``session``."""
        if checkpoint:
            self.checkpoint.update(checkpoint)
            values["checkpoint"] = self.checkpoint
        job = await repository.advance(
            session,
            self.runner.tables,
            self.job_id,
            from_statuses={PROCESSING},
            expect_attempt=self.attempt,
            **values,
        )
        if job is None:
            raise Superseded(str(self.job_id))
        self.job = job
        return job

    async def step(self, *, checkpoint: dict[str, Any] | None = None, **values: Any) -> Job:
        """Record a step (``progress``, ``current_step``, a checkpoint) in its own transaction."""
        async with self.transaction() as session:
            return await self.record(session, checkpoint=checkpoint, **values)

    async def complete(
        self, *, result: dict[str, Any], events: Sequence[EventData] = (), **values: Any
    ) -> None:
        """Finish the job with its result; ``events`` go to the outbox in the same commit."""
        async with self.transaction() as session:
            await self.record(
                session,
                status=COMPLETED,
                progress=100,
                current_step="done",
                result=result,
                completed_at=utcnow(),
                **values,
            )
            for event in events:
                await add_event(
                    session,
                    self.runner.spec.event_tables,
                    event,
                    source=self.runner.spec.service,
                    actor=self.job["owner_id"],
                )

    def progress_reporter(
        self, *, start: int, end: int, current_step: str, every: int = 5
    ) -> Callable[[float], None]:
        """For blocking work run with :meth:`run_sync`: a callback taking the fraction done
        (0..1) that records the job's progress between ``start`` and ``end`` percent, at most
        every ``every`` percent. A cancel seen there raises in the worker thread."""
        last = [start]

        def report(fraction: float) -> None:
            percent = start + int((end - start) * min(max(fraction, 0.0), 1.0))
            if percent - last[0] >= every:
                last[0] = percent
                anyio.from_thread.run(
                    functools.partial(self.step, progress=percent, current_step=current_step)
                )

        return report

    async def run_sync(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run blocking work (Pillow, numpy, PyAV) in a thread; it can poll ``cancelled``."""
        self.check()
        return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs))


class JobRunner(PullConsumer):
    """The worker side: a durable work-queue consumer that runs one job at a time."""

    def __init__(
        self,
        spec: JobSpec,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        broker: Broker,
        settings: JobSettings,
    ) -> None:
        super().__init__(
            name=spec.consumer,
            stream=spec.stream,
            broker=broker,
            batch_size=1,
            fetch_timeout=1.0,
            stall_after=max(30.0, settings.WORKER_ACK_WAIT_SECONDS * 2),
        )
        self.spec = spec
        self.tables = spec.tables
        self.sessionmaker = sessionmaker
        self.settings = settings
        self.draining = False
        self.running: uuid.UUID | None = None

    # -- the consumer ----------------------------------------------------------------------

    def _config(self) -> ConsumerConfig:
        return ConsumerConfig(
            durable_name=self.name,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            filter_subject=self.spec.request.event_type,
            ack_wait=self.settings.WORKER_ACK_WAIT_SECONDS,
            max_deliver=-1,  # our own attempt count decides when to give up
            max_ack_pending=1000,
        )

    def _accepting(self) -> bool:
        return not self.draining

    def touch(self) -> None:
        super().touch()
        with contextlib.suppress(OSError):
            self.settings.alive_file.touch()

    async def drain(self, grace_seconds: float) -> None:
        """Fetch nothing more; let the running job finish, or hand it back after the grace."""
        self.draining = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
            self._watchdog = None
        if self._loop_task is not None:
            done, _ = await asyncio.wait({self._loop_task}, timeout=grace_seconds)
            if not done:
                logger.warning("jobs.worker.drain_timeout", extra={"job_id": str(self.running)})
        await self.stop()

    async def wake(self, job_id: uuid.UUID) -> None:
        """Tell the API replicas' streams of this job to look again (core NATS, best effort)."""
        if self.broker.is_connected and self.broker.nc is not None:
            with contextlib.suppress(Exception):
                await self.broker.nc.publish(self.spec.progress_subject(job_id), b"")

    async def _handle(self, msg: Msg) -> None:
        try:
            request = self.spec.request.model_validate(
                CloudEvent.model_validate_json(msg.data).data
            )
        except ValidationError:
            logger.error("jobs.worker.undecodable", extra={"subject": msg.subject})
            await msg.term()
            return
        job_id = request.id
        deliveries = msg.metadata.num_delivered or 1
        self.running = job_id
        try:
            outcome = await self._run_job(msg, job_id)
        except asyncio.CancelledError:
            # Drained or stopped mid-job: hand the message straight back to the queue.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(msg.nak()), timeout=2)
            raise
        except Exception as exc:  # infrastructure trouble: let JetStream redeliver
            logger.warning(
                "jobs.worker.interrupted",
                extra={"job_id": str(job_id), "error": repr(exc), "deliveries": deliveries},
            )
            if deliveries >= self.settings.JOB_MAX_ATTEMPTS:
                await self._fail(job_id, f"gave up after {deliveries} attempts: {exc!r}")
                await msg.ack()
            else:
                await msg.nak(delay=self.settings.JOB_RETRY_BASE_SECONDS * 2 ** (deliveries - 1))
            return
        finally:
            self.running = None
        if outcome:
            await msg.ack()

    # -- one job ---------------------------------------------------------------------------

    async def _claim(self, job_id: uuid.UUID) -> Job | None:
        async with transaction(self.sessionmaker) as session:
            job = await repository.get(session, self.tables, job_id)
            if job is None or job["status"] in TERMINAL:
                return None
            claimed = await repository.advance(
                session,
                self.tables,
                job_id,
                from_statuses=ACTIVE,
                expect_attempt=job["attempt"],
                status=PROCESSING,
                attempt=job["attempt"] + 1,
                current_step="starting" if job["status"] == PENDING else "resuming",
                started_at=job["started_at"] or utcnow(),
                heartbeat_at=utcnow(),
            )
        if claimed is None:
            raise Superseded(str(job_id))
        return claimed

    async def _run_job(self, msg: Msg, job_id: uuid.UUID) -> bool:
        """Run the job; True when its message is done with (ack), False to leave it."""
        try:
            job = await self._claim(job_id)
        except Superseded:
            return await self._finished(job_id)
        if job is None:
            return True
        await self.wake(job_id)
        ctx = JobContext(self, job)
        logger.info("jobs.job.started", extra={"job_id": str(job_id), "attempt": ctx.attempt})
        task = asyncio.create_task(self.spec.run(ctx), name=f"job-{job_id}")
        watcher = asyncio.create_task(self._watch_job(msg, ctx, task))
        try:
            await task
        except Superseded:
            return await self._finished(job_id)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if ctx.cancelled.is_set() and current is not None and current.cancelling() == 0:
                return await self._finished(job_id)  # the watcher stopped the job: cancelled
            raise
        except JobFailure as exc:
            await self._fail(job_id, str(exc), attempt=ctx.attempt)
            return True
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        logger.info("jobs.job.finished", extra={"job_id": str(job_id)})
        return True

    async def _finished(self, job_id: uuid.UUID) -> bool:
        """After Superseded: done when the job ended; otherwise another worker holds it."""
        async with transaction(self.sessionmaker) as session:
            job = await repository.get(session, self.tables, job_id)
        return job is None or job["status"] in TERMINAL

    async def _watch_job(self, msg: Msg, ctx: JobContext, task: asyncio.Task[None]) -> None:
        """Keep the message alive, stamp the heartbeat, and notice a cancel within a second."""
        keep_alive = max(0.2, self.settings.WORKER_ACK_WAIT_SECONDS / 3)
        last_alive = 0.0
        while True:
            await asyncio.sleep(CANCEL_POLL_SECONDS)
            self.touch()
            now = time.monotonic()
            try:
                if now - last_alive >= keep_alive:
                    last_alive = now
                    await msg.in_progress()
                async with transaction(self.sessionmaker) as session:
                    status = await repository.heartbeat(
                        session, self.tables, ctx.job_id, ctx.attempt
                    )
            except Exception as exc:  # a blip: the next tick tries again
                logger.debug("jobs.worker.heartbeat_failed", extra={"error": repr(exc)})
                continue
            if status != PROCESSING:  # cancelled, or taken over by another worker
                ctx.cancelled.set()
                logger.info("jobs.job.cancel_seen", extra={"job_id": str(ctx.job_id)})
                await asyncio.sleep(CANCEL_GRACE_SECONDS)
                task.cancel()
                return

    async def _fail(self, job_id: uuid.UUID, error: str, *, attempt: int | None = None) -> None:
        logger.warning("jobs.job.failed", extra={"job_id": str(job_id), "error": error})
        async with transaction(self.sessionmaker) as session:
            failed = await repository.advance(
                session,
                self.tables,
                job_id,
                from_statuses=ACTIVE,
                expect_attempt=attempt,
                status=FAILED,
                current_step="failed",
                error=error[:2000],
                completed_at=utcnow(),
            )
            if failed is not None and (event := self.spec.failed_event(failed, error[:2000])):
                await add_event(
                    session,
                    self.spec.event_tables,
                    event,
                    source=self.spec.service,
                    actor=failed["owner_id"],
                )
        await self.wake(job_id)


@dataclass
class Worker:
    """A worker process's resources: engine, NATS, the runner. ``build`` makes the job spec
    once NATS is known (a job may need the object store)."""

    build: Callable[[Broker], JobSpec]
    settings: JobSettings
    schema: str
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        engine = create_engine(self.settings, self.schema)
        broker = Broker(self.settings.NATS_URL, name=f"{self.settings.SERVICE_NAME}-worker")
        spec = self.build(broker)
        runner = JobRunner(
            spec, sessionmaker=create_sessionmaker(engine), broker=broker, settings=self.settings
        )
        await broker.start()
        await runner.start()
        logger.info("jobs.worker.ready", extra={"consumer": spec.consumer})
        try:
            await self.stopping.wait()
            logger.info("jobs.worker.draining", extra={"job_id": str(runner.running)})
            await runner.drain(self.settings.WORKER_DRAIN_SECONDS)
        finally:
            await runner.stop()
            if spec.on_close is not None:
                await spec.on_close()
            await broker.close()
            await engine.dispose()
            logger.info("jobs.worker.stopped")


async def serve_worker(
    build: Callable[[Broker], JobSpec], settings: JobSettings, *, schema: str
) -> None:
    """Run a worker until SIGTERM or SIGINT, then drain: ``asyncio.run(serve_worker(...))``."""
    configure_logging(
        f"{settings.SERVICE_NAME}-worker", level=settings.LOG_LEVEL, json_output=settings.LOG_JSON
    )
    worker = Worker(build, settings, schema)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, worker.stopping.set)
    await worker.run()


def healthcheck(alive_file: Path, max_age: float = 30.0) -> int:
    """For a container healthcheck: 0 while the worker loop has touched its file recently."""
    try:
        return 0 if time.time() - alive_file.stat().st_mtime < max_age else 1
    except OSError:
        return 1


__all__ = [
    "CANCELLED",
    "JobContext",
    "JobFailure",
    "JobRunner",
    "JobSpec",
    "Superseded",
    "Worker",
    "healthcheck",
    "serve_worker",
]
