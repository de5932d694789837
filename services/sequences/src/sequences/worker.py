"""The sequences worker: ``python -m sequences.worker``. Scale it by running more of them.

Every worker binds the same durable pull consumer on ``sequence.requested``, so each job goes
to one worker (a work queue). A job is claimed by compare-and-set (``attempt`` + 1) and every
later write names that attempt, so a worker that lost its job (crashed and redelivered, or
cancelled) can never overwrite what happened since. While working it tells JetStream it is
alive; if it dies, JetStream redelivers after ``WORKER_ACK_WAIT_SECONDS`` and the next worker
resumes: the plan is kept on the job and keyframes already stored are not rendered again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import BadRequestError
from nats.js.object_store import ObjectStore
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sequences import repository
from sequences.config import Settings
from sequences.errors import JobFailure
from sequences.keyframes import bucket, exists, keyframe_key, keyframe_url
from sequences.models import SCHEMA, TERMINAL, Job, event_tables
from sequences.rendering import BuiltinBackend, ComfyUIBackend, Frame
from storycore_shared.contracts.planning import Plan, PlannedShot, PlanRequest
from storycore_shared.db import create_engine, create_sessionmaker, transaction, utcnow
from storycore_shared.events.broker import Broker, ensure_stream
from storycore_shared.events.contracts import sequences as sequence_events
from storycore_shared.events.contracts.sequences import (
    GeneratedShot,
    SequenceFailed,
    SequenceGenerated,
    SequenceRequested,
    progress_subject,
)
from storycore_shared.events.envelope import CloudEvent
from storycore_shared.events.outbox import add_event
from storycore_shared.logs import configure_logging

logger = logging.getLogger("sequences.worker")

CONSUMER = "sequences-worker"
# Touched while the fetch loop runs: the container healthcheck and the dev stack read it.
ALIVE_FILE = Path(os.environ.get("SEQUENCES_WORKER_ALIVE_FILE", "/tmp/sequences-worker.alive"))
MAX_INFRA_RETRIES = 5


def _touch_alive() -> None:
    ALIVE_FILE.touch()


class Superseded(Exception):
    """The job moved on without us (cancelled, or another worker took over)."""


class Worker:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = create_engine(settings, SCHEMA)
        self.sessionmaker: async_sessionmaker[AsyncSession] = create_sessionmaker(self.engine)
        self.broker = Broker(settings.NATS_URL, name="sequences-worker")
        self.builtin = BuiltinBackend()
        self.comfyui = (
            ComfyUIBackend(
                settings.COMFYUI_URL,
                settings.COMFYUI_WORKFLOW_FILE,
                settings.COMFYUI_TIMEOUT_SECONDS,
            )
            if settings.COMFYUI_URL
            else None
        )
        self.store: ObjectStore | None = None
        self.stopping = asyncio.Event()

    # -- the loop ----------------------------------------------------------------------------

    async def run(self) -> None:
        await self.broker.start()
        delay = 0.2
        while not self.stopping.is_set():
            try:
                js = await self.broker.jetstream()
                await ensure_stream(js, sequence_events.STREAM)
                self.store = await bucket(js, self.settings.KEYFRAME_BUCKET)
                config = ConsumerConfig(
                    durable_name=CONSUMER,
                    ack_policy=AckPolicy.EXPLICIT,
                    deliver_policy=DeliverPolicy.ALL,
                    filter_subject="sequence.requested",
                    ack_wait=self.settings.WORKER_ACK_WAIT_SECONDS,
                    max_deliver=-1,
                    max_ack_pending=1000,
                )
                try:
                    await js.add_consumer(sequence_events.STREAM.name, config)
                except BadRequestError:
                    await js.delete_consumer(sequence_events.STREAM.name, CONSUMER)
                    await js.add_consumer(sequence_events.STREAM.name, config)
                sub = await js.pull_subscribe_bind(
                    durable=CONSUMER, stream=sequence_events.STREAM.name
                )
                logger.info("worker.ready")
                delay = 0.2
                while not self.stopping.is_set():
                    _touch_alive()
                    try:
                        messages = await sub.fetch(1, timeout=1.0)
                    except TimeoutError:  # nats' own TimeoutError subclasses it; fetch raises both
                        continue
                    for msg in messages:
                        await self.handle(msg)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("worker.loop_failed", extra={"error": repr(exc)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def close(self) -> None:
        await self.broker.close()
        await self.engine.dispose()

    # -- one job -----------------------------------------------------------------------------

    async def handle(self, msg: Msg) -> None:
        try:
            requested = SequenceRequested.model_validate(
                CloudEvent.model_validate_json(msg.data).data
            )
        except ValidationError:
            logger.error("worker.undecodable", extra={"subject": msg.subject})
            await msg.term()
            return
        alive = asyncio.create_task(self._keep_alive(msg))
        try:
            await self.run_job(requested.id)
            await msg.ack()
        except Superseded:
            # Cancelled (or finished) meanwhile: the message is done. Taken over by another
            # worker: leave the message to that worker's delivery.
            async with transaction(self.sessionmaker) as session:
                job = await repository.get(session, requested.id)
            if job is None or job.status in TERMINAL:
                await msg.ack()
        except Exception as exc:  # infrastructure trouble: let JetStream redeliver
            deliveries = msg.metadata.num_delivered or 1
            logger.warning(
                "worker.job_interrupted",
                extra={"job_id": str(requested.id), "error": repr(exc), "deliveries": deliveries},
            )
            if deliveries >= MAX_INFRA_RETRIES:
                await self._fail(requested.id, f"gave up after {deliveries} attempts: {exc!r}")
                await msg.ack()
            else:
                await msg.nak(delay=2.0 * deliveries)
        finally:
            alive.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await alive

    async def _keep_alive(self, msg: Msg) -> None:
        while True:
            await asyncio.sleep(max(0.2, self.settings.WORKER_ACK_WAIT_SECONDS / 3))
            with contextlib.suppress(Exception):
                await msg.in_progress()
            _touch_alive()

    async def _step(self, job_id: uuid.UUID, attempt: int, **values: Any) -> Job:
        async with transaction(self.sessionmaker) as session:
            job = await repository.advance(
                session, job_id, from_statuses={"processing"}, expect_attempt=attempt, **values
            )
        if job is None:
            raise Superseded(str(job_id))
        await self._wake(job_id)
        return job

    async def _wake(self, job_id: uuid.UUID) -> None:
        if self.broker.is_connected and self.broker.nc is not None:
            with contextlib.suppress(Exception):
                await self.broker.nc.publish(progress_subject(job_id), b"")

    async def run_job(self, job_id: uuid.UUID) -> None:
        async with transaction(self.sessionmaker) as session:
            job = await repository.get(session, job_id)
            if job is None or job.status in TERMINAL:
                return
            claimed = await repository.advance(
                session,
                job_id,
                from_statuses={"pending", "processing"},
                expect_attempt=job.attempt,
                status="processing",
                attempt=job.attempt + 1,
                current_step="starting",
                started_at=job.started_at or utcnow(),
            )
        if claimed is None:
            raise Superseded(str(job_id))
        attempt = claimed.attempt
        await self._wake(job_id)
        logger.info("worker.job_started", extra={"job_id": str(job_id), "attempt": attempt})
        try:
            shots = await self._plan(claimed, attempt)
            await self._render(claimed, attempt, shots)
            await self._step(job_id, attempt, progress=95, current_step="finalising")
            await self._complete(claimed, attempt, shots)
        except JobFailure as exc:
            await self._fail(job_id, str(exc), attempt=attempt)

    async def _plan(self, job: Job, attempt: int) -> list[PlannedShot]:
        if job.plan is not None:  # resumed: the plan survives the crash
            return [PlannedShot.model_validate(s) for s in job.plan]
        await self._step(job.id, attempt, progress=10, current_step="planning")
        request = PlanRequest(
            prompt=job.prompt, shot_count=job.shot_count, style=job.style, mood=job.mood
        )
        token = self.settings.INTERNAL_TOKEN.get_secret_value()
        try:
            async with httpx.AsyncClient(timeout=self.settings.PLANNER_TIMEOUT_SECONDS) as client:
                answer = await client.post(
                    f"{self.settings.LLM_URL.rstrip('/')}/internal/llm/plan",
                    json=request.model_dump(),
                    headers={"Authorization": f"Bearer {token}"},
                )
        except httpx.HTTPError as exc:
            raise JobFailure(f"the planner is unreachable: {exc!r}") from exc
        if answer.status_code != 200:
            raise JobFailure(f"the planner answered {answer.status_code}: {answer.text[:300]}")
        plan = Plan.model_validate(answer.json())
        await self._step(
            job.id,
            attempt,
            plan=[s.model_dump() for s in plan.shots],
            progress=20,
            current_step="planned",
        )
        return plan.shots

    async def _render(self, job: Job, attempt: int, shots: list[PlannedShot]) -> None:
        assert self.store is not None
        backend = self.comfyui if job.image_backend == "comfyui" else self.builtin
        if backend is None:
            raise JobFailure("the comfyui backend is not configured on this worker")
        for index, shot in enumerate(shots):
            key = keyframe_key(job.id, index)
            if not await exists(self.store, key):  # resumed: stored keyframes are kept
                png = await backend.render(
                    Frame(
                        index,
                        shot.name,
                        shot.prompt,
                        shot.shot_type,
                        shot.framing,
                        job.width,
                        job.height,
                        job.style,
                    )
                )
                await self.store.put(key, png)
            await self._step(
                job.id,
                attempt,
                progress=20 + round(70 * (index + 1) / len(shots)),
                current_step=f"rendering shot {index + 1}/{len(shots)}",
            )

    async def _complete(self, job: Job, attempt: int, shots: list[PlannedShot]) -> None:
        generated = [
            GeneratedShot(
                id=uuid.uuid5(job.id, str(index)),
                order_index=index,
                name=shot.name,
                prompt=shot.prompt,
                shot_type=shot.shot_type,
                framing=shot.framing,
                duration_seconds=shot.duration_seconds,
                keyframe_url=keyframe_url(job.id, index),
            )
            for index, shot in enumerate(shots)
        ]
        result = {
            "id": str(job.id),
            "project_id": str(job.project_id),
            "name": job.prompt[:60],
            "description": job.prompt,
            "shots": [s.model_dump(mode="json") for s in generated],
            "total_duration": round(sum(s.duration_seconds for s in shots), 2),
            "prompt": job.prompt,
            "style": job.style,
            "mood": job.mood,
            "image_backend": job.image_backend,
            "created_at": job.created_at.isoformat(),
        }
        async with transaction(self.sessionmaker) as session:
            done = await repository.advance(
                session,
                job.id,
                from_statuses={"processing"},
                expect_attempt=attempt,
                status="completed",
                progress=100,
                current_step="done",
                result=result,
                completed_at=utcnow(),
            )
            if done is None:  # a cancel committed first: it stands
                raise Superseded(str(job.id))
            await add_event(
                session,
                event_tables,
                SequenceGenerated(
                    id=job.id,
                    project_id=job.project_id,
                    job_id=job.id,
                    owner_id=job.owner_id,
                    shots=generated,
                    image_backend=job.image_backend,
                ),
                source="sequences",
                actor=job.owner_id,
            )
        await self._wake(job.id)
        logger.info("worker.job_completed", extra={"job_id": str(job.id)})

    async def _fail(self, job_id: uuid.UUID, error: str, *, attempt: int | None = None) -> None:
        logger.warning("worker.job_failed", extra={"job_id": str(job_id), "error": error})
        async with transaction(self.sessionmaker) as session:
            failed = await repository.advance(
                session,
                job_id,
                from_statuses={"pending", "processing"},
                expect_attempt=attempt,
                status="failed",
                current_step="failed",
                error=error[:2000],
                completed_at=utcnow(),
            )
            if failed is not None:
                await add_event(
                    session,
                    event_tables,
                    SequenceFailed(
                        id=job_id,
                        project_id=failed.project_id,
                        job_id=job_id,
                        error=error[:2000],
                    ),
                    source="sequences",
                    actor=failed.owner_id,
                )
        await self._wake(job_id)


def healthcheck(max_age: float = 30.0) -> int:
    """For a container healthcheck: 0 while the worker loop has touched its file recently."""
    try:
        return 0 if time.time() - ALIVE_FILE.stat().st_mtime < max_age else 1
    except OSError:
        return 1


async def main() -> None:
    settings = Settings()  # read from the environment
    configure_logging("sequences-worker", level=settings.LOG_LEVEL, json_output=settings.LOG_JSON)
    worker = Worker(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, worker.stopping.set)
    runner = asyncio.create_task(worker.run())
    await worker.stopping.wait()
    runner.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await runner
    await worker.close()
    logger.info("worker.stopped")


if __name__ == "__main__":
    if "--healthcheck" in sys.argv:
        sys.exit(healthcheck())
    asyncio.run(main())
