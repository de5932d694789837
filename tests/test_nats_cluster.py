"""The suite on a three-node NATS JetStream cluster: nodes die, writes and events go on.

One stack of its own (its own Postgres, three ``nats-server`` processes, the services that
projects, shots and storyboards need) with two projects replicas and two sequences workers.
Streams and buckets keep three replicas, so one node down loses nothing and stops nothing.
"""

from __future__ import annotations

import concurrent.futures
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from storycore_devstack.routes import RouteTable, load_route_table
from storycore_devstack.stack import Stack, StackConfig
from storycore_testkit.infra.processes import free_port

pytestmark = pytest.mark.stack

SERVICES = ("auth", "projects", "shots", "llm", "sequences", "gateway-fallback")
WRITES = 300
SLOW_SHOTS = 40  # at 720p: long enough for both workers to hold a job when one is killed


@pytest.fixture(scope="module")
def cluster(infra_dir: Path) -> Iterator[Stack]:
    table = load_route_table()
    subset = RouteTable(
        table.entrypoint,
        table.port,
        {name: entry for name, entry in table.services.items() if name in SERVICES},
    )
    config = StackConfig(
        data_dir=infra_dir / "nats-cluster",
        gateway_port=free_port(),
        nats_cluster=3,
        scale={"projects": 2, "sequences-worker": 2},
        durable=False,
        environment="test",
        extra_env={
            "STORYCORE_LOG_LEVEL": "INFO",
            "AUTH_LOGIN_CLIENT_ALLOWANCE": "100000",
            "LLM_DEFAULT_PROVIDER": "mock",
            "SEQUENCES_WORKER_ACK_WAIT_SECONDS": "3",
            "SEQUENCES_RATE_LIMIT_PER_MINUTE": "1000",
            "PROJECTS_RATE_LIMIT_PER_MINUTE": "100000",
            "SHOTS_RATE_LIMIT_PER_MINUTE": "100000",
        },
    )
    stack = Stack(config, subset)
    try:
        stack.start()
    except BaseException:
        stack.stop()
        raise
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def client(cluster: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=cluster.gateway_url, timeout=30) as api:
        yield api


def _register(client: httpx.Client) -> dict[str, str]:
    email, password = f"cluster-{uuid.uuid4().hex[:8]}@example.com", "a long enough password"
    created = client.post(
        "/api/auth/register", json={"email": email, "password": password, "name": "Ops"}
    )
    assert created.status_code == 201, created.text
    login = client.post("/api/auth/login", json={"email": email, "password": password})
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


@pytest.fixture
def headers(client: httpx.Client) -> dict[str, str]:
    """A new user per test: each one counts only its own projects."""
    return _register(client)


def _settle(check: Callable[[], bool], *, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"not within {within} s: {what}"
        time.sleep(0.2)


def _jsz(stack: Stack, node: int) -> dict[str, Any]:
    server = stack.nats_nodes[node - 1]
    assert server.cluster is not None
    port = server.cluster.monitor_ports[server.server_name]
    answer = httpx.get(
        f"http://127.0.0.1:{port}/jsz", params={"streams": "true", "config": "true"}, timeout=5
    )
    return dict(answer.json())


def _stream_states(stack: Stack, node: int) -> dict[str, tuple[int, int]]:
    """Per stream on one node: (messages, last sequence)."""
    states: dict[str, tuple[int, int]] = {}
    for account in _jsz(stack, node).get("account_details") or []:
        for stream in account.get("stream_detail") or []:
            state = stream["state"]
            states[stream["name"]] = (state["messages"], state["last_seq"])
    return states


def _caught_up(stack: Stack) -> bool:
    """Every node holds every stream, at the same last sequence."""
    try:
        states = [_stream_states(stack, node) for node in (1, 2, 3)]
    except (httpx.HTTPError, ValueError, KeyError):
        return False
    return bool(states[0]) and all(state == states[0] for state in states)


def _write(client: httpx.Client, headers: dict[str, str], index: int) -> tuple[str, int, int]:
    """One project and one shot in it; the two statuses."""
    made = client.post("/api/projects", json={"name": f"cluster {index}"}, headers=headers)
    if made.status_code != 201:
        return "", made.status_code, 0
    pid = made.json()["id"]
    shot = client.post(
        "/api/shots",
        json={"project_id": pid, "name": f"shot {index}", "prompt": "a harbour at dawn"},
        headers=headers,
    )
    return pid, made.status_code, shot.status_code


def _sequence(
    client: httpx.Client, headers: dict[str, str], shots: int, size: tuple[int, int] = (320, 180)
) -> tuple[str, str]:
    made = client.post(
        "/api/projects",
        json={"name": "storyboard", "resolution_width": size[0], "resolution_height": size[1]},
        headers=headers,
    )
    assert made.status_code == 201, made.text
    pid = made.json()["id"]
    job = client.post(
        "/api/sequences/generate",
        json={"project_id": pid, "prompt": "A lighthouse keeper", "shot_count": shots},
        headers=headers,
    )
    assert job.status_code == 202, job.text
    return pid, job.json()["job_id"]


def _job_status(client: httpx.Client, headers: dict[str, str], job_id: str) -> str:
    answer = client.get(f"/api/sequences/{job_id}/status", headers=headers)
    return str(answer.json()["status"]) if answer.status_code == 200 else "unknown"


def test_the_cluster_keeps_three_replicas_of_every_stream(cluster: Stack) -> None:
    assert len(cluster.nats_nodes) == 3
    assert cluster.nats_url_for("projects").count(",") == 2  # services know every node
    _settle(lambda: _caught_up(cluster), within=30, what="every node holds every stream")
    details = _jsz(cluster, 1)["account_details"]
    streams = [s for account in details for s in account.get("stream_detail") or []]
    assert {s["name"] for s in streams} >= {"PROJECTS", "SHOTS", "SEQUENCES"}
    assert all(s["config"]["num_replicas"] == 3 for s in streams), [
        (s["name"], s["config"]["num_replicas"]) for s in streams
    ]


def test_writes_and_events_survive_a_node_then_the_meta_leader(
    cluster: Stack, client: httpx.Client, headers: dict[str, str]
) -> None:
    seq_pid, job_id = _sequence(client, headers, shots=6)
    results: list[tuple[str, int, int]] = []
    follower = next(n for n in (1, 2, 3) if n != cluster.nats_meta_leader())
    leader_killed: list[int] = []

    def disrupt(done: int) -> None:
        if done == WRITES // 5:
            cluster.kill_nats(follower)  # kill -9
        elif done == 2 * WRITES // 5:
            cluster.start_nats(follower)
            _settle(lambda: _caught_up(cluster), within=60, what="the node caught up")
        elif done == 3 * WRITES // 5:
            leader = cluster.nats_meta_leader()
            assert leader is not None
            leader_killed.append(leader)
            cluster.kill_nats(leader)
        elif done == 4 * WRITES // 5:
            cluster.start_nats(leader_killed[0])

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        for start in range(0, WRITES, 20):
            batch = pool.map(lambda i: _write(client, headers, i), range(start, start + 20))
            results.extend(batch)
            disrupt(len(results))
    assert leader_killed, "the meta leader was never taken down"
    refused = [(pid, made, shot) for pid, made, shot in results if (made, shot) != (201, 201)]
    assert not refused, f"{len(refused)} writes were not acknowledged: {refused[:5]}"

    # Every shot.created is applied once by projects: each project counts exactly one shot.
    pids = {pid for pid, _, _ in results}

    def counted() -> bool:
        counts: dict[str, int] = {}
        page = 1
        while True:
            answer = client.get(
                "/api/projects", params={"page": page, "page_size": 100}, headers=headers
            ).json()
            counts.update({p["id"]: p["shot_count"] for p in answer["projects"]})
            if page * 100 >= answer["total"]:
                break
            page += 1
        return all(counts.get(pid) == 1 for pid in pids)

    _settle(counted, within=90, what="every project counts its one shot")
    time.sleep(2)  # a redelivered event would show up now as a second count
    assert counted(), "an event was applied twice"

    # The storyboard that ran through all of it completed, its shots made once.
    _settle(
        lambda: _job_status(client, headers, job_id) in {"completed", "failed", "cancelled"},
        within=120,
        what="the sequence job finished",
    )
    assert _job_status(client, headers, job_id) == "completed"
    _settle(
        lambda: client.get(f"/api/projects/{seq_pid}/shots", headers=headers).json()["total"] == 6,
        within=30,
        what="sequence.generated created the shots",
    )
    # Both restarted nodes hold everything the others do.
    _settle(lambda: _caught_up(cluster), within=60, what="the restarted nodes caught up")


def _served(replica_url: str) -> float:
    metrics = httpx.get(f"{replica_url}/metrics", timeout=5).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("storycore_http_requests_total{") and 'route="/api/projects"' in line
    )


def _worker_jobs(cluster: Stack, index: int) -> str:
    return (cluster.log_dir / f"sequences-worker.{index}.log").read_text(errors="replace")


def test_two_replicas_and_two_workers_share_the_load_and_a_kill_loses_nothing(
    cluster: Stack, client: httpx.Client, headers: dict[str, str]
) -> None:
    before = [_served(r.url) for r in cluster.replicas["projects"]]
    names = [f"shared {uuid.uuid4().hex[:6]} {i}" for i in range(20)]
    for name in names:
        answer = client.post("/api/projects", json={"name": name}, headers=headers)
        assert answer.status_code == 201, answer.text
    served = [_served(r.url) - b for r, b in zip(cluster.replicas["projects"], before, strict=True)]
    assert all(count >= 5 for count in served), f"the replicas did not share the load: {served}"

    # Two storyboards at once: each worker takes one; then one worker and one replica die.
    jobs = [_sequence(client, headers, shots=SLOW_SHOTS, size=(1280, 720)) for _ in range(2)]
    _settle(
        lambda: all(_job_status(client, headers, j) == "processing" for _, j in jobs),
        within=30,
        what="both jobs are taken",
    )
    taken = [[j for _, j in jobs if j in _worker_jobs(cluster, w)] for w in (1, 2)]
    assert all(taken), f"one worker took every job: {taken}"
    cluster.stop_worker("sequences", 1, kill=True)
    cluster.stop_replica("projects", 1, kill=True)
    try:
        # Writes go on through the other replica; the gateway may answer 502 for a request it
        # sent to the dead one before its health check noticed, which never reached it.
        more = [f"after {uuid.uuid4().hex[:6]} {i}" for i in range(10)]
        for name in more:
            for _ in range(20):
                answer = client.post("/api/projects", json={"name": name}, headers=headers)
                if answer.status_code != 502:
                    break
                time.sleep(0.5)
            assert answer.status_code == 201, answer.text
        for pid, job_id in jobs:
            _settle(
                lambda job_id=job_id: _job_status(client, headers, job_id) == "completed",
                within=120,
                what="the killed worker's job completed on the other",
            )
            _settle(
                lambda pid=pid: (
                    client.get(f"/api/projects/{pid}/shots", headers=headers).json()["total"]
                    == SLOW_SHOTS
                ),
                within=30,
                what="the shots were created once",
            )
        listed = client.get("/api/projects", params={"page_size": 100}, headers=headers).json()
        stored = [p["name"] for p in listed["projects"]]
        for name in names + more:
            assert stored.count(name) == 1, f"{name!r} stored {stored.count(name)} times"
    finally:
        cluster.start_worker("sequences", 1)
        cluster.start_replica("projects", 1)
