from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request, Response, status
from nats.js.object_store import ObjectStore
from sse_starlette.sse import EventSourceResponse

from sequences import repository
from sequences.errors import InvalidTicket, KeyframeNotFound
from sequences.keyframes import bucket, keyframe_key, read
from sequences.models import TERMINAL
from sequences.schemas import (
    GenerateRequest,
    JobPublic,
    JobsPublic,
    JobStatus,
    JobSummary,
    StreamTicketPublic,
)
from sequences.service import Sequences, public, ticket_hash
from storycore_shared.app import Runtime
from storycore_shared.auth import Principal, PrincipalDep, TokenVerifier
from storycore_shared.db import SessionDep, transaction, utcnow
from storycore_shared.errors import ServiceUnavailable, Unauthorized
from storycore_shared.events.contracts.sequences import progress_subject
from storycore_shared.http import Page, PageSize, RawAuthorization
from storycore_shared.ratelimit import RateLimiter

router = APIRouter(prefix="/api/sequences", tags=["sequences"])


def get_sequences(request: Request) -> Sequences:
    sequences: Sequences = request.app.state.sequences
    return sequences


SequencesDep = Annotated[Sequences, Depends(get_sequences)]


async def rate_limited(request: Request, principal: PrincipalDep) -> Principal:
    limiter: RateLimiter = request.app.state.limiter
    await limiter.hit(request.app.state.sessionmaker, f"sequences.generate:{principal.user_id}")
    return principal


@router.post("/generate", status_code=status.HTTP_202_ACCEPTED)
async def generate_sequence(
    data: GenerateRequest,
    session: SessionDep,
    sequences: SequencesDep,
    principal: Annotated[Principal, Depends(rate_limited)],
    authorization: RawAuthorization,
    response: Response,
) -> JobPublic:
    """Queue a storyboard generation job for one of the caller's projects."""
    job = await sequences.generate(
        session, principal=principal, data=data, authorization=authorization
    )
    response.headers["Location"] = f"/api/sequences/{job.id}/status"
    return public(job)


@router.get("")
async def list_jobs(
    session: SessionDep,
    principal: PrincipalDep,
    project_id: uuid.UUID | None = None,
    status: JobStatus | None = None,
    page: Page = 1,
    page_size: PageSize = 20,
) -> JobsPublic:
    """The caller's jobs, newest first."""
    items, total = await repository.list_owned(
        session,
        principal.user_id,
        project_id=project_id,
        status=status,
        offset=(page - 1) * page_size,
        limit=page_size,
    )
    return JobsPublic(
        jobs=[
            JobSummary(
                job_id=j.id,
                project_id=j.project_id,
                status=j.status,
                progress=j.progress,
                created_at=j.created_at,
            )
            for j in items
        ],
        total=total,
        page=page,
        page_size=page_size,
    )


@router.get("/{job_id}/status")
async def get_job_status(
    job_id: uuid.UUID, session: SessionDep, principal: PrincipalDep, sequences: SequencesDep
) -> JobPublic:
    """One job's state."""
    return public(await sequences.owned(session, principal, job_id))


@router.post("/{job_id}/cancel")
async def cancel_job(
    job_id: uuid.UUID, session: SessionDep, principal: PrincipalDep, sequences: SequencesDep
) -> JobPublic:
    """Cancel a pending or processing job; 409 once it has finished."""
    return public(await sequences.cancel(session, principal=principal, job_id=job_id))


@router.get("/{job_id}/result")
async def get_job_result(
    job_id: uuid.UUID, session: SessionDep, principal: PrincipalDep, sequences: SequencesDep
) -> dict[str, Any]:
    """The generated storyboard; 409 until the job has completed."""
    return await sequences.result(session, principal=principal, job_id=job_id)


@router.get(
    "/{job_id}/keyframes/{index}",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}},
)
async def get_keyframe(
    job_id: uuid.UUID,
    index: int,
    request: Request,
    session: SessionDep,
    principal: PrincipalDep,
    sequences: SequencesDep,
) -> Response:
    """One keyframe, as PNG."""
    job = await sequences.owned(session, principal, job_id)
    if not 0 <= index < job.shot_count:
        raise KeyframeNotFound(f"Job {job_id} has no keyframe {index}.")
    store = await _keyframe_store(request)
    data = await read(store, keyframe_key(job_id, index))
    if data is None:
        raise KeyframeNotFound(f"Keyframe {index} of job {job_id} is not rendered (yet).")
    return Response(
        data, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"}
    )


async def _keyframe_store(request: Request) -> ObjectStore:
    """The bucket handle, looked up once per process rather than once per request."""
    store: ObjectStore | None = getattr(request.app.state, "keyframe_store", None)
    if store is None:
        runtime: Runtime = request.app.state.runtime
        store = await bucket(
            await runtime.broker.jetstream(), request.app.state.settings.KEYFRAME_BUCKET
        )
        request.app.state.keyframe_store = store
    return store


@router.post("/{job_id}/stream-ticket")
async def create_stream_ticket(
    job_id: uuid.UUID, session: SessionDep, principal: PrincipalDep, sequences: SequencesDep
) -> StreamTicketPublic:
    """A single-use ticket for this job's stream, for EventSource (which cannot send headers)."""
    ticket = await sequences.issue_ticket(session, principal=principal, job_id=job_id)
    return StreamTicketPublic(ticket=ticket, expires_in=sequences.settings.TICKET_TTL_SECONDS)


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


async def _stream_principal(
    request: Request, job_id: uuid.UUID, ticket: str | None, authorization: str | None
) -> uuid.UUID:
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer":
            raise Unauthorized("Send a bearer token or a stream ticket.")
        verifier: TokenVerifier = request.app.state.verifier
        return (await verifier.verify(token)).user_id
    if ticket:
        async with transaction(request.app.state.sessionmaker) as session:
            spent = await repository.use_ticket(session, ticket_hash(ticket), utcnow())
        if spent is None or spent.job_id != job_id:
            raise InvalidTicket("The ticket is unknown, used, expired or for another stream.")
        return spent.user_id
    raise Unauthorized("Send `Authorization: Bearer <token>` or `?ticket=`.")


@router.get("/{job_id}/stream", response_model=None)
async def stream_job(
    job_id: uuid.UUID,
    request: Request,
    sequences: SequencesDep,
    ticket: str | None = None,
    authorization: Annotated[str | None, Header()] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> EventSourceResponse:
    """Progress as server-sent events; every frame has an id, so a reconnect resumes."""
    user_id = await _stream_principal(request, job_id, ticket, authorization)
    async with transaction(request.app.state.sessionmaker) as session:
        await sequences.owned(session, Principal(user_id=user_id), job_id)
    slots: StreamSlots = request.app.state.stream_slots
    slots.take()
    last = int(last_event_id) if last_event_id and last_event_id.isdigit() else 0
    return EventSourceResponse(
        _frames(request, job_id, last, slots),
        ping=sequences.settings.STREAM_HEARTBEAT_SECONDS,
        headers={"X-Accel-Buffering": "no", "Cache-Control": "no-cache"},
    )


async def _frames(
    request: Request, job_id: uuid.UUID, last: int, slots: StreamSlots
) -> AsyncIterator[dict[str, str]]:
    """Replay the job's events after ``last`` from the database, then follow them live.

    Core NATS ``sequence.progress.<id>`` only wakes us up; the database is the record, so a
    lost wake-up costs at most the one-second fallback poll, and any replica can serve any job.
    """
    runtime: Runtime = request.app.state.runtime
    wake = asyncio.Event()
    subscription = None
    try:
        if runtime.broker.is_connected:
            nc = await runtime.broker.connected()

            async def on_progress(_: Any) -> None:
                wake.set()

            subscription = await nc.subscribe(progress_subject(job_id), cb=on_progress)
        while True:
            wake.clear()
            async with transaction(runtime.sessionmaker) as session:
                events = await repository.events_after(session, job_id, last)
                job = await repository.get(session, job_id)
            if job is None:
                yield {"event": "error", "data": json.dumps({"error": "the job no longer exists"})}
                return
            for event in events:
                last = event.seq
                if event.status in TERMINAL:
                    yield {
                        "event": "complete",
                        "id": str(event.seq),
                        "data": json.dumps(
                            {
                                "status": job.status,
                                "progress": job.progress,
                                "result": job.result,
                                "error": job.error,
                            }
                        ),
                    }
                    return
                yield {
                    "event": "progress",
                    "id": str(event.seq),
                    "data": json.dumps(
                        {
                            "status": event.status,
                            "progress": event.progress,
                            "current_step": event.current_step,
                        }
                    ),
                }
            if job.status in TERMINAL:  # the client has seen the end already
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=1.0)
    finally:
        slots.give_back()
        if subscription is not None:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()
