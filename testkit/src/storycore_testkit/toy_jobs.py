"""A toy job service for the job runner's tests; ``python -m storycore_testkit.toy_jobs`` is
its worker.

A toy job has ``steps`` steps. Each step writes one ``applied`` row inside the job's transaction
together with its checkpoint, so a step is done exactly once however often the job is resumed.
``params`` steer it: ``delay`` seconds per step, ``fail`` ("infra" always raises a plain error,
"infra-twice" only on the first two deliveries, "honest" raises JobFailure), ``blocking``
(each step sleeps in a thread, polling the cancel flag).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from typing import Any, ClassVar

from sqlalchemy import Column, Integer, MetaData, String, Table, Uuid, insert

from storycore_shared.events.broker import Broker, ensure_stream
from storycore_shared.events.contracts import EventData, StreamSpec
from storycore_shared.events.envelope import CloudEvent
from storycore_shared.events.tables import EventTables
from storycore_shared.jobs.runner import JobContext, JobFailure, JobSpec, serve_worker
from storycore_shared.jobs.settings import JobSettings
from storycore_shared.jobs.tables import JobTables


class ToySettings(JobSettings):
    ENV_PREFIX: ClassVar[str] = "TOY_"
    SERVICE_NAME: ClassVar[str] = "toy"


class ToyRequested(EventData):
    event_type: ClassVar[str] = "toy.requested"
    project_id: uuid.UUID
    owner_id: uuid.UUID


def toy_metadata(name: str) -> tuple[MetaData, JobTables, EventTables, Table]:
    metadata = MetaData(schema=name)
    jobs = JobTables.on(metadata)
    events = EventTables.on(metadata)
    applied = Table(
        "applied",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("job_id", Uuid, nullable=False),
        Column("step", Integer, nullable=False),
        Column("attempt", Integer, nullable=False),
        Column("pid", Integer, nullable=False),
        Column("note", String(40), nullable=True),
    )
    return metadata, jobs, events, applied


def toy_stream(name: str) -> StreamSpec:
    return StreamSpec(name=name.upper(), subjects=[f"{name}.>"])


def request_model(name: str) -> type[ToyRequested]:
    """A request model of its own per test, so each test's worker has its own subject."""

    class Requested(ToyRequested):
        event_type: ClassVar[str] = f"{name}.requested"

    return Requested


def progress_subject_for(name: str) -> Any:
    return lambda job_id: f"{name}_progress.{job_id}"


def toy_spec(name: str) -> JobSpec:
    _, jobs, events, applied = toy_metadata(name)

    async def run(ctx: JobContext) -> None:
        params: dict[str, Any] = ctx.job["params"]
        fail = params.get("fail")
        attempt = ctx.attempt
        if fail == "honest":
            raise JobFailure("the toy backend said no")
        if fail == "infra" or (fail == "infra-twice" and attempt <= 2):
            raise RuntimeError(f"disk on fire (attempt {attempt})")
        start = int(ctx.checkpoint.get("done", 0))
        steps = int(params.get("steps", 3))
        for step in range(start, steps):
            if params.get("blocking"):
                await ctx.run_sync(_blocking_sleep, float(params.get("delay", 0)), ctx)
            else:
                await asyncio.sleep(float(params.get("delay", 0)))
            async with ctx.transaction() as session:
                await session.execute(
                    insert(applied).values(
                        job_id=ctx.job_id, step=step, attempt=attempt, pid=os.getpid()
                    )
                )
                await ctx.record(
                    session,
                    checkpoint={"done": step + 1},
                    progress=round(100 * (step + 1) / steps) - 1,
                    current_step=f"step {step + 1}/{steps}",
                )
        await ctx.complete(result={"steps": steps})

    return JobSpec(
        service="toy",
        tables=jobs,
        event_tables=events,
        stream=toy_stream(name),
        request=request_model(name),
        consumer=f"{name}-worker",
        run=run,
        progress_subject=progress_subject_for(name),
    )


def _blocking_sleep(seconds: float, ctx: JobContext) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not ctx.cancelled.is_set():
        time.sleep(0.02)


async def publish_request(broker: Broker, name: str, job_id: uuid.UUID, owner: uuid.UUID) -> None:
    model = request_model(name)
    event = CloudEvent.wrap(model(id=job_id, project_id=job_id, owner_id=owner), source="toy")
    js = await broker.jetstream()
    await ensure_stream(js, toy_stream(name))
    await js.publish(model.event_type, event.to_bytes(), headers={"Nats-Msg-Id": event.id})


if __name__ == "__main__":
    settings = ToySettings()
    name = os.environ["TOY_NAME"]
    asyncio.run(serve_worker(lambda _broker: toy_spec(name), settings, schema=name))
    sys.exit(0)
