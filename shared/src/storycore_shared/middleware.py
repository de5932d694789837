"""Pure ASGI middleware every service runs: request id, access log and Prometheus metrics
(:class:`RequestContextMiddleware`), and admission in arrival order (:class:`AdmissionMiddleware`).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid

from prometheus_client import Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from storycore_shared.logs import request_id_var

logger = logging.getLogger("storycore.access")

REQUESTS = Counter(
    "storycore_http_requests_total", "HTTP requests", ["service", "method", "route", "status"]
)
LATENCY = Histogram(
    "storycore_http_request_duration_seconds", "HTTP request latency", ["service", "route"]
)
WAITING = Gauge(
    "storycore_http_requests_waiting",
    "HTTP requests waiting for admission (AdmissionMiddleware)",
    ["service"],
)
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_QUIET = {"/healthz", "/readyz", "/metrics"}


class RequestContextMiddleware:
    """Takes ``X-Request-ID`` from the gateway (or makes one), echoes it, logs and counts."""

    def __init__(self, app: ASGIApp, *, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _SAFE_ID.match(incoming) else uuid.uuid4().hex
        request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            REQUESTS.labels(self.service, scope["method"], template, str(status)).inc()
            LATENCY.labels(self.service, template).observe(elapsed)
            if scope["path"] not in _QUIET:
                logger.info(
                    "http.request",
                    extra={
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 2),
                    },
                )


class AdmissionMiddleware:
    """At most ``limit`` requests inside the service at once; the others wait their turn, in
    the order they arrived, before any work is done for them.

    Without it, at 128 concurrent clients every request went as far as the pool checkout and
    waited there. The pool's queue (an ``asyncio.Queue``) is not fair: a request arriving just
    as a connection comes back takes it ahead of the one woken for it, which then goes to the
    back of the queue. At c = 128 the p99 was 0.57-1.18 s for a p50 of 0.11-0.23 s; admitted in
    order, with a limit a little above the pool, it was 0.16-0.27 s, at the same throughput and
    CPU, and the waiting requests no longer held a whole request's objects each: projects and
    shots ended the load 2-4 MB smaller (docs/benchmarks.md, "Admission in arrival order").
    ``asyncio.Semaphore`` admits in order: a newcomer does not pass a waiter.

    A request keeps its place until its answer starts (a download or an event stream then
    streams without one), or for ``lease`` seconds at most: a slow upload, or requests stuck on
    a database that does not answer, keep the others out no longer than that. Health, readiness
    and metrics never wait.
    """

    def __init__(self, app: ASGIApp, *, service: str, limit: int, lease: float) -> None:
        self.app = app
        self.lease = lease
        self.permits = asyncio.Semaphore(limit)
        self.waiting = WAITING.labels(service)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in _QUIET:
            await self.app(scope, receive, send)
            return
        if self.permits.locked():
            self.waiting.inc()
            try:
                await self.permits.acquire()
            finally:
                self.waiting.dec()
        else:
            await self.permits.acquire()
        held = True

        def release() -> None:
            nonlocal held
            if held:
                held = False
                lease.cancel()
                self.permits.release()

        lease = asyncio.get_running_loop().call_later(self.lease, release)

        async def send_releasing(message: Message) -> None:
            if held and message["type"] == "http.response.start":
                release()
            await send(message)

        try:
            await self.app(scope, receive, send_releasing)
        finally:
            release()
