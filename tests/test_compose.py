"""docker-compose.yml, parsed (no Docker engine runs here): what must hold for every service."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from storycore_devstack.routes import REPO_ROOT

RESTART_POLICIES = {"always", "unless-stopped", "on-failure"}


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    return dict(compose["services"])


def test_every_service_restarts_when_it_dies(services: dict[str, Any]):
    # Each one runs until stopped (APIs, workers, Traefik, Postgres, NATS, the fallback): a
    # crash must not leave it down, the way a killed worker left a job at "processing 32%".
    assert {"traefik", "postgres", "nats", "gateway-fallback", "sequences-worker"} <= set(services)
    missing = {
        name: svc.get("restart")
        for name, svc in services.items()
        if str(svc.get("restart", "no")).split(":")[0] not in RESTART_POLICIES
    }
    assert not missing, f"services without a restart policy: {missing}"
