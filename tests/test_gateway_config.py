"""The gateway's two modes cannot drift: compose labels and local routes both follow the table.

Docker cannot run here, so docker-compose.yml is checked by parsing it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from storycore_devstack.routes import (
    API_CHAIN,
    FALLBACK,
    GATEWAY_DIR,
    GATEWAY_IDLE_CONN_TIMEOUT,
    READ_CHAIN,
    REPO_ROOT,
    SERVICE_KEEP_ALIVE_SECONDS,
    compose_labels,
    connect_host,
    fallback_services,
    load_route_table,
    local_routes,
)
from storycore_devstack.stack import Stack, StackConfig

TABLE = load_route_table()
ONE_SHOTS = {"nats-provision"}


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


def test_the_fallback_knows_the_route_table_in_both_modes(compose: dict[str, Any]):
    """A down service's paths are 503 and unknown paths 404: the fallback must know which is
    which, and where /api/health probes, from the same table in compose and the dev stack."""
    env = compose["services"][FALLBACK]["environment"]
    addresses = {s.name: [f"http://{s.name}:{s.container_port}"] for s in TABLE.domain_services}
    assert json.loads(env["STORYCORE_GATEWAY_SERVICES"]) == json.loads(
        fallback_services(TABLE, addresses)
    )


def test_generated_local_routes_follow_the_table():
    addresses = {name: [f"http://127.0.0.1:{9000 + i}"] for i, name in enumerate(TABLE.services)}
    config = local_routes(TABLE, addresses)["http"]
    expected_routers = {r.name for s in TABLE.services.values() for r in s.gateway_routes}
    assert set(config["routers"]) == expected_routers
    for entry in TABLE.services.values():
        for route in entry.gateway_routes:
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


def test_every_api_route_has_a_read_twin_without_the_body_limit():
    """GET and HEAD skip Traefik's buffering (it holds back the answer too); everything else,
    OPTIONS included, still meets the gateway's body limit."""
    taken = {r.priority for s in TABLE.services.values() for r in s.routes}
    twins = 0
    for entry in TABLE.services.values():
        routers = {r.name: r for r in entry.gateway_routes}
        assert set(entry.routes) <= set(routers.values())
        for route in entry.routes:
            twin = routers.get(f"{route.name}-read")
            if API_CHAIN not in route.middlewares:
                assert twin is None, route.name
                continue
            twins += 1
            assert twin is not None, route.name
            assert twin.rule == f"({route.rule}) && (Method(`GET`) || Method(`HEAD`))"
            assert twin.priority == route.priority + 1
            assert twin.priority not in taken, f"{twin.name} ties another route"
            assert twin.middlewares == tuple(
                READ_CHAIN if m == API_CHAIN else m for m in route.middlewares
            )
        assert len(routers) == len(entry.routes) + sum(
            API_CHAIN in r.middlewares for r in entry.routes
        )
    assert twins >= 10


def test_a_twin_that_would_tie_another_route_is_refused(tmp_path: Path):
    table = tmp_path / "routes.toml"
    table.write_text(
        """
[gateway]
entrypoint = "web"
port = 8080

[services.projects]
app = "projects.main:create_app"
container_port = 8000
health_path = "/readyz"

[[services.projects.routes]]
name = "projects"
rule = "PathPrefix(`/api/projects`)"
priority = 100
middlewares = ["api@file"]

[[services.projects.routes]]
name = "project-things"
rule = "PathRegexp(`^/api/projects/[^/]+/things`)"
priority = 101
middlewares = ["api@file"]
"""
    )
    with pytest.raises(ValueError, match="projects-read: priority 101"):
        load_route_table(table)


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
            # A one-shot (nats-provision) is waited for until it has succeeded.
            done = "service_completed_successfully" if dependency in ONE_SHOTS else None
            assert condition["condition"] in ("service_healthy", done), (name, dependency)
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
        package = entry.app.split(".")[0]  # its folder (video_editor is the service video-editor)
        dockerfile = (REPO_ROOT / "services" / package / "Dockerfile").read_text()
        copied = re.findall(r"^COPY (\S+)", dockerfile, flags=re.M)
        assert copied == ["constraints.txt", "shared", f"services/{package}"], copied
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
    # The read chain is the api chain without the buffering.
    api = middlewares["api"]["chain"]["middlewares"]
    assert middlewares["api-read"]["chain"]["middlewares"] == [m for m in api if m != "body-limit"]
    used = {
        m.split("@")[0]
        for s in TABLE.services.values()
        for r in s.gateway_routes
        for m in r.middlewares
    }
    assert used <= set(middlewares)
    assert not list(Path(REPO_ROOT / "gateway").glob("*.toml"))[1:], "one route table only"


def _seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)(ms|s|m)", duration)
    assert match, duration
    return int(match.group(1)) * {"ms": 0.001, "s": 1, "m": 60}[match.group(2)]


def test_the_gateway_drops_idle_connections_before_the_services_do(compose: dict[str, Any]):
    """Otherwise Traefik can write a POST into a connection uvicorn has just closed: a 502."""
    flag = "--serversTransport.forwardingTimeouts.idleConnTimeout="
    compose_idle = [c for c in compose["services"]["traefik"]["command"] if c.startswith(flag)]
    assert compose_idle == [flag + GATEWAY_IDLE_CONN_TIMEOUT]
    assert _seconds(GATEWAY_IDLE_CONN_TIMEOUT) < SERVICE_KEEP_ALIVE_SECONDS
    assert SERVICE_KEEP_ALIVE_SECONDS > 90, "above Traefik's default idle timeout, too"
    for entry in TABLE.services.values():
        folder = "gateway" if entry.is_fallback else f"services/{entry.app.split('.')[0]}"
        dockerfile = (REPO_ROOT / folder / "Dockerfile").read_text()
        assert f'"--timeout-keep-alive", "{SERVICE_KEEP_ALIVE_SECONDS}"' in dockerfile, folder


def test_the_dev_stack_gateway_listens_on_this_machine_only(tmp_path: Path):
    config = StackConfig(data_dir=tmp_path)
    assert config.gateway_host == "127.0.0.1"
    stack = Stack(config)
    stack._write_gateway_config()
    static = yaml.safe_load((tmp_path / "gateway" / "traefik.yml").read_text())
    assert static["entryPoints"][TABLE.entrypoint]["address"] == f"127.0.0.1:{TABLE.port}"
    transport = static["serversTransport"]["forwardingTimeouts"]
    assert transport["idleConnTimeout"] == GATEWAY_IDLE_CONN_TIMEOUT
    assert stack.gateway_url == f"http://127.0.0.1:{TABLE.port}"
    assert connect_host("0.0.0.0") == "127.0.0.1"
    assert connect_host("[::1]") == "[::1]"


def test_the_gateways_own_400_and_413_become_problems(compose: dict[str, Any]):
    text = (GATEWAY_DIR / "dynamic.yml").read_text()
    rendered = re.sub(
        r"^\{\{-? range .*?\}\}\n(.*?)\n\{\{- end \}\}", '          - "x"', text, flags=re.M | re.S
    )
    rendered = re.sub(r"\{\{.*?\}\}", '"gateway-fallback@file"', rendered)
    middlewares = yaml.safe_load(rendered)["http"]["middlewares"]
    chain = middlewares["api"]["chain"]["middlewares"]
    assert chain.index("problems") < chain.index("body-limit"), "it must wrap the limit"
    errors = middlewares["problems"]["errors"]
    assert errors["status"] == ["400", "413"]
    assert errors["query"] == "/_problems/{status}"
    assert 'env "STORYCORE_GATEWAY_PROBLEMS_SERVICE"' in text
    traefik_env = compose["services"]["traefik"]["environment"]
    assert traefik_env["STORYCORE_GATEWAY_PROBLEMS_SERVICE"] == f"{FALLBACK}@docker"


def test_the_fallback_image_carries_the_api_docs():
    dockerfile = (REPO_ROOT / "gateway" / "Dockerfile").read_text()
    assert "COPY openapi/storycore.json /app/openapi/storycore.json" in dockerfile
    assert "node_modules/swagger-ui-dist /app/openapi/node_modules/swagger-ui-dist" in dockerfile
    assert "STORYCORE_API_DOCS_DIR=/app/openapi" in dockerfile
