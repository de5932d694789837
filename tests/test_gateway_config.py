"""The gateway's two modes cannot drift: compose labels and local routes both follow the table.

Docker cannot run here, so docker-compose.yml is checked by parsing it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from storycore_devstack.routes import (
    FALLBACK,
    GATEWAY_DIR,
    REPO_ROOT,
    compose_labels,
    load_route_table,
    local_routes,
)
from storycore_devstack.stack import Stack

TABLE = load_route_table()


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text()))


def _labels(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("labels", {})
    if isinstance(raw, dict):
        return {str(k): str(v) for k, v in raw.items()}
    return dict(item.split("=", 1) for item in raw)


def test_compose_labels_are_exactly_the_route_table(compose: dict[str, Any]):
    services = compose["services"]
    for entry in TABLE.services.values():
        assert entry.name in services, f"{entry.name} is in routes.toml but not in compose"
        traefik = {
            k: v for k, v in _labels(services[entry.name]).items() if k.startswith("traefik.")
        }
        assert traefik == compose_labels(TABLE, entry), entry.name
    routed = {name for name, svc in services.items() if _labels(svc).get("traefik.enable")}
    assert routed == set(TABLE.services), "a compose service is routed but not in the table"


def test_generated_local_routes_follow_the_table():
    addresses = {name: [f"http://127.0.0.1:{9000 + i}"] for i, name in enumerate(TABLE.services)}
    config = local_routes(TABLE, addresses)["http"]
    expected_routers = {r.name for s in TABLE.services.values() for r in s.routes}
    assert set(config["routers"]) == expected_routers
    for entry in TABLE.services.values():
        for route in entry.routes:
            router = config["routers"][route.name]
            assert router["rule"] == route.rule
            assert router["priority"] == route.priority
            assert router["middlewares"] == list(route.middlewares)
            assert router["service"] == entry.name
            assert router["entryPoints"] == [TABLE.entrypoint]
        if entry.is_fallback:
            balancer = config["services"][entry.name]["loadBalancer"]
        else:
            failover = config["services"][entry.name]["failover"]
            assert failover["fallback"] == FALLBACK
            balancer = config["services"][failover["service"]]["loadBalancer"]
        assert balancer["servers"] == [{"url": u} for u in addresses[entry.name]]
        assert balancer["healthCheck"]["path"] == entry.health_path


def test_running_stack_serves_the_generated_routes(stack: Stack):
    written = yaml.safe_load((stack.data_dir / "gateway" / "dynamic" / "routes.yml").read_text())
    addresses = {n: [r.url for r in reps] for n, reps in stack.replicas.items()}
    assert written == local_routes(TABLE, addresses)


def test_catch_all_has_the_lowest_priority_and_api_routes_are_under_api():
    routes = [r for s in TABLE.services.values() for r in s.routes]
    catch_all = [r for r in routes if r.rule == "PathPrefix(`/`)"]
    assert len(catch_all) == 1
    assert catch_all[0].priority < min(r.priority for r in routes if r is not catch_all[0])
    for route in routes:
        if route is not catch_all[0]:
            assert route.rule.startswith(
                ("PathPrefix(`/api/", "PathRegexp(`^/api/", "Path(`/api/")
            ), route.rule


def test_sub_resources_outrank_the_service_that_owns_the_prefix():
    projects = TABLE.services["projects"].routes[0]
    for entry in TABLE.domain_services:
        for route in entry.routes:
            if route.rule.startswith("PathRegexp(`^/api/projects/"):
                assert entry.name != "projects"
                assert route.priority > projects.priority, route.name


def test_compose_has_the_pieces_healthchecks_and_no_default_secrets(compose: dict[str, Any]):
    services = compose["services"]
    assert services["traefik"]["image"].startswith("traefik:v3")
    assert services["postgres"]["image"] == "postgres:16"
    assert services["nats"]["image"].startswith("nats:2")
    assert "-js" in services["nats"]["command"]
    assert "--providers.docker.exposedByDefault=false" in services["traefik"]["command"]
    published = {name: svc["ports"] for name, svc in services.items() if "ports" in svc}
    assert published == {"traefik": ["8080:8080"]}, "only the gateway's 8080 is published"
    for name, svc in services.items():
        assert "healthcheck" in svc, f"{name} has no healthcheck"
        for dependency, condition in svc.get("depends_on", {}).items():
            assert condition == {"condition": "service_healthy"}, (name, dependency)
    for name in TABLE.services:
        if name != FALLBACK:
            assert set(services[name]["depends_on"]) >= {"postgres", "nats"}
    text = (REPO_ROOT / "docker-compose.yml").read_text()
    for secret in (
        "POSTGRES_PASSWORD",
        "AUTH_DB_PASSWORD",
        "PROJECTS_DB_PASSWORD",
        "AUTH_SIGNING_KEY_PATH",
    ):
        uses = re.findall(r"\$\{" + secret + r"([^}]*)\}", text)
        assert uses, f"{secret} is not used"
        assert all(use.startswith(":?") for use in uses), f"{secret} must be ${{{secret}:?...}}"
    assert "PASSWORD: " not in re.sub(r"PASSWORD: \$\{", "", text), "a literal password"


def test_every_service_image_installs_only_shared_and_itself():
    for entry in TABLE.domain_services:
        dockerfile = (REPO_ROOT / "services" / entry.name / "Dockerfile").read_text()
        copied = re.findall(r"^COPY (\S+)", dockerfile, flags=re.M)
        assert copied == ["constraints.txt", "shared", f"services/{entry.name}"], copied
        assert f"{entry.app.split('.')[0]}.main:create_app" in dockerfile


def test_middlewares_defined_once_and_sse_never_compressed():
    text = (GATEWAY_DIR / "dynamic.yml").read_text()
    # Render the two template lines the way Traefik would with defaults, then parse.
    rendered = re.sub(
        r"^\{\{-? range .*?\}\}\n(.*?)\n\{\{- end \}\}", '          - "x"', text, flags=re.M | re.S
    )
    rendered = re.sub(r"\{\{.*?\}\}", "1", rendered)
    middlewares = yaml.safe_load(rendered)["http"]["middlewares"]
    compressed = middlewares["compress"]["compress"]["includedContentTypes"]
    assert "application/json" in compressed
    # SSE must flow frame by frame, and media must keep Range: neither is ever compressed.
    assert not {"text/event-stream", "image/png", "audio/wav", "video/mp4"} & set(compressed)
    assert middlewares["body-limit"]["buffering"]["maxRequestBodyBytes"] == 1
    used = {
        m.split("@")[0] for s in TABLE.services.values() for r in s.routes for m in r.middlewares
    }
    assert used <= set(middlewares)
    assert not list(Path(REPO_ROOT / "gateway").glob("*.toml"))[1:], "one route table only"
