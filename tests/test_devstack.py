"""The dev stack's promises: scaling behind Traefik, and the token command for scripts."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx

from storycore_devstack.stack import Stack, StackConfig
from storycore_shared.infra.processes import free_port


def _served(replica_url: str) -> float:
    metrics = httpx.get(f"{replica_url}/metrics", timeout=5).text
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith("storycore_http_requests_total{") and 'route="/api/projects"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_scale_projects_to_two_replicas_behind_the_gateway(
    stack: Stack, infra_dir: Path, make_user: Any
):
    data_dir = infra_dir / "scaled"
    # Same database and roles as the main test stack, so reuse its role passwords and key.
    shutil.copytree(stack.secrets_dir, data_dir / "secrets")
    scaled = Stack(
        StackConfig(
            data_dir=data_dir,
            gateway_port=free_port(),
            gateway_host="127.0.0.1",
            database_url=stack.config.database_url,
            scale={"projects": 2},
            durable=False,
            environment="test",
        )
    )
    try:
        scaled.start()
        assert len(scaled.replicas["projects"]) == 2
        user = make_user()
        with httpx.Client(base_url=scaled.gateway_url, timeout=10) as client:
            for i in range(10):
                answer = client.post(
                    "/api/projects", json={"name": f"scaled {i}"}, headers=user.headers
                )
                assert answer.status_code == 201, answer.text
            listed = client.get("/api/projects", headers=user.headers).json()
        assert listed["total"] == 10
        served = [_served(r.url) for r in scaled.replicas["projects"]]
        assert all(count >= 3 for count in served), f"load was not shared: {served}"
    finally:
        scaled.stop()


def _token_command(stack: Stack, user: str) -> subprocess.CompletedProcess[str]:
    argv = [
        sys.executable,
        "-m",
        "storycore_devstack",
        "--data-dir",
        str(stack.data_dir),
        "token",
        "--user",
        user,
    ]
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)


def test_token_command_mints_a_token_the_services_accept(stack: Stack, api: httpx.Client):
    minted = _token_command(stack, str(uuid.uuid4()))
    assert minted.returncode == 0, minted.stderr
    token = minted.stdout.strip()
    assert re.fullmatch(r"[\w-]+\.[\w-]+\.[\w-]+", token)
    answer = api.get("/api/projects", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200
    assert answer.json()["total"] == 0
    bad = _token_command(stack, "not-a-uuid")
    assert bad.returncode != 0
    assert "UUID" in bad.stderr
