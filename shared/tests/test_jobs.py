"""The shared job runner on a toy job, against real Postgres and real NATS JetStream."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from storycore_shared.auth import Principal
from storycore_shared.db import sqlalchemy_url, transaction
from storycore_shared.events.broker import Broker
from storycore_shared.jobs import repository
from storycore_shared.jobs.runner import JobRunner
from storycore_shared.jobs.service import Jobs
from storycore_shared.jobs.tables import JobTables
from storycore_testkit.toy_jobs import ToySettings, publish_request, toy_metadata, toy_spec

ACK_WAIT = 2.0


@dataclass
class Toy:
    name: str
    sessionmaker: async_sessionmaker[AsyncSession]
    jobs: JobTables
    applied: Any
    env: dict[str, str]
    database_url: str
    nats_url: str

    def settings(self, **overrides: Any) -> ToySettings:
        values: dict[str, Any] = {
            "DATABASE_URL": self.database_url,
            "NATS_URL": self.nats_url,
            "JWKS_URL": "http://127.0.0.1:9/unused",
            "ENVIRONMENT": "test",
            "WORKER_ACK_WAIT_SECONDS": ACK_WAIT,
            "JOB_RETRY_BASE_SECONDS": 0.1,
            "JOB_HEARTBEAT_STALE_SECONDS": 1.5,
            **overrides,
        }
        return ToySettings(**values)

    async def create(self, broker: Broker, **params: Any) -> uuid.UUID:
        owner = uuid.uuid4()
        async with transaction(self.sessionmaker) as session:
            job = await repository.create(
                session, self.jobs, project_id=uuid.uuid4(), owner_id=owner, params=params
            )
        await publish_request(broker, self.name, job["id"], owner)
        job_id: uuid.UUID = job["id"]
        return job_id

    async def job(self, job_id: uuid.UUID) -> Any:
        async with transaction(self.sessionmaker) as session:
            return await repository.get(session, self.jobs, job_id)

    async def steps(self, job_id: uuid.UUID) -> list[tuple[int, int]]:
        async with transaction(self.sessionmaker) as session:
            rows = await session.execute(
                select(self.applied.c.step, self.applied.c.attempt)
                .where(self.applied.c.job_id == job_id)
                .order_by(self.applied.c.id)
            )
            return [(r[0], r[1]) for r in rows]

    async def wait_status(self, job_id: uuid.UUID, status: str, within: float = 30) -> Any:
        deadline = time.monotonic() + within
        job = None
        while time.monotonic() < deadline:
            job = await self.job(job_id)
            if job is not None and job["status"] == status:
                return job
            await asyncio.sleep(0.05)
        raise AssertionError(f"job never became {status}: {dict(job) if job else None}")

    async def wait_steps(self, job_id: uuid.UUID, n: int, within: float = 20) -> None:
        deadline = time.monotonic() + within
        while len(await self.steps(job_id)) < n:
            assert time.monotonic() < deadline, f"fewer than {n} steps done"
            await asyncio.sleep(0.05)

    def spawn(self, **env: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "storycore_testkit.toy_jobs"],
            env={**os.environ, **self.env, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )


@pytest.fixture
async def toy(postgres_admin_url: str, nats_url: str, unique_name: str) -> AsyncIterator[Toy]:
    metadata, jobs, _, applied = toy_metadata(unique_name)
    engine = create_async_engine(sqlalchemy_url(postgres_admin_url))
    async with engine.begin() as conn:
        await conn.execute(text(f'create schema "{unique_name}"'))
        await conn.run_sync(metadata.create_all)
    env = {
        "TOY_NAME": unique_name,
        "TOY_DATABASE_URL": postgres_admin_url,
        "TOY_NATS_URL": nats_url,
        "TOY_JWKS_URL": "http://127.0.0.1:9/unused",
        "TOY_ENVIRONMENT": "test",
        "TOY_WORKER_ACK_WAIT_SECONDS": str(ACK_WAIT),
        "TOY_LOG_LEVEL": "WARNING",
    }
    yield Toy(
        unique_name,
        async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False),
        jobs,
        applied,
        env,
        postgres_admin_url,
        nats_url,
    )
    async with engine.begin() as conn:
        await conn.execute(text(f'drop schema "{unique_name}" cascade'))
    await engine.dispose()


@pytest.fixture
async def broker(nats_url: str) -> AsyncIterator[Broker]:
    broker = Broker(nats_url, name="jobs-test")
    await broker.start()
    await asyncio.wait_for(broker.connected(), timeout=10)
    yield broker
    await broker.close()


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture
async def engines() -> AsyncIterator[list[AsyncEngine]]:
    made: list[AsyncEngine] = []
    yield made
    for engine in made:
        await engine.dispose()


def _jobs(toy: Toy) -> Jobs:
    """The API side of the toy's jobs (status, cancel, streams)."""
    return Jobs(
        toy.jobs,
        toy_spec(toy.name).event_tables,
        toy.settings(),
        service="toy",
        progress_subject=lambda j: f"x.{j}",
    )


def _runner(toy: Toy, broker: Broker, engines: list[AsyncEngine], **settings: Any) -> JobRunner:
    engine = create_async_engine(sqlalchemy_url(toy.database_url))
    engines.append(engine)
    return JobRunner(
        toy_spec(toy.name),
        sessionmaker=async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False),
        broker=broker,
        settings=toy.settings(**settings),
    )


async def test_a_killed_worker_s_job_resumes_with_each_step_done_once(
    toy: Toy, broker: Broker, processes: list[subprocess.Popen[bytes]]
) -> None:
    first = toy.spawn()
    processes.append(first)
    job_id = await toy.create(broker, steps=8, delay=0.3)
    await toy.wait_steps(job_id, 3)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    done_before = len(await toy.steps(job_id))

    # Nobody holds the job now: its answer says so instead of a frozen percentage.
    await asyncio.sleep(1.6)
    jobs = _jobs(toy)
    public = jobs.public(await toy.job(job_id))
    assert public.status == "processing"
    assert public.waiting_for_worker
    assert public.current_step.startswith("waiting for a worker")

    processes.append(toy.spawn())
    job = await toy.wait_status(job_id, "completed")
    steps = await toy.steps(job_id)
    assert sorted(step for step, _ in steps) == list(range(8))  # each step exactly once
    assert {attempt for _, attempt in steps} == {1, 2}
    assert done_before >= 3
    assert job["attempt"] == 2
    assert job["result"] == {"steps": 8}


async def test_cancel_takes_effect_within_a_second(
    toy: Toy, broker: Broker, engines: list[AsyncEngine]
) -> None:
    runner = _runner(toy, broker, engines)
    await runner.start()
    try:
        job_id = await toy.create(broker, steps=100, delay=0.2, blocking=True)
        await toy.wait_steps(job_id, 2)
        jobs = _jobs(toy)
        owner = (await toy.job(job_id))["owner_id"]
        async with transaction(toy.sessionmaker) as session:
            await jobs.cancel(session, principal=Principal(user_id=owner), job_id=job_id)
        cancelled_at = time.monotonic()
        while runner.running is not None:  # noqa: ASYNC110 - polling the runner is the point
            await asyncio.sleep(0.01)
        stopped_after = time.monotonic() - cancelled_at
        count = len(await toy.steps(job_id))
        await asyncio.sleep(0.5)
        assert len(await toy.steps(job_id)) == count  # nothing ran after the stop
        assert stopped_after <= 1.0, stopped_after
        assert (await toy.job(job_id))["status"] == "cancelled"
        # The runner goes on with the next job.
        other = await toy.create(broker, steps=2)
        await toy.wait_status(other, "completed", within=10)
    finally:
        await runner.stop()


async def test_the_watchdog_restarts_a_stalled_fetch_loop(
    toy: Toy, broker: Broker, engines: list[AsyncEngine]
) -> None:
    runner = _runner(toy, broker, engines)
    runner.stall_after = 1.5
    real_subscribe = runner._subscribe
    stalls = 0

    class Silent:
        async def fetch(self, *_: Any, **__: Any) -> list[Any]:
            await asyncio.Event().wait()  # what a silenced pull subscription looks like
            return []

    async def subscribe_once_silent() -> Any:
        nonlocal stalls
        if stalls == 0:
            stalls += 1
            await real_subscribe()
            return Silent()
        return await real_subscribe()

    runner._subscribe = subscribe_once_silent  # type: ignore[method-assign]
    await runner.start()
    try:
        job_id = await toy.create(broker, steps=2)
        await toy.wait_status(job_id, "completed", within=20)
        assert runner.restarts >= 1
    finally:
        await runner.stop()


async def test_sigterm_hands_the_running_job_back_and_nothing_is_lost(
    toy: Toy, broker: Broker, processes: list[subprocess.Popen[bytes]]
) -> None:
    first = toy.spawn(TOY_WORKER_DRAIN_SECONDS="0.5", TOY_WORKER_ACK_WAIT_SECONDS="30")
    processes.append(first)
    job_id = await toy.create(broker, steps=8, delay=0.3)
    await toy.wait_steps(job_id, 2)
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=15) == 0
    assert (await toy.job(job_id))["status"] == "processing"
    # ack_wait is 30 s: only the nak on the way out lets the next worker start at once.
    handed_back = time.monotonic()
    processes.append(toy.spawn(TOY_WORKER_ACK_WAIT_SECONDS="30"))
    job = await toy.wait_status(job_id, "completed", within=25)
    assert time.monotonic() - handed_back < 20
    steps = await toy.steps(job_id)
    assert sorted(step for step, _ in steps) == list(range(8))
    assert job["attempt"] == 2


async def test_sigterm_lets_a_short_job_finish_first(
    toy: Toy, broker: Broker, processes: list[subprocess.Popen[bytes]]
) -> None:
    worker = toy.spawn(TOY_WORKER_DRAIN_SECONDS="10")
    processes.append(worker)
    job_id = await toy.create(broker, steps=4, delay=0.3)
    await toy.wait_steps(job_id, 1)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=15) == 0
    job = await toy.job(job_id)
    assert job["status"] == "completed"
    assert job["attempt"] == 1


async def test_infrastructure_errors_are_retried_then_fail_with_the_reason(
    toy: Toy, broker: Broker, engines: list[AsyncEngine]
) -> None:
    runner = _runner(toy, broker, engines, JOB_MAX_ATTEMPTS=3)
    await runner.start()
    try:
        flaky = await toy.create(broker, steps=2, fail="infra-twice")
        broken = await toy.create(broker, steps=2, fail="infra")
        honest = await toy.create(broker, steps=2, fail="honest")

        job = await toy.wait_status(flaky, "completed")
        assert job["attempt"] == 3

        job = await toy.wait_status(broken, "failed")
        assert "gave up after 3 attempts" in job["error"]
        assert "disk on fire" in job["error"]
        assert await toy.steps(broken) == []

        job = await toy.wait_status(honest, "failed")
        assert job["error"] == "the toy backend said no"
        assert job["attempt"] == 1
    finally:
        await runner.stop()


async def test_a_stream_ends_with_complete_when_the_job_finishes_between_its_reads(
    toy: Toy, broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each poll reads the job and its events in two statements (READ COMMITTED). The job is
    cancelled, and committed, right after the first of them: whichever order they run in,
    the stream must still end with one `complete` frame carrying the final status."""
    jobs = _jobs(toy)
    owner = uuid.uuid4()
    async with transaction(toy.sessionmaker) as session:
        job_id = (
            await repository.create(
                session, toy.jobs, project_id=uuid.uuid4(), owner_id=owner, params={}
            )
        )["id"]
    real_get, real_events_after = repository.get, repository.events_after
    armed = [True]

    async def cancel_after(read: Any, *args: Any) -> Any:
        answer = await read(*args)
        if armed[0]:
            armed[0] = False
            async with transaction(toy.sessionmaker) as other:
                await jobs.cancel(other, principal=Principal(user_id=owner), job_id=job_id)
        return answer

    monkeypatch.setattr(repository, "get", lambda *a: cancel_after(real_get, *a))
    monkeypatch.setattr(repository, "events_after", lambda *a: cancel_after(real_events_after, *a))
    jobs.slots.take()
    frames = [frame async for frame in jobs.frames(toy.sessionmaker, broker, job_id, 0)]
    assert not armed[0]
    assert [frame["event"] for frame in frames][-1] == "complete", frames
    assert '"status": "cancelled"' in frames[-1]["data"]
    assert jobs.slots.active == 0


def test_a_job_no_worker_runs_is_never_shown_waiting_for_one(toy: Toy) -> None:
    """A saga's job (a production) has no worker stamping heartbeats: its answer keeps its own
    step and an estimate, where a worker's job with a stale heartbeat says it waits."""
    now = datetime.now(UTC)
    job = {
        "id": uuid.uuid4(),
        "project_id": uuid.uuid4(),
        "status": "processing",
        "progress": 50,
        "current_step": "storyboard 1/2",
        "heartbeat_at": None,
        "started_at": now - timedelta(seconds=10),
        "result": None,
        "error": None,
        "created_at": now - timedelta(seconds=10),
        "completed_at": None,
    }
    worked = _jobs(toy).public(job)  # type: ignore[arg-type]
    assert (worked.waiting_for_worker, worked.estimated_time_remaining) == (True, None)
    saga = Jobs(
        toy.jobs,
        toy_spec(toy.name).event_tables,
        toy.settings(),
        service="toy",
        progress_subject=None,
        worker_heartbeats=False,
    )
    answer = saga.public(job)  # type: ignore[arg-type]
    assert (answer.waiting_for_worker, answer.current_step) == (False, "storyboard 1/2")
    assert answer.estimated_time_remaining is not None
    assert 9 < answer.estimated_time_remaining < 12  # as long again as it took for half
