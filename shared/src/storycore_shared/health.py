"""``/healthz`` (alive), ``/readyz`` (database, NATS, relay, consumers) and ``/metrics``.

Readiness never competes with requests. :class:`DatabaseReadiness` checks the database in the
background, every ``interval`` seconds, on a connection of its own (outside the request pool),
and ``/readyz`` answers from what it last saw, at once: a replica whose pool is busy with slow
requests is busy, not down, and stays in the gateway's rotation. The database counts as
unreachable only after ``failures_allowed`` checks in a row have failed (a refused connection,
a check slower than the timeout), or before the first check has succeeded. NATS, the relay and
the consumers are read from the objects that hold them, with no I/O.

``/readyz`` answers 503 only when the database is unreachable: that is the one dependency
without which a replica cannot serve. A NATS outage is reported (``degraded``) but keeps the
replica in rotation, because the outbox absorbs it and writes must keep succeeding.
``/readyz?strict=true`` fails on any check.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import asyncpg
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from storycore_shared.db import asyncpg_dsn, check_identifier

logger = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)


class DatabaseReadiness:
    """Whether the database answers, checked in the background on a dedicated connection.

    ::

        readiness = DatabaseReadiness(database_url=..., schema="projects", name="projects")
        await readiness.start()      # the first check, then one every ``interval`` seconds
        readiness.ok                 # False only after ``failures_allowed`` failures in a row
        await readiness.stop()

    Each check is ``select 1`` bounded by ``timeout``; a failed check drops the connection and
    the next one reconnects. The dead-letter count rides along (best effort, under a short
    ``lock_timeout``, so a lock on that table is never mistaken for an outage).
    """

    def __init__(
        self,
        *,
        database_url: str,
        schema: str,
        name: str,
        interval: float = 1.0,
        timeout: float = 2.0,
        failures_allowed: int = 3,
    ) -> None:
        self.dsn = asyncpg_dsn(database_url)
        self.schema = check_identifier(schema)
        self.name = name
        self.interval = interval
        self.timeout = timeout
        self.failures_allowed = failures_allowed
        self.consecutive_failures = 0
        self.dead_letters: int | None = None
        self.last_error: str | None = None
        self._last_success: float | None = None
        self._last_check: float | None = None
        self._conn: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def ok(self) -> bool:
        return self._last_success is not None and self.consecutive_failures < self.failures_allowed

    async def start(self) -> None:
        await self.check()  # /readyz is right from the first request
        self._task = asyncio.create_task(self._run(), name=f"{self.name}-readiness")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._drop()

    def status(self) -> dict[str, Any]:
        now = time.monotonic()
        return {
            "ok": self.ok,
            "dead_letters": self.dead_letters,
            "consecutive_failures": self.consecutive_failures,
            "checked_seconds_ago": None
            if self._last_check is None
            else round(now - self._last_check, 1),
            "error": self.last_error,
        }

    async def check(self) -> None:
        """One check; never raises (but lets cancellation through)."""
        try:
            await asyncio.wait_for(self._probe(), timeout=self.timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.consecutive_failures += 1
            self.last_error = type(exc).__name__
            if self.consecutive_failures == self.failures_allowed:
                logger.warning(
                    "readiness.database_unreachable",
                    extra={"error": repr(exc), "failures": self.consecutive_failures},
                )
            await self._drop()
        else:
            if self.consecutive_failures >= self.failures_allowed:
                logger.info("readiness.database_back")
            self.consecutive_failures = 0
            self.last_error = None
            self._last_success = time.monotonic()
        finally:
            self._last_check = time.monotonic()

    async def _probe(self) -> None:
        if self._conn is None or self._conn.is_closed():
            self._conn = await asyncpg.connect(
                self.dsn,
                timeout=self.timeout,
                server_settings={
                    "application_name": f"{self.name}-readiness",
                    "lock_timeout": "200",
                    "statement_timeout": str(int(self.timeout * 1000)),
                },
            )
        await self._conn.fetchval("select 1")
        # Best effort: a locked or missing table leaves the last count in place.
        with contextlib.suppress(asyncpg.PostgresError):
            self.dead_letters = int(
                await self._conn.fetchval(f'select count(*) from "{self.schema}".dead_letter')
            )

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.check()

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), timeout=1)
            if not conn.is_closed():
                conn.terminate()


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request, strict: bool = False) -> JSONResponse:
    from storycore_shared.app import runtime_of

    runtime = runtime_of(request)
    checks: dict[str, Any] = {"database": runtime.readiness.status()}
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


@router.get("/metrics")
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
