"""Sequences benchmark: prints figures, asserts nothing.

1. Time from POST /api/sequences/generate to the first SSE progress frame, through Traefik.
2. Jobs per minute with 1 and with 2 workers (builtin backend, 5 shots of 1920x1080 per job),
   and the ratio between them.

Runs its own stack on loopback (embedded Postgres and NATS, free ports), bounded in requests
and time:  .venv/bin/python benchmarks/sequences_bench.py   (or python3 storycore.py bench)
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from storycore_devstack.stack import Stack, StackConfig
from storycore_testkit.infra.processes import free_port

LATENCY_SAMPLES = 30
JOBS_PER_RUN = 8
PROMPT = (
    "A keeper climbs the lighthouse. The storm breaks. The lamp flares. A ship turns. Dawn comes."
)


def user(client: httpx.Client) -> dict[str, str]:
    email = f"bench-{uuid.uuid4().hex[:8]}@example.com"
    client.post(
        "/api/auth/register", json={"email": email, "password": "benchmark pw 1", "name": "Bench"}
    )
    token = client.post(
        "/api/auth/login", json={"email": email, "password": "benchmark pw 1"}
    ).json()
    return {"Authorization": f"Bearer {token['access_token']}"}


def first_progress_latency(client: httpx.Client, headers: dict[str, str], pid: str) -> float:
    began = time.perf_counter()
    job = client.post(
        "/api/sequences/generate",
        headers=headers,
        json={"project_id": pid, "prompt": PROMPT, "shot_count": 1},
    ).json()
    with client.stream(
        "GET",
        f"/api/sequences/{job['job_id']}/stream",
        headers={**headers, "Accept": "text/event-stream"},
    ) as answer:
        for line in answer.iter_lines():
            if line.startswith("event: progress"):
                return (time.perf_counter() - began) * 1000
    raise RuntimeError("the stream ended without a progress frame")


def jobs_per_minute(client: httpx.Client, headers: dict[str, str], pid: str) -> float:
    began = time.perf_counter()
    ids = [
        client.post(
            "/api/sequences/generate",
            headers=headers,
            json={"project_id": pid, "prompt": PROMPT, "shot_count": 5},
        ).json()["job_id"]
        for _ in range(JOBS_PER_RUN)
    ]
    deadline = time.monotonic() + 300
    pending = set(ids)
    while pending and time.monotonic() < deadline:
        for job_id in list(pending):
            state = client.get(f"/api/sequences/{job_id}/status", headers=headers).json()
            if state["status"] in ("completed", "failed", "cancelled"):
                if state["status"] != "completed":
                    raise RuntimeError(f"job {job_id} ended {state['status']}: {state['error']}")
                pending.discard(job_id)
        time.sleep(0.05)
    if pending:
        raise RuntimeError(f"{len(pending)} jobs unfinished after 300 s")
    return JOBS_PER_RUN / ((time.perf_counter() - began) / 60)


def main() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="storycore-bench-"))
    data_dir.chmod(0o755)
    stack = Stack(
        StackConfig(
            data_dir=data_dir / "stack",
            gateway_port=free_port(),
            gateway_host="127.0.0.1",
            scale={"sequences-worker": 2},
            durable=False,
            environment="test",
            extra_env={
                "SEQUENCES_RATE_LIMIT_PER_MINUTE": "100000",
                "STORYCORE_LOG_LEVEL": "WARNING",
            },
        )
    )
    try:
        stack.start()
        print(f"machine: {os.cpu_count()} cores; stack started in {stack.started_in:.1f} s")
        with httpx.Client(base_url=stack.gateway_url, timeout=60) as client:
            headers = user(client)
            pid = client.post("/api/projects", headers=headers, json={"name": "bench"}).json()["id"]
            first_progress_latency(client, headers, pid)  # warm-up
            samples = sorted(
                first_progress_latency(client, headers, pid) for _ in range(LATENCY_SAMPLES)
            )
            print(
                f"POST generate -> first SSE progress frame, via the gateway, "
                f"n={LATENCY_SAMPLES}: p50 {statistics.median(samples):.1f} ms, "
                f"p95 {samples[int(0.95 * (len(samples) - 1))]:.1f} ms, "
                f"max {samples[-1]:.1f} ms"
            )
            stack.stop_worker("sequences", index=2)
            one = jobs_per_minute(client, headers, pid)
            stack.start_worker("sequences", index=2)
            two = jobs_per_minute(client, headers, pid)
            print(
                f"jobs/minute ({JOBS_PER_RUN} jobs x 5 shots at 1920x1080, builtin backend): "
                f"1 worker {one:.1f}, 2 workers {two:.1f}, ratio {two / one:.2f}"
            )
    finally:
        stack.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
