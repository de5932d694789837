"""The gateway's catch-all backend: every path no live service claims gets a 503 problem.

With the docker provider a dead container's router disappears, so without this the client would
see Traefik's bare 404 and think the resource is gone.

It also renders the problems the gateway itself answers: Traefik cannot template a body, so
its ``errors`` middleware (``gateway/dynamic.yml``) fetches ``/_problems/<status>`` from here
for a 400 or 413 of its own (the request-buffering limit), and the client gets problem+json
with the original status instead of Traefik's plain text.
"""

from __future__ import annotations

import uuid

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from storycore_shared.errors import PROBLEM_JSON

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


async def _unavailable(request: Request) -> JSONResponse:
    return _problem(
        request,
        503,
        "service_unavailable",
        "Service unavailable",
        f"No service is available for {request.url.path}; try again shortly.",
        **{"Retry-After": "5"},
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


def create_app() -> Starlette:
    methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    return Starlette(
        routes=[
            Route("/healthz", _healthz),
            Route("/_problems/{status}", _gateway_problem, methods=methods),
            Route("/{path:path}", _unavailable, methods=methods),
        ]
    )
