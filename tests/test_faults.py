"""Fault injection: the suite's promises when NATS, a relay, a consumer, Postgres or a backend
fails. Deadlines and polling, no magic sleeps."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import yaml

from shots.models import event_tables as shot_event_tables
from storycore_devstack.stack import Stack
from storycore_shared.events.relay import republish
from storycore_testkit.infra.processes import free_port
from storycore_testkit.infra.servers import EmbeddedPostgres
from storycore_testkit.polling import settle
from storycore_testkit.problems import assert_problem

BURST = 60


def _project(api: httpx.Client, user: Any) -> str:
    return str(api.post("/api/projects", json={"name": "burst"}, headers=user.headers).json()["id"])


def _answer(api: httpx.Client, user: Any, path: str) -> dict[str, Any]:
    """GET until 200: a restarted replica is back in rotation after Traefik's next check."""
    answers: list[httpx.Response] = []
    settle(
        lambda: (
            answers.append(api.get(path, headers=user.headers)) or answers[-1].status_code == 200
        ),
        within=15,
        what=f"{path} answers",
    )
    return dict(answers[-1].json())


def _committed(api: httpx.Client, user: Any, pid: str) -> int:
    return int(_answer(api, user, f"/api/projects/{pid}/shots")["total"])


def _applied(api: httpx.Client, user: Any, pid: str) -> int:
    return int(_answer(api, user, f"/api/projects/{pid}/summary")["shot_count"])


def burst(stack: Stack, user: Any, pid: str, faults: dict[int, Callable[[], None]]) -> list[int]:
    """Create BURST shots, five at a time, running ``faults[i]`` before request ``i``."""

    async def run() -> list[int]:
        statuses: list[int] = []
        async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=20) as client:
            for start in range(0, BURST, 5):
                for i in range(start, start + 5):
                    if i in faults:
                        await asyncio.to_thread(faults[i])
                answers = await asyncio.gather(
                    *[
                        client.post(
                            "/api/shots",
                            headers=user.headers,
                            json={"project_id": pid, "name": f"s{i}", "prompt": "p"},
                        )
                        for i in range(start, start + 5)
                    ]
                )
                statuses += [a.status_code for a in answers]
        return statuses

    return asyncio.run(run())


def assert_exactly_once(api: httpx.Client, user: Any, pid: str, *, within: float) -> float:
    """Every committed shot is counted once by the projects consumer: the ratio is 1.000."""
    committed = _committed(api, user, pid)
    took = settle(
        lambda: _applied(api, user, pid) == committed,
        within=within,
        what=f"projects applied all {committed} committed shot events",
    )
    time.sleep(1.0)  # a duplicate application would show up now
    assert _applied(api, user, pid) / committed == 1.0
    return took


def test_nats_killed_mid_burst_writes_succeed_and_every_event_is_applied_once(
    stack: Stack, api: httpx.Client, make_user: Any
):
    if stack.nats is None:
        pytest.skip("NATS is external here")
    user = make_user()
    pid = _project(api, user)
    at_restart: list[tuple[float, int]] = []

    def restart() -> None:
        committed = _committed(api, user, pid)  # written while NATS was down
        stack.start_nats()
        at_restart.append((time.monotonic(), committed))

    statuses = burst(stack, user, pid, {15: stack.kill_nats, 45: restart})
    assert statuses == [201] * BURST  # writes never depend on NATS
    assert _committed(api, user, pid) == BURST
    _, backlog = at_restart[0]
    # A deadline for liveness, not a speed claim (a loaded 2-core machine is slow): how fast
    # the backlog drains is a benchmark figure.
    settle(
        lambda: _applied(api, user, pid) >= backlog,
        within=30,
        what="the backlog from the outage applied",
    )
    assert_exactly_once(api, user, pid, within=5)


def test_relay_process_killed_mid_burst_loses_and_duplicates_nothing(
    stack: Stack, api: httpx.Client, make_user: Any
):
    user = make_user()
    pid = _project(api, user)
    api.post(
        "/api/shots", headers=user.headers, json={"project_id": pid, "name": "s", "prompt": "p"}
    )
    # The shots process holds the outbox relay: SIGKILL it mid-burst, then bring it back.
    statuses = burst(
        stack,
        user,
        pid,
        {
            20: lambda: stack.stop_replica("shots", kill=True),
            40: lambda: stack.start_replica("shots"),
        },
    )
    assert statuses.count(201) >= 40 - 20  # before the kill and after the restart
    assert set(statuses) <= {201, 502, 503}
    assert_exactly_once(api, user, pid, within=15)


def test_consumer_killed_mid_burst_applies_every_event_once(
    stack: Stack, api: httpx.Client, make_user: Any
):
    user = make_user()
    pid = _project(api, user)
    api.post(
        "/api/shots", headers=user.headers, json={"project_id": pid, "name": "s", "prompt": "p"}
    )
    # projects consumes shot events: SIGKILL it mid-burst; shots keeps taking writes.
    statuses = burst(
        stack,
        user,
        pid,
        {
            20: lambda: stack.stop_replica("projects", kill=True),
            40: lambda: stack.start_replica("projects"),
        },
    )
    assert statuses == [201] * BURST
    # Messages the killed process had fetched come back after the consumers' ack_wait (10 s).
    assert_exactly_once(api, user, pid, within=25)


def test_postgres_restart_gives_fast_503s_and_services_recover_by_themselves(
    stack: Stack, api: httpx.Client, make_user: Any, postgres_server: EmbeddedPostgres | None
):
    if postgres_server is None:
        pytest.skip("Postgres is external here")
    user = make_user()
    pid = _project(api, user)
    pids = {r.process.pid for reps in stack.replicas.values() for r in reps if r.process}
    postgres_server.stop()
    try:
        slowest = 0.0
        for path in ("/api/projects", f"/api/projects/{pid}/shots", "/api/locations"):
            began = time.monotonic()
            answer = api.get(path, headers=user.headers)
            slowest = max(slowest, time.monotonic() - began)
            assert answer.status_code == 503, (path, answer.status_code, answer.text)
            assert_problem(answer, 503)
        write = api.post("/api/projects", json={"name": "during"}, headers=user.headers)
        assert_problem(write, 503)
        assert slowest < 2 + 3, f"a request hung for {slowest:.1f}s"  # DB timeout is 2 s here
    finally:
        postgres_server.start()
    settle(
        lambda: (
            api.post("/api/projects", json={"name": "after"}, headers=user.headers).status_code
            == 201
        ),
        within=30,
        what="projects writes again",
    )
    settle(
        lambda: (
            api.post(
                "/api/shots",
                headers=user.headers,
                json={"project_id": pid, "name": "after", "prompt": "p"},
            ).status_code
            == 201
        ),
        within=30,
        what="shots writes again",
    )
    settle(lambda: _applied(api, user, pid) == 1, within=15, what="events flow again")
    assert {r.process.pid for reps in stack.replicas.values() for r in reps if r.process} == pids


@pytest.fixture
def stalled_backend() -> Iterator[int]:
    """A server that accepts connections and never answers."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(listener.getsockname()[1])
    stop.set()
    thread.join(2)
    for connection in held:
        connection.close()
    listener.close()


def test_stalled_backend_is_504_and_refused_port_is_502(
    stack: Stack, api: httpx.Client, stalled_backend: int
):
    config = {
        "http": {
            "routers": {
                "fault-stall": {
                    "rule": "Path(`/api/_fault/stall`)",
                    "priority": 500,
                    "entryPoints": ["web"],
                    "service": "fault-stall",
                },
                "fault-refused": {
                    "rule": "Path(`/api/_fault/refused`)",
                    "priority": 500,
                    "entryPoints": ["web"],
                    "service": "fault-refused",
                },
            },
            "services": {
                "fault-stall": {
                    "loadBalancer": {
                        "servers": [{"url": f"http://127.0.0.1:{stalled_backend}"}],
                        "serversTransport": "fault-fast",
                    }
                },
                "fault-refused": {
                    "loadBalancer": {"servers": [{"url": f"http://127.0.0.1:{free_port()}"}]}
                },
            },
            "serversTransports": {
                "fault-fast": {"forwardingTimeouts": {"responseHeaderTimeout": "2s"}}
            },
        }
    }
    extra = stack.data_dir / "gateway" / "dynamic" / "faults.yml"
    extra.write_text(yaml.safe_dump(config))
    try:
        settle(
            lambda: api.get("/api/_fault/refused").status_code == 502,
            within=10,
            what="Traefik loaded the fault routes",
        )
        began = time.monotonic()
        stalled = api.get("/api/_fault/stall", timeout=20)
        took = time.monotonic() - began
        assert stalled.status_code == 504
        assert 1.5 <= took < 5, f"504 after {took:.1f}s for a 2 s timeout"
    finally:
        extra.unlink()
    static = yaml.safe_load((stack.data_dir / "gateway" / "traefik.yml").read_text())
    assert static["serversTransport"]["forwardingTimeouts"]["responseHeaderTimeout"]


def test_republish_resends_a_time_range_and_consumers_ignore_the_copies(
    stack: Stack, api: httpx.Client, make_user: Any
):
    user = make_user()
    pid = _project(api, user)
    since = datetime.now(UTC)
    for i in range(5):
        api.post(
            "/api/shots",
            headers=user.headers,
            json={"project_id": pid, "name": f"s{i}", "prompt": "p"},
        )
    settle(lambda: _applied(api, user, pid) == 5, within=10, what="5 applied")
    sent = asyncio.run(
        republish(
            database_url=stack.database_url("shots"),
            tables=shot_event_tables,
            nats_url=stack.nats_url,
            since=since,
            until=datetime.now(UTC),
        )
    )
    assert sent >= 5
    marker = make_user()  # a later event, to know the consumer has moved past the copies
    later = _project(api, marker)
    api.post(
        "/api/shots", headers=marker.headers, json={"project_id": later, "name": "x", "prompt": "p"}
    )
    settle(lambda: _applied(api, marker, later) == 1, within=10, what="later event applied")
    assert _applied(api, user, pid) == 5
    ready = httpx.get(f"{stack.replicas['projects'][0].url}/readyz", timeout=5).json()
    assert ready["checks"]["database"]["dead_letters"] == 0
