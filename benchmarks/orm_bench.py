"""ORM cost: GET /api/projects/{id} on the projects service (token check, SQLModel/SQLAlchemy,
pydantic) vs the same query on a bare asyncpg pool (raw_app.py), both direct, concurrency 32.
Ratio = median of interleaved pairs. Target >= 0.60."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from harness import fmt, interleaved, load, new_user, stack

from storycore_shared.db import asyncpg_dsn
from storycore_testkit.infra.processes import free_port

REQUESTS = 3000
CONCURRENCY = 32


def main() -> None:
    with stack() as running:
        headers = new_user(running.gateway_url)
        with httpx.Client(base_url=running.gateway_url, headers=headers) as client:
            pid = client.post("/api/projects", json={"name": "bench"}).json()["id"]
        port = free_port()
        raw = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "raw_app:app",
                "--port",
                str(port),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            cwd=Path(__file__).parent,
            env={**os.environ, "RAW_DSN": asyncpg_dsn(running.database_url("projects"))},
        )
        try:
            raw_url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 20
            while True:
                try:
                    if httpx.get(f"{raw_url}/api/projects/{pid}").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError("raw app did not start")
                time.sleep(0.1)
            service_url = running.replicas["projects"][0].url
            path = f"/api/projects/{pid}"

            def rps(base: str) -> float:
                run = load(
                    base,
                    headers,
                    lambda _: ("GET", path, None),
                    total=REQUESTS,
                    concurrency=CONCURRENCY,
                )
                assert set(run.statuses) == {200}, run.statuses
                return run.rps

            rps(service_url)
            rps(raw_url)  # warm-up
            service, bare, ratio = interleaved(lambda: rps(service_url), lambda: rps(raw_url))
            print(
                f"GET /api/projects/{{id}} c={CONCURRENCY}: service [{fmt(service)}] req/s, "
                f"raw asyncpg [{fmt(bare)}] req/s, ratio (median of pairs) {ratio:.2f}"
            )
        finally:
            raw.terminate()
            raw.wait(10)


if __name__ == "__main__":
    main()
