"""The API side of jobs: ownership, status, cancel, stream tickets and the SSE frames.

A service builds one :class:`Jobs` and mounts :func:`storycore_shared.jobs.routes.job_router`;
its own use cases create jobs with :meth:`Jobs.create` (the row, its first event and the command
event, in the caller's transaction)::

    jobs = Jobs(job_tables, event_tables, settings, service="sequences",
                progress_subject=progress_subject, cancelled_event=on_cancel)
    job = await jobs.create(session, principal=principal, project_id=..., request=Requested,
                            values={...})
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import secrets
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storycore_shared.auth import Principal
from storycore_shared.db import transaction, utcnow
from storycore_shared.errors import ServiceUnavailable
from storycore_shared.events.broker import Broker
from storycore_shared.events.contracts import EventData
from storycore_shared.events.outbox import add_event
from storycore_shared.events.tables import EventTables
from storycore_shared.jobs import repository
from storycore_shared.jobs.errors import InvalidTicket, JobNotCancellable, JobNotFound
from storycore_shared.jobs.repository import Job
from storycore_shared.jobs.schemas import JobPublic, JobSummary
from storycore_shared.jobs.settings import JobSettings
from storycore_shared.jobs.tables import ACTIVE, CANCELLED, PROCESSING, TERMINAL, JobTables

Frame = dict[str, str]


def ticket_hash(ticket: str) -> str:
    return hashlib.sha256(ticket.encode()).hexdigest()


class StreamSlots:
    """A cap on concurrent streams per API process."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0

    def take(self) -> None:
        if self.active >= self.limit:
            raise ServiceUnavailable(
                "Too many open streams on this replica; retry shortly.",
                headers={"Retry-After": "5"},
            )
        self.active += 1

    def give_back(self) -> None:
        self.active -= 1


class Jobs:
    def __init__(
        self,
        tables: JobTables,
        event_tables: EventTables,
        settings: JobSettings,
        *,
        service: str,
        progress_subject: Callable[[uuid.UUID], str] | None,
        cancelled_event: Callable[[Job], EventData | None] = lambda _job: None,
        present_result: Callable[[dict[str, Any], uuid.UUID], dict[str, Any]] | None = None,
        worker_heartbeats: bool = True,
    ) -> None:
        self.tables = tables
        self.event_tables = event_tables
        self.settings = settings
        self.service = service
        # None: nobody publishes wakes for these jobs; streams read the database each second.
        self.progress_subject = progress_subject
        # False for jobs no worker runs (a saga waiting for other services' answers): they are
        # never shown as "waiting for a worker".
        self.worker_heartbeats = worker_heartbeats
        self.cancelled_event = cancelled_event
        # How a result reads for one user (e.g. its media URLs signed for them).
        self.present_result = present_result
        self.slots = StreamSlots(settings.MAX_STREAMS)
        self.stale_after = settings.JOB_HEARTBEAT_STALE_SECONDS

    # -- use cases -------------------------------------------------------------------------

    async def create(
        self,
        session: AsyncSession,
        *,
        principal: Principal,
        project_id: uuid.UUID,
        request: Callable[..., EventData],
        kind: str = "",
        job_id: uuid.UUID | None = None,
        **values: Any,
    ) -> Job:
        """Record a pending job and its command event (``request(id=, project_id=, owner_id=)``).

        ``job_id`` is the id the caller chose (e.g. a saga's deterministic one, or the id of the
        record the job renders); a new one without it."""
        job = await repository.create(
            session,
            self.tables,
            job_id=job_id,
            project_id=project_id,
            owner_id=principal.user_id,
            kind=kind,
            **values,
        )
        await add_event(
            session,
            self.event_tables,
            request(id=job["id"], project_id=project_id, owner_id=principal.user_id),
            source=self.service,
            actor=principal.user_id,
        )
        return job

    async def owned(self, session: AsyncSession, principal: Principal, job_id: uuid.UUID) -> Job:
        job = await repository.get(session, self.tables, job_id)
        if job is None or job["owner_id"] != principal.user_id:
            raise JobNotFound(f"No job {job_id}.")
        return job

    async def cancel(
        self, session: AsyncSession, *, principal: Principal, job_id: uuid.UUID
    ) -> Job:
        await self.owned(session, principal, job_id)
        job = await repository.advance(
            session,
            self.tables,
            job_id,
            from_statuses=ACTIVE,
            status=CANCELLED,
            current_step="cancelled",
            completed_at=utcnow(),
        )
        if job is None:  # completed, failed or cancelled first: that outcome stands
            raise JobNotCancellable("The job already finished; it can no longer be cancelled.")
        if (event := self.cancelled_event(job)) is not None:
            await add_event(
                session, self.event_tables, event, source=self.service, actor=principal.user_id
            )
        return job

    async def issue_ticket(
        self, session: AsyncSession, *, principal: Principal, job_id: uuid.UUID
    ) -> str:
        await self.owned(session, principal, job_id)
        ticket = secrets.token_urlsafe(32)
        await repository.add_ticket(
            session,
            self.tables,
            ticket_hash=ticket_hash(ticket),
            job_id=job_id,
            user_id=principal.user_id,
            expires_at=utcnow() + timedelta(seconds=self.settings.TICKET_TTL_SECONDS),
        )
        return ticket

    async def spend_ticket(
        self, session: AsyncSession, job_id: uuid.UUID, ticket: str
    ) -> Principal:
        """The ticket's user, while the ticket lives: reusable for this one job's stream (a
        native EventSource reconnects with the same URL and ``Last-Event-ID``), never for
        another job, never after it expires."""
        user_id = await repository.use_ticket(
            session, self.tables, ticket_hash(ticket), job_id, utcnow()
        )
        if user_id is None:
            raise InvalidTicket("The ticket is unknown, expired or for another stream.")
        return Principal(user_id=user_id)

    # -- answers ---------------------------------------------------------------------------

    def result_for(self, result: Any, viewer: uuid.UUID | None) -> Any:
        """``result`` as ``viewer`` reads it (``present_result``); unchanged without one."""
        if result is None or viewer is None or self.present_result is None:
            return result
        return self.present_result(result, viewer)

    def public(self, job: Job, *, viewer: uuid.UUID | None = None) -> JobPublic:
        remaining = None
        waiting = False
        now = datetime.now(UTC)
        current_step = job["current_step"]
        if job["status"] == PROCESSING:
            heartbeat = job["heartbeat_at"]
            waiting = self.worker_heartbeats and (
                heartbeat is None or (now - heartbeat).total_seconds() > self.stale_after
            )
            if waiting:
                current_step = f"waiting for a worker (was: {current_step})"
            elif job["started_at"] and 0 < job["progress"] < 100:
                elapsed = (now - job["started_at"]).total_seconds()
                remaining = round(elapsed * (100 - job["progress"]) / job["progress"], 1)
        return JobPublic(
            job_id=job["id"],
            project_id=job["project_id"],
            status=job["status"],
            progress=job["progress"],
            current_step=current_step,
            estimated_time_remaining=remaining,
            waiting_for_worker=waiting,
            result=self.result_for(job["result"], viewer),
            error=job["error"],
            created_at=job["created_at"],
            started_at=job["started_at"],
            completed_at=job["completed_at"],
        )

    @staticmethod
    def summary(job: Job) -> JobSummary:
        return JobSummary(
            job_id=job["id"],
            project_id=job["project_id"],
            status=job["status"],
            progress=job["progress"],
            created_at=job["created_at"],
        )

    # -- the stream ------------------------------------------------------------------------

    async def frames(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        broker: Broker,
        job_id: uuid.UUID,
        last: int,
        viewer: uuid.UUID | None = None,
    ) -> AsyncIterator[Frame]:
        """Replay the job's events after ``last`` from the database, then follow them live.

        Core NATS wakes (``progress_subject``) only say "look again"; the database is the
        record, so a lost wake-up costs at most the one-second fallback poll, and any replica
        serves any job. Every frame has an ``id:`` for ``Last-Event-ID``.
        """
        wake = asyncio.Event()
        subscription = None
        try:
            if broker.is_connected and self.progress_subject is not None:
                nc = await broker.connected()

                async def on_progress(_: Any) -> None:
                    wake.set()

                subscription = await nc.subscribe(self.progress_subject(job_id), cb=on_progress)
            while True:
                wake.clear()
                # Under READ COMMITTED each statement has its own snapshot. The job first: one
                # read as finished guarantees its final event (same commit) is read next; if it
                # finished between the two reads, read it again for its final result.
                async with transaction(sessionmaker) as session:
                    job = await repository.get(session, self.tables, job_id)
                    events = await repository.events_after(session, self.tables, job_id, last)
                    finished = any(event["status"] in TERMINAL for event in events)
                    if finished and job is not None and job["status"] not in TERMINAL:
                        job = await repository.get(session, self.tables, job_id)
                if job is None:
                    yield {
                        "event": "error",
                        "data": json.dumps({"error": "the job no longer exists"}),
                    }
                    return
                for event in events:
                    last = event["seq"]
                    if event["status"] in TERMINAL:
                        yield {
                            "event": "complete",
                            "id": str(event["seq"]),
                            "data": json.dumps(
                                {
                                    "status": job["status"],
                                    "progress": job["progress"],
                                    "result": self.result_for(job["result"], viewer),
                                    "error": job["error"],
                                }
                            ),
                        }
                        return
                    yield {
                        "event": "progress",
                        "id": str(event["seq"]),
                        "data": json.dumps(
                            {
                                "status": event["status"],
                                "progress": event["progress"],
                                "current_step": event["current_step"],
                            }
                        ),
                    }
                if job["status"] in TERMINAL:  # the client has seen the end already
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), timeout=1.0)
        finally:
            self.slots.give_back()
            if subscription is not None:
                with contextlib.suppress(Exception):
                    await subscription.unsubscribe()
