"""``/healthz`` (alive), ``/readyz`` (database, NATS, relay, consumers) and ``/metrics``.

``/readyz`` answers 503 only when the database is unreachable: that is the one dependency
without which a replica cannot serve. A NATS outage is reported (``degraded``) but keeps the
replica in rotation, because the outbox absorbs it and writes must keep succeeding.
``/readyz?strict=true`` fails on any check.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import func, select

router = APIRouter(include_in_schema=False)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request, strict: bool = False) -> JSONResponse:
    from storycore_shared.app import runtime_of

    runtime = runtime_of(request)
    checks: dict[str, Any] = {}
    try:
        # One bounded query: it proves the database answers and counts the dead letters.
        dead = await asyncio.wait_for(_dead_letters(runtime), timeout=2)
        checks["database"] = {"ok": True, "dead_letters": dead}
    except Exception as exc:
        checks["database"] = {"ok": False, "error": type(exc).__name__}
    checks["nats"] = {"ok": runtime.broker.is_connected}
    checks["relay"] = {"ok": runtime.relay.role in ("leader", "standby"), **runtime.relay.status()}
    consumers = [c.status() | {"ok": c.healthy} for c in runtime.consumers]
    checks["consumers"] = {"ok": all(c["ok"] for c in consumers), "items": consumers}
    all_ok = all(check["ok"] for check in checks.values())
    serving = checks["database"]["ok"] and (all_ok or not strict)
    status = "ok" if all_ok else ("degraded" if serving else "unavailable")
    return JSONResponse(
        {"status": status, "service": runtime.settings.SERVICE_NAME, "checks": checks},
        status_code=200 if serving else 503,
    )


async def _dead_letters(runtime: Any) -> int:
    async with runtime.engine.connect() as conn:
        count = await conn.scalar(select(func.count()).select_from(runtime.tables.dead_letter))
    return int(count or 0)


@router.get("/metrics")
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
