"""The gateway's own answers: unknown routes, services that are down, and ``/api/health``.

Traefik sends here every path no live router claims (the lowest-priority catch-all) and, in the
dev stack, every request of a service whose replicas all fail their health check (each service
fails over to this app). With the docker provider a dead container's router disappears, so such
a request reaches the catch-all instead. Either way this app tells the two cases apart by the
route table it is given (``STORYCORE_GATEWAY_SERVICES``): a path some service's rule claims gets
503 problem+json with ``Retry-After`` (the service exists, it is down); any other path gets 404
``route_not_found``.

``GET /api/health`` is the suite's aggregate readiness: each service's ``/readyz`` replicas are
probed, and the answer is 200 when every service has a ready replica, else 503, listing each
service's status. ``/api/<service>/healthz`` and ``/readyz`` do not exist (404): per-process
health stays off the public API.

It also renders the problems the gateway itself answers: Traefik cannot template a body, so
its ``errors`` middleware (``gateway/dynamic.yml``) fetches ``/_problems/<status>`` from here
for a 400 or 413 of its own (the request-buffering limit), and the client gets problem+json
with the original status instead of Traefik's plain text.

``STORYCORE_GATEWAY_SERVICES`` is JSON, generated from ``gateway/routes.toml`` (by the dev stack,
and checked against ``docker-compose.yml`` by a test)::

    {"projects": {"rules": ["PathPrefix(`/api/projects`)"],
                  "health": ["http://127.0.0.1:8101/readyz"]}}
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from storycore_shared import outbound
from storycore_shared.errors import PROBLEM_JSON

SERVICES_ENV = "STORYCORE_GATEWAY_SERVICES"
HEALTH_PATH = "/api/health"
PROBE_TIMEOUT_SECONDS = 2.0
RETRY_AFTER_SECONDS = "5"

# (code, status, title) of the gateway's own routing answers.
ROUTE_NOT_FOUND = ("route_not_found", 404, "Route not found")
SERVICE_UNAVAILABLE = ("service_unavailable", 503, "Service unavailable")

# The statuses the gateway answers itself, and how they read.
GATEWAY_PROBLEMS = {
    400: ("bad_request", "Bad request", "The gateway could not read the request."),
    413: (
        "payload_too_large",
        "Payload too large",
        "The request body is larger than the gateway accepts (STORYCORE_MAX_BODY_BYTES).",
    ),
    503: ("service_unavailable", "Service unavailable", "No service is available; try again."),
}

# Per-process health paths under a service's prefix: never public, never read as an id.
_SERVICE_HEALTH = re.compile(r"^/api/[^/]+/(healthz|readyz)/?$")
_MATCHER = re.compile(r"(PathPrefix|PathRegexp|Path)\(`([^`]*)`\)")


def _matcher(kind: str, value: str) -> Callable[[str], bool]:
    if kind == "PathPrefix":
        return lambda path: path.startswith(value)
    if kind == "Path":
        return lambda path: path == value
    pattern = re.compile(value)
    return lambda path: pattern.search(path) is not None


def rule_matcher(rule: str) -> Callable[[str], bool]:
    """A predicate for a Traefik rule made of ``Path``, ``PathPrefix`` and ``PathRegexp``
    matchers joined by ``&&`` (the forms the route table uses)."""
    checks = [_matcher(kind, value) for kind, value in _MATCHER.findall(rule)]
    return lambda path: bool(checks) and all(check(path) for check in checks)


@dataclass(frozen=True)
class GatewayService:
    name: str
    matchers: tuple[Callable[[str], bool], ...]
    health: tuple[str, ...]

    def claims(self, path: str) -> bool:
        return any(match(path) for match in self.matchers)


def load_services(raw: str | None) -> list[GatewayService]:
    table = json.loads(raw) if raw else {}
    return [
        GatewayService(
            name,
            tuple(rule_matcher(rule) for rule in entry.get("rules", [])),
            tuple(entry.get("health", [])),
        )
        for name, entry in sorted(table.items())
    ]


def _problem(
    request: Request, status: int, code: str, title: str, detail: str, **headers: str
) -> JSONResponse:
    request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
    body = {
        "type": f"https://storycore.dev/problems/{code.replace('_', '-')}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "request_id": request_id,
    }
    return JSONResponse(
        body,
        status_code=status,
        media_type=PROBLEM_JSON,
        headers={**headers, "X-Request-ID": request_id},
    )


def _route_not_found(request: Request, detail: str) -> JSONResponse:
    code, status, title = ROUTE_NOT_FOUND
    return _problem(request, status, code, title, detail)


def _services(request: Request) -> list[GatewayService]:
    services: list[GatewayService] = request.app.state.gateway_services
    return services


async def _unrouted(request: Request) -> JSONResponse:
    path = request.url.path
    if _SERVICE_HEALTH.match(path):
        return _route_not_found(
            request, f"No route {path}; the suite's health is at {HEALTH_PATH}."
        )
    owner = next((s for s in _services(request) if s.claims(path)), None)
    if owner is None:
        return _route_not_found(request, f"No service answers {path}.")
    code, status, title = SERVICE_UNAVAILABLE
    return _problem(
        request,
        status,
        code,
        title,
        f"The {owner.name} service has no healthy replica; try again shortly.",
        **{"Retry-After": RETRY_AFTER_SECONDS},
    )


async def _ready(client: httpx.AsyncClient, url: str) -> bool:
    try:
        answer = await client.get(url)
    except httpx.HTTPError:
        return False
    return answer.status_code == 200


async def _health(request: Request) -> JSONResponse:
    """Every service's readiness: ready when at least one of its replicas is."""
    services = _services(request)
    async with outbound.client(timeout=PROBE_TIMEOUT_SECONDS) as client:
        probes = [
            asyncio.gather(*(_ready(client, url) for url in service.health)) for service in services
        ]
        results = await asyncio.gather(*probes)
    report = {}
    for service, ready in zip(services, results, strict=True):
        report[service.name] = {
            "status": "ready" if any(ready) else "unavailable",
            "replicas": len(ready),
            "ready_replicas": sum(ready),
        }
    all_ready = bool(report) and all(s["status"] == "ready" for s in report.values())
    headers = {} if all_ready else {"Retry-After": RETRY_AFTER_SECONDS}
    return JSONResponse(
        {"status": "ready" if all_ready else "unavailable", "services": report},
        status_code=200 if all_ready else 503,
        headers={**headers, "Cache-Control": "no-store"},
    )


async def _gateway_problem(request: Request) -> JSONResponse:
    """What Traefik's ``errors`` middleware shows for a status it answered itself."""
    raw = request.path_params["status"]
    if not (len(raw) == 3 and raw.isascii() and raw.isdigit() and raw[0] in "45"):
        return _problem(request, 404, "not_found", "Not found", "No such problem.")
    status = int(raw)
    code, title, detail = GATEWAY_PROBLEMS.get(
        status, ("http_error", "HTTP error", "The gateway refused the request.")
    )
    return _problem(request, status, code, title, detail)


async def _healthz(_: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


# -- the suite's API documentation: /api/openapi.json and /api/docs, served without any CDN -----
# The merged spec is openapi/storycore.json (`python3 storycore.py openapi`); Swagger UI's files
# come from the npm package swagger-ui-dist pinned in openapi/package.json (the test command
# installs it). STORYCORE_API_DOCS_DIR points elsewhere when the repository is not beside us.
DOCS_DIR_ENV = "STORYCORE_API_DOCS_DIR"
SWAGGER_ASSETS_PATH = "/api/docs/assets"
SWAGGER_ASSETS = {
    "swagger-ui.css": "text/css",
    "swagger-ui-bundle.js": "text/javascript",
    "favicon-32x32.png": "image/png",
}
_DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>StoryCore API</title>
<link rel="stylesheet" href="/api/docs/assets/swagger-ui.css">
<link rel="icon" type="image/png" href="/api/docs/assets/favicon-32x32.png"></head>
<body><div id="swagger-ui"></div>
<script src="/api/docs/assets/swagger-ui-bundle.js"></script>
<script src="/api/docs/init.js"></script></body></html>
"""
_DOCS_INIT = """window.ui = SwaggerUIBundle({
  url: "/api/openapi.json", dom_id: "#swagger-ui", deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis], layout: "BaseLayout",
  displayOperationId: true, persistAuthorization: true
});
"""


def _docs_dir() -> Path:
    configured = os.environ.get(DOCS_DIR_ENV)
    return Path(configured) if configured else Path(__file__).resolve().parents[3] / "openapi"


def _docs_missing(request: Request, what: str) -> JSONResponse:
    return _problem(request, 404, "not_found", "Not found", f"{what} is not installed here.")


async def _openapi(request: Request) -> Response:
    spec = _docs_dir() / "storycore.json"
    if not spec.is_file():
        return _docs_missing(request, "The merged OpenAPI document")
    return FileResponse(spec, media_type="application/json")


async def _docs(_: Request) -> Response:
    return HTMLResponse(_DOCS_PAGE)


async def _docs_init(_: Request) -> Response:
    return Response(_DOCS_INIT, media_type="text/javascript")


async def _docs_asset(request: Request) -> Response:
    name = request.path_params["name"]
    path = _docs_dir() / "node_modules" / "swagger-ui-dist" / name
    if name not in SWAGGER_ASSETS or not path.is_file():
        return _docs_missing(request, f"Swagger UI's {name}")
    return FileResponse(
        path, media_type=SWAGGER_ASSETS[name], headers={"Cache-Control": "max-age=3600"}
    )


def create_app(services: list[GatewayService] | None = None) -> Starlette:
    methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    app = Starlette(
        routes=[
            Route("/healthz", _healthz),
            Route(HEALTH_PATH, _health, methods=["GET", "HEAD"]),
            Route("/_problems/{status}", _gateway_problem, methods=methods),
            Route("/api/openapi.json", _openapi),
            Route("/api/docs", _docs),
            Route("/api/docs/init.js", _docs_init),
            Route(SWAGGER_ASSETS_PATH + "/{name}", _docs_asset),
            Route("/{path:path}", _unrouted, methods=methods),
        ]
    )
    app.state.gateway_services = (
        services if services is not None else load_services(os.environ.get(SERVICES_ENV))
    )
    return app
