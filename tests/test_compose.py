"""docker-compose.yml, parsed (no Docker engine runs here): what must hold for every service."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from storycore_devstack.nats_config import (
    Variable,
    compose_config,
    parse_conf,
    password_variable,
)
from storycore_devstack.routes import REPO_ROOT
from storycore_shared.events.bus import BUS, PROVISIONER

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


# -- the event bus: deploy/nats/nats.conf and compose agree with the bus declaration ------------


def _nats_conf() -> dict[str, Any]:
    return parse_conf((REPO_ROOT / "deploy" / "nats" / "nats.conf").read_text())


def test_compose_nats_users_and_permissions_are_the_bus_declaration():
    conf = _nats_conf()
    authorization = conf["authorization"]
    assert set(authorization) == {"users"}, "no shared token, user or no_auth_user"
    users = {user["user"]: user for user in authorization["users"]}
    assert set(users) == {identity.user for identity in BUS}
    for identity in BUS:
        user = users[identity.user]
        assert user["password"] == Variable(password_variable(identity.user)), identity.user
        declared = identity.permissions()
        permissions = user["permissions"]
        assert set(permissions) == {"publish", "subscribe"}, identity.user
        for direction in ("publish", "subscribe"):
            assert permissions[direction] == {"allow": declared[direction]}, (
                identity.user,
                direction,
            )
    # Services never manage streams or buckets: only the provisioner may.
    for name, user in users.items():
        if name == PROVISIONER:
            continue
        allowed = user["permissions"]["publish"]["allow"]
        assert ">" not in allowed, name
        assert "$JS.API.>" not in allowed, name
        for action in (".STREAM.CREATE.", ".STREAM.UPDATE.", ".STREAM.DELETE."):
            assert not any(action in subject for subject in allowed), (name, action)


def test_compose_nats_monitoring_is_local_and_the_clients_port_the_only_one():
    conf = _nats_conf()
    assert conf["http"].startswith("127.0.0.1:"), "monitoring must not listen on every interface"
    for other in ("https", "http_port", "https_port", "monitor_port"):
        assert other not in conf, other
    assert conf["listen"] == "0.0.0.0:4222"  # the compose network only: no port is published


def test_every_nats_password_is_required_and_each_container_has_its_own_user(
    services: dict[str, Any],
):
    nats_env = services["nats"]["environment"]
    for identity in BUS:
        variable = password_variable(identity.user)
        assert nats_env[variable] == f"${{{variable}:?set {variable}}}", variable
    expected = {name: name for name in BUS.identities if name in services}  # + sequences-worker
    expected["nats-provision"] = PROVISIONER
    for container, user in expected.items():
        env = services[container]["environment"]
        urls = {key: value for key, value in env.items() if key.endswith("NATS_URL")}
        assert len(urls) == 1, (container, urls)
        variable = password_variable(user)
        assert next(iter(urls.values())) == (
            f"nats://{user}:${{{variable}:?set {variable}}}@nats:4222"
        ), container
    for name, svc in services.items():  # nobody else talks to NATS without a user
        for key, value in (svc.get("environment") or {}).items():
            if key.endswith("NATS_URL"):
                assert name in expected, (name, key)
                assert "@" in value, (name, key)
    for name in expected:
        if name != "nats-provision":
            assert services[name]["depends_on"]["nats-provision"] == {
                "condition": "service_completed_successfully"
            }, name


def test_the_compose_nats_config_is_what_the_declaration_generates():
    """Regenerate with `python3 storycore.py nats-config > deploy/nats/nats.conf`."""
    assert _nats_conf() == parse_conf(compose_config())
