"""Readiness never competes with requests: a busy replica stays in the gateway's rotation."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import asyncpg
import httpx
import pytest

from projects.config import Settings as ProjectsSettings
from storycore_devstack.routes import HEALTH_CHECK_INTERVAL_SECONDS, HEALTH_CHECK_TIMEOUT_SECONDS
from storycore_devstack.stack import Stack
from storycore_shared.db import asyncpg_dsn
from storycore_testkit.polling import eventually

pytestmark = pytest.mark.stack

# Every connection of the projects service's pool, as the suite's stack configures it.
POOL = (
    ProjectsSettings.model_fields["DATABASE_POOL_SIZE"].default
    + ProjectsSettings.model_fields["DATABASE_MAX_OVERFLOW"].default
)
# Longer than several health-check intervals, and than one interval plus a whole check timeout,
# so that a readiness check stuck behind the requests would be seen failing. (Below the stack's
# statement timeout, so the held requests finish normally.)
HOLD_SECONDS = max(
    4 * HEALTH_CHECK_INTERVAL_SECONDS,
    HEALTH_CHECK_INTERVAL_SECONDS + HEALTH_CHECK_TIMEOUT_SECONDS + 2,
)


async def test_a_replica_whose_pool_is_all_busy_stays_routed(stack: Stack, make_user: Any):
    user = make_user()
    async with httpx.AsyncClient(
        base_url=stack.gateway_url,
        headers=user.headers,
        timeout=60,
        limits=httpx.Limits(max_connections=POOL + 40),
    ) as client:
        created = await client.post("/api/projects", json={"name": "busy"})
        assert created.status_code == 201, created.text
        pid = created.json()["id"]
        assert (await client.get(f"/api/projects/{pid}")).status_code == 200

        # The test's own connection takes the project table: every request that reads a project
        # now waits inside Postgres, holding one of the service's pooled connections.
        lock = await asyncpg.connect(asyncpg_dsn(stack.admin_url))
        # pg_stat_activity is read outside the lock's transaction (a transaction sees one
        # snapshot of it).
        observer = await asyncpg.connect(asyncpg_dsn(stack.admin_url))
        held: list[asyncio.Task[httpx.Response]] = []
        probes: Counter[tuple[int, str]] = Counter()
        try:
            transaction = lock.transaction()
            await transaction.start()
            await lock.execute("lock table projects.project in access exclusive mode")
            # More requests than the pool has connections: the rest queue in the pool.
            held = [
                asyncio.create_task(client.get(f"/api/projects/{pid}")) for _ in range(POOL + 10)
            ]

            async def pool_exhausted() -> bool:
                waiting = await observer.fetchval(
                    "select count(*) from pg_stat_activity where usename = 'projects' "
                    "and wait_event_type = 'Lock'"
                )
                return bool(waiting >= POOL)

            await eventually(pool_exhausted, within=20, what=f"{POOL} connections waiting")

            # While every connection stays busy, requests that need no database must still reach
            # the replica (a 422 from the service), never the fallback's 503.
            loop = asyncio.get_running_loop()
            until = loop.time() + HOLD_SECONDS
            while loop.time() < until or sum(probes.values()) < 2 * HOLD_SECONDS:
                answer = await client.get("/api/projects/not-a-uuid", timeout=30)
                probes[(answer.status_code, _code(answer))] += 1
                await asyncio.sleep(0.2)
            assert await pool_exhausted(), "the pool was released before the hold ended"
        finally:
            await lock.close()  # ends the transaction: the held requests go on
            await observer.close()
        answers = await asyncio.gather(*held)

    assert set(probes) == {(422, "validation_error")}, probes
    # Held requests are answered by the service: read once the lock is gone, or its own 503
    # for a pool checkout that timed out. The fallback's `service_unavailable` never.
    outcomes = Counter((a.status_code, _code(a)) for a in answers)
    assert set(outcomes) <= {(200, ""), (503, "database_unavailable")}, outcomes
    assert outcomes[(200, "")] >= POOL, outcomes


def _code(answer: httpx.Response) -> str:
    if answer.headers.get("content-type", "").startswith("application/problem+json"):
        return str(answer.json().get("code", ""))
    return ""


def test_readyz_answers_from_the_background_check(stack: Stack):
    body = httpx.get(f"{stack.replicas['projects'][0].url}/readyz", timeout=5).json()
    database = body["checks"]["database"]
    assert database["ok"] is True, body
    assert database["consecutive_failures"] == 0
    assert database["checked_seconds_ago"] is not None
    assert isinstance(database["dead_letters"], int)
