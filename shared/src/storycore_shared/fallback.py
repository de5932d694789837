"""The gateway's catch-all backend: every path no live service claims gets a 503 problem.

With the docker provider a dead container's router disappears, so without this the client would
see Traefik's bare 404 and think the resource is gone.
"""

from __future__ import annotations

import uuid

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from storycore_shared.errors import PROBLEM_JSON


async def _unavailable(request: Request) -> JSONResponse:
    request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
    body = {
        "type": "https://storycore.dev/problems/service-unavailable",
        "title": "Service unavailable",
        "status": 503,
        "detail": f"No service is available for {request.url.path}; try again shortly.",
        "code": "service_unavailable",
        "request_id": request_id,
    }
    return JSONResponse(
        body,
        status_code=503,
        media_type=PROBLEM_JSON,
        headers={"Retry-After": "5", "X-Request-ID": request_id},
    )


async def _healthz(_: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


def create_app() -> Starlette:
    methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    return Starlette(
        routes=[
            Route("/healthz", _healthz),
            Route("/{path:path}", _unavailable, methods=methods),
        ]
    )
