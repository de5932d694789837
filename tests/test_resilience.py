"""What the suite promises when parts fail: honest 5xx, no lost events, isolated schemas."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import nats
import pytest

from projects.main import MIGRATIONS
from storycore_devstack.stack import Stack, role_url
from storycore_shared.db import asyncpg_dsn, provision_service_role
from storycore_shared.events.envelope import CloudEvent
from storycore_testkit.infra.processes import free_port
from storycore_testkit.polling import eventually, settle
from storycore_testkit.problems import assert_problem


def test_stopped_service_answers_502_or_503_and_comes_back(
    stack: Stack, api: httpx.Client, make_user: Any
):
    user = make_user()
    stack.stop_replica("projects")
    try:
        seen: set[int] = set()

        def problem_from_fallback() -> bool:
            answer = api.get("/api/projects", headers=user.headers)
            seen.add(answer.status_code)
            return answer.headers.get("content-type", "").startswith("application/problem+json")

        # Until Traefik's health check notices, the dead port answers 502; then the failover
        # sends the route to the fallback's 503 problem.
        settle(problem_from_fallback, within=10, what="503 problem for a stopped service")
        assert seen <= {502, 503}, f"a stopped service answered {seen}"
        assert_problem(api.get("/api/projects", headers=user.headers), 503, "service_unavailable")
        # Another service is untouched.
        assert api.get("/api/auth/me", headers=user.headers).status_code == 200
    finally:
        stack.start_replica("projects")
    settle(
        lambda: api.get("/api/projects", headers=user.headers).status_code == 200,
        within=15,
        what="projects back behind the gateway",
    )


def test_writes_succeed_while_nats_is_down_and_every_event_arrives_once(
    stack: Stack, api: httpx.Client, make_user: Any
):
    if stack.nats is None:
        pytest.skip("NATS is external (STORYCORE_TEST_NATS_URL): it cannot be stopped here")
    user = make_user()
    stack.kill_nats()
    created: list[str] = []
    try:
        for i in range(12):
            answer = api.post("/api/projects", json={"name": f"offline {i}"}, headers=user.headers)
            assert answer.status_code == 201, answer.text
            created.append(answer.json()["id"])
    finally:
        stack.start_nats()
    received = asyncio.run(_created_events_of(stack.nats_url, user.id, len(created)))
    assert sorted(received) == sorted(created)  # each exactly once


async def _created_events_of(nats_url: str, owner: str, expected: int) -> list[str]:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        durable = f"test-{uuid.uuid4().hex[:8]}"
        sub = await js.pull_subscribe("project.created", durable=durable, stream="PROJECTS")
        seen: list[str] = []

        async def all_arrived() -> bool:
            try:
                batch = await sub.fetch(100, timeout=0.5)
            except TimeoutError:  # nats' own TimeoutError subclasses it; fetch raises both
                return len(seen) >= expected
            for msg in batch:
                event = CloudEvent.model_validate_json(msg.data)
                if event.data["owner_id"] == owner:
                    seen.append(event.data["id"])
                await msg.ack()
            return len(seen) >= expected

        await eventually(all_arrived, within=30, what=f"{expected} project.created events")

        async def drain() -> None:  # a duplicate would show up now; ends at the first silence
            while True:
                for msg in await sub.fetch(100, timeout=1.0):
                    event = CloudEvent.model_validate_json(msg.data)
                    if event.data["owner_id"] == owner:
                        seen.append(event.data["id"])
                    await msg.ack()

        with pytest.raises(TimeoutError):
            await drain()
        await js.delete_consumer("PROJECTS", durable)
        return seen
    finally:
        await nc.close()


async def test_each_service_role_sees_only_its_own_schema(stack: Stack):
    for role, foreign in (("projects", 'auth."user"'), ("auth", "projects.project")):
        conn = await asyncpg.connect(asyncpg_dsn(stack.database_url(role)))
        try:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.fetch(f"select * from {foreign} limit 1")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(f"create table {foreign.split('.')[0]}.intruder (id int)")
            own = await conn.fetchval(
                "select count(*) from information_schema.tables where table_schema = $1", role
            )
            assert own > 0
        finally:
            await conn.close()


def test_two_replicas_starting_together_migrate_once(stack: Stack, tmp_path: Path):
    database = f"mig_{uuid.uuid4().hex[:8]}"
    asyncio.run(_create_database(stack, database))
    admin_url = stack.admin_url.rsplit("/", 1)[0] + f"/{database}"
    password = stack.role_passwords["projects"]
    asyncio.run(provision_service_role(admin_url, "projects", password))
    env = {
        **stack.service_env(stack.table.services["projects"]),
        "PROJECTS_DATABASE_URL": role_url(admin_url, "projects", password),
    }
    ports = [free_port(), free_port()]
    logs = [tmp_path / f"replica-{i}.log" for i in range(2)]
    procs = []
    for port, log in zip(ports, logs, strict=True):
        with log.open("wb") as sink:
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "uvicorn",
                        "projects.main:create_app",
                        "--factory",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(port),
                    ],
                    env=env,
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                )
            )
    try:
        for port in ports:
            settle(lambda port=port: _ready(port), within=30, what=f"replica on {port}")
        upgrades = sum(log.read_text().count("Running upgrade") for log in logs)
        revisions = len(list((MIGRATIONS / "versions").glob("*.py")))
        assert upgrades == revisions, "each migration must run exactly once across replicas"
        for log in logs:
            assert "Traceback" not in log.read_text()
        versions = asyncio.run(
            _fetch(admin_url, "select version_num from projects.alembic_version")
        )
        assert len(versions) == 1
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


async def _create_database(stack: Stack, name: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(stack.admin_url))
    try:
        await conn.execute(f'create database "{name}"')
    finally:
        await conn.close()


async def _fetch(url: str, query: str) -> list[Any]:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        return list(await conn.fetch(query))
    finally:
        await conn.close()


def test_cors_allows_only_the_configured_origins(api: httpx.Client):
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    allowed = api.options("/api/projects", headers={"Origin": "http://localhost:5173", **preflight})
    assert allowed.headers.get("access-control-allow-origin") == "http://localhost:5173"
    assert "authorization" in allowed.headers.get("access-control-allow-headers", "").lower()
    denied = api.options("/api/projects", headers={"Origin": "https://evil.example", **preflight})
    assert "access-control-allow-origin" not in denied.headers


def test_request_id_is_kept_or_made_and_reaches_the_problem(api: httpx.Client):
    mine = api.get("/api/projects", headers={"X-Request-ID": "trace-me-123"})
    assert mine.headers["x-request-id"] == "trace-me-123"
    assert mine.json()["request_id"] == "trace-me-123"
    made = api.get("/api/projects")
    assert len(made.headers["x-request-id"]) >= 16
    assert made.json()["request_id"] == made.headers["x-request-id"]
    assert made.headers["x-content-type-options"] == "nosniff"
    assert made.headers["x-frame-options"] == "DENY"


def test_readyz_reports_database_nats_relay_and_consumers(stack: Stack):
    for service in ("auth", "projects"):
        replica = stack.replicas[service][0]
        body = httpx.get(f"{replica.url}/readyz", timeout=5).json()
        assert body["status"] == "ok", body
        assert set(body["checks"]) == {"database", "nats", "relay", "consumers"}
        assert body["checks"]["relay"]["role"] in {"leader", "standby"}
        metrics = httpx.get(f"{replica.url}/metrics", timeout=5).text
        assert "storycore_http_requests_total" in metrics
