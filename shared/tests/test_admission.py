"""Admission in arrival order (``AdmissionMiddleware``), driven as a pure ASGI app: at most
``limit`` requests inside, the rest admitted first come first served; health, readiness and
metrics never wait; a place is given back when the answer starts, when the request fails, or when
the lease runs out, and never twice."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from prometheus_client import REGISTRY
from starlette.types import Message, Receive, Scope, Send

from storycore_shared.config import ServiceSettings
from storycore_shared.middleware import AdmissionMiddleware

SERVICE = "admission-test"


class Inner:
    """The app behind the middleware: records who entered, then does what the path says."""

    def __init__(self) -> None:
        self.entered: list[str] = []
        self.gate = asyncio.Event()

    async def __call__(self, scope: Scope, _receive: Receive, send: Send) -> None:
        path = scope["path"]
        self.entered.append(path)
        if path.startswith("/fail"):
            raise RuntimeError("the handler failed")
        if path.startswith("/stream"):
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await self.gate.wait()  # an event stream that stays open
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return
        if path.startswith("/hold"):
            await self.gate.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok", "more_body": False})


def admission(inner: Inner, *, limit: int, lease: float = 30.0) -> AdmissionMiddleware:
    return AdmissionMiddleware(inner, service=SERVICE, limit=limit, lease=lease)


def request(app: Callable[[Scope, Receive, Send], Awaitable[None]], path: str) -> asyncio.Task[int]:
    """The request as a task; its result is the status it was answered."""

    async def run() -> int:
        messages: list[Message] = []

        async def receive() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Message) -> None:
            messages.append(message)

        scope: Scope = {"type": "http", "method": "GET", "path": path, "headers": []}
        await app(scope, receive, send)
        return int(messages[0]["status"])

    return asyncio.create_task(run())


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def waiting() -> float | None:
    """The waiting gauge, as ``/metrics`` exposes it."""
    return REGISTRY.get_sample_value("storycore_http_requests_waiting", {"service": SERVICE})


async def test_requests_beyond_the_limit_wait_and_enter_in_arrival_order() -> None:
    inner = Inner()
    app = admission(inner, limit=2)
    tasks = []
    for number in range(6):
        tasks.append(request(app, f"/hold/{number}"))
        await settle()
    assert inner.entered == ["/hold/0", "/hold/1"]
    assert waiting() == 4
    inner.gate.set()
    assert await asyncio.gather(*tasks) == [200] * 6
    assert inner.entered == [f"/hold/{number}" for number in range(6)]
    assert waiting() == 0


async def test_health_readiness_and_metrics_never_wait() -> None:
    inner = Inner()
    app = admission(inner, limit=1)
    held = request(app, "/hold/0")
    queued = request(app, "/x")
    await settle()
    for path in ("/healthz", "/readyz", "/metrics"):
        assert await asyncio.wait_for(request(app, path), 1) == 200
    assert inner.entered == ["/hold/0", "/healthz", "/readyz", "/metrics"]
    inner.gate.set()
    assert await asyncio.gather(held, queued) == [200, 200]


async def test_a_streaming_answer_gives_its_place_back_when_it_starts() -> None:
    inner = Inner()
    app = admission(inner, limit=1)
    stream = request(app, "/stream")
    await settle()
    assert await asyncio.wait_for(request(app, "/x"), 1) == 200
    assert not stream.done()
    inner.gate.set()
    assert await stream == 200


async def test_a_failing_request_gives_its_place_back() -> None:
    inner = Inner()
    app = admission(inner, limit=1)
    with pytest.raises(RuntimeError, match="failed"):
        await request(app, "/fail")
    assert await asyncio.wait_for(request(app, "/x"), 1) == 200


async def test_a_request_keeps_its_place_no_longer_than_its_lease_and_gives_it_back_once() -> None:
    inner = Inner()
    app = admission(inner, limit=1, lease=0.2)
    slow = request(app, "/hold/slow")
    await settle()
    loop = asyncio.get_running_loop()
    began = loop.time()
    assert await asyncio.wait_for(request(app, "/x"), 5) == 200
    assert 0.15 <= loop.time() - began < 2
    inner.gate.set()
    assert await slow == 200
    # The slow request ended after its lease had given the place back: it must not give it back
    # a second time, which would let two requests in under a limit of one.
    inner.gate.clear()
    first, second = request(app, "/hold/a"), request(app, "/hold/b")
    await settle()
    assert inner.entered[-2:] == ["/x", "/hold/a"]
    inner.gate.set()
    assert await asyncio.gather(first, second) == [200, 200]


def test_the_limit_defaults_to_the_pool_plus_four_and_can_be_set() -> None:
    def settings(**extra: object) -> ServiceSettings:
        return ServiceSettings(
            DATABASE_URL="postgresql://u:p@127.0.0.1:1/db",
            NATS_URL="nats://127.0.0.1:4222",
            JWKS_URL="http://127.0.0.1/jwks",
            **extra,  # type: ignore[arg-type]
        )

    assert settings().admission_limit == 24
    assert settings(DATABASE_POOL_SIZE=8, DATABASE_MAX_OVERFLOW=2).admission_limit == 14
    assert settings(ADMISSION_LIMIT=100).admission_limit == 100
