"""The gateway route table (``gateway/routes.toml``) and what is generated from it.

The same table yields Traefik's file-provider routes for the dev stack and the labels that
``docker-compose.yml`` must carry, so the two modes cannot drift.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[3]
GATEWAY_DIR = REPO_ROOT / "gateway"
FALLBACK = "gateway-fallback"

# A pooled upstream connection must be dropped by the gateway before the service closes it:
# otherwise Traefik can write a request into a socket the service has just closed, and a POST
# (not replayable) comes back as 502. So Traefik forgets idle connections after 30 s, and
# uvicorn keeps them for 120 s (its default is 5 s; also above Traefik's default of 90 s).
# The Dockerfiles and docker-compose.yml say the same; tests/test_gateway_config.py checks.
GATEWAY_IDLE_CONN_TIMEOUT = "30s"
SERVICE_KEEP_ALIVE_SECONDS = 120

# Traefik's active health check of every replica (local mode; compose labels use the compose
# figures). One failed check takes a replica out of rotation, so the check must only fail when
# the replica cannot serve: ``/readyz`` answers from readiness computed in the background
# (storycore_shared.health), and the timeout leaves room for a replica whose event loop is busy
# with a burst of requests.
HEALTH_CHECK_INTERVAL_SECONDS = 2
HEALTH_CHECK_TIMEOUT_SECONDS = 5
COMPOSE_HEALTH_CHECK_INTERVAL_SECONDS = 5
COMPOSE_HEALTH_CHECK_TIMEOUT_SECONDS = 5

# The ``api`` chain's body limit is Traefik's buffering middleware, which holds back the response
# as well as the request, for a body a read does not have: a small read paid up to 0.08 ms of p50
# and 0.02 ms of Traefik's CPU, and a download waited for its whole file (34.6 MB: the first byte
# after 124 ms instead of 11; docs/benchmarks.md, "What the gateway's chain costs a read"). So
# every route on ``api`` has a twin for GET and HEAD, one priority above it, on ``api-read`` (the
# same chain without the body limit). Any request that may carry a body still meets the gateway's
# 413, and a service answers 413 past the same limit itself.
API_CHAIN = "api@file"
READ_CHAIN = "api-read@file"
READ_METHODS = "Method(`GET`) || Method(`HEAD`)"


@dataclass(frozen=True)
class Route:
    name: str
    rule: str
    priority: int
    middlewares: tuple[str, ...]


@dataclass(frozen=True)
class ServiceEntry:
    name: str
    app: str
    container_port: int
    health_path: str
    routes: tuple[Route, ...]
    worker: str | None = None

    @property
    def is_fallback(self) -> bool:
        return self.name == FALLBACK

    @property
    def gateway_routes(self) -> tuple[Route, ...]:
        """The routers the gateway gets for this service: the table's routes, each route on
        ``api`` preceded by its twin for reads (see ``READ_CHAIN``)."""
        routers: list[Route] = []
        for route in self.routes:
            if API_CHAIN in route.middlewares:
                routers.append(
                    Route(
                        f"{route.name}-read",
                        f"({route.rule}) && ({READ_METHODS})",
                        route.priority + 1,
                        tuple(READ_CHAIN if m == API_CHAIN else m for m in route.middlewares),
                    )
                )
            routers.append(route)
        return tuple(routers)


@dataclass(frozen=True)
class RouteTable:
    entrypoint: str
    port: int
    services: dict[str, ServiceEntry]

    @property
    def domain_services(self) -> list[ServiceEntry]:
        return [s for s in self.services.values() if not s.is_fallback]


def connect_host(listen_host: str) -> str:
    """Where a local client reaches a server listening on ``listen_host`` ("" = everywhere;
    an IPv6 address in brackets, as Traefik's entrypoint address wants it)."""
    if listen_host in ("", "0.0.0.0", "[::]"):
        return "127.0.0.1"
    return listen_host


def load_route_table(path: Path | None = None) -> RouteTable:
    raw = tomllib.loads((path or GATEWAY_DIR / "routes.toml").read_text())
    services = {}
    for name, entry in raw["services"].items():
        routes = tuple(
            Route(r["name"], r["rule"], int(r["priority"]), tuple(r.get("middlewares", [])))
            for r in entry["routes"]
        )
        services[name] = ServiceEntry(
            name,
            entry["app"],
            int(entry["container_port"]),
            entry["health_path"],
            routes,
            entry.get("worker"),
        )
    gateway = raw["gateway"]
    # A read twin sits one priority above its route: it must not tie with another route,
    # whose order against it Traefik would not define.
    taken = {r.priority for s in services.values() for r in s.routes}
    for service in services.values():
        for router in service.gateway_routes:
            if router not in service.routes and router.priority in taken:
                raise ValueError(
                    f"{router.name}: priority {router.priority} is another route's; "
                    "leave a gap of two between the priorities of routes on api@file"
                )
    return RouteTable(gateway["entrypoint"], int(gateway["port"]), services)


def local_routes(table: RouteTable, addresses: dict[str, list[str]]) -> dict[str, Any]:
    """Traefik file-provider config routing to local replicas (``addresses[service]`` URLs)."""
    routers: dict[str, Any] = {}
    services: dict[str, Any] = {}
    for service in table.services.values():
        for route in service.gateway_routes:
            routers[route.name] = {
                "rule": route.rule,
                "priority": route.priority,
                "entryPoints": [table.entrypoint],
                "middlewares": list(route.middlewares),
                "service": service.name,
            }
        balancer = {
            "loadBalancer": {
                "servers": [{"url": url} for url in addresses.get(service.name, [])],
                "healthCheck": {
                    "path": service.health_path,
                    "interval": f"{HEALTH_CHECK_INTERVAL_SECONDS}s",
                    "timeout": f"{HEALTH_CHECK_TIMEOUT_SECONDS}s",
                },
            }
        }
        if service.is_fallback:
            services[service.name] = balancer
        else:
            # When every replica fails its health check, the fallback answers 503 problem+json
            # (with the docker provider the dead router vanishes and the catch-all does it).
            services[f"{service.name}-replicas"] = balancer
            services[service.name] = {
                "failover": {
                    "service": f"{service.name}-replicas",
                    "fallback": FALLBACK,
                    "healthCheck": {},
                }
            }
    return {"http": {"routers": routers, "services": services}}


def fallback_services(table: RouteTable, addresses: dict[str, list[str]]) -> str:
    """``STORYCORE_GATEWAY_SERVICES`` for the fallback app: each domain service's rules (a path
    they claim is 503 while the service is down, any other 404) and its replicas' health URLs
    (for ``/api/health``)."""
    return json.dumps(
        {
            service.name: {
                "rules": [route.rule for route in service.routes],
                "health": [
                    f"{url}{service.health_path}" for url in addresses.get(service.name, [])
                ],
            }
            for service in table.domain_services
        },
        separators=(",", ":"),
    )


def compose_labels(table: RouteTable, service: ServiceEntry) -> dict[str, str]:
    """The Traefik labels ``docker-compose.yml`` must give ``service``."""
    labels = {"traefik.enable": "true"}
    for route in service.gateway_routes:
        prefix = f"traefik.http.routers.{route.name}"
        labels |= {
            f"{prefix}.rule": route.rule,
            f"{prefix}.priority": str(route.priority),
            f"{prefix}.entrypoints": table.entrypoint,
            f"{prefix}.middlewares": ",".join(route.middlewares),
            f"{prefix}.service": service.name,
        }
    lb = f"traefik.http.services.{service.name}.loadbalancer"
    labels |= {
        f"{lb}.server.port": str(service.container_port),
        f"{lb}.healthcheck.path": service.health_path,
        f"{lb}.healthcheck.interval": f"{COMPOSE_HEALTH_CHECK_INTERVAL_SECONDS}s",
        f"{lb}.healthcheck.timeout": f"{COMPOSE_HEALTH_CHECK_TIMEOUT_SECONDS}s",
    }
    return labels
