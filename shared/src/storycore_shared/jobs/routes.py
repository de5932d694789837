"""The job routes every job-producing service exposes, in the same shape.

``job_router`` gives status, cancel, stream ticket and the SSE stream for one service's jobs::

    router.include_router(
        job_router(get_jobs, prefix="/api/audio/jobs", tags=["audio"], status_suffix="")
    )

Sequences keeps its historical paths (``/api/sequences/{id}/status``); newer services use
``/api/<service>/jobs/{id}``.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from storycore_shared.app import runtime_of
from storycore_shared.auth import Principal, PrincipalDep
from storycore_shared.db import SessionDep, transaction
from storycore_shared.errors import Unauthorized
from storycore_shared.http import last_event_id as parse_last_event_id
from storycore_shared.jobs.schemas import JobPublic, StreamTicketPublic
from storycore_shared.jobs.service import Jobs

if TYPE_CHECKING:
    # Imported by the stream route when it first answers: 1.4 MB a process need not hold
    # until a client streams.
    from sse_starlette.sse import EventSourceResponse

_bearer = HTTPBearer(auto_error=False)

STREAM_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {
        "description": "Server-sent events: `progress` frames, then one `complete` (or `error`).",
        "content": {"text/event-stream": {}},
    }
}


def job_router(
    get_jobs: Callable[..., Jobs | Awaitable[Jobs]],
    *,
    prefix: str,
    tags: list[str],
    status_suffix: str = "/status",
    name_prefix: str = "",
) -> APIRouter:
    """Status, cancel, stream-ticket and stream routes under ``{prefix}/{job_id}``;
    ``get_jobs`` is a FastAPI dependency giving the service's :class:`Jobs`. ``name_prefix``
    names the routes (and so their operationIds) apart from another service's job routes."""
    router = APIRouter(prefix=prefix, tags=list(tags))
    # A default, not an Annotated alias: the alias would be local to this function, and
    # annotations are resolved in the module's namespace.
    jobs_dep: Jobs = Depends(get_jobs)

    @router.get("/{job_id}" + status_suffix, name=f"{name_prefix}get_job_status")
    async def get_job_status(
        job_id: uuid.UUID, session: SessionDep, principal: PrincipalDep, jobs: Jobs = jobs_dep
    ) -> JobPublic:
        """One job's state."""
        return jobs.public(await jobs.owned(session, principal, job_id), viewer=principal.user_id)

    @router.post("/{job_id}/cancel", name=f"{name_prefix}cancel_job")
    async def cancel_job(
        job_id: uuid.UUID, session: SessionDep, principal: PrincipalDep, jobs: Jobs = jobs_dep
    ) -> JobPublic:
        """Cancel a pending or processing job; 409 once it has finished."""
        job = await jobs.cancel(session, principal=principal, job_id=job_id)
        return jobs.public(job, viewer=principal.user_id)

    @router.post("/{job_id}/stream-ticket", name=f"{name_prefix}create_stream_ticket")
    async def create_stream_ticket(
        job_id: uuid.UUID, session: SessionDep, principal: PrincipalDep, jobs: Jobs = jobs_dep
    ) -> StreamTicketPublic:
        """A short-lived ticket for this job's stream only (EventSource cannot send headers)."""
        ticket = await jobs.issue_ticket(session, principal=principal, job_id=job_id)
        return StreamTicketPublic(ticket=ticket, expires_in=jobs.settings.TICKET_TTL_SECONDS)

    @router.get(
        "/{job_id}/stream",
        name=f"{name_prefix}stream_job",
        response_model=None,
        responses=STREAM_RESPONSES,
    )
    async def stream_job(
        job_id: uuid.UUID,
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        jobs: Jobs = jobs_dep,
        ticket: str | None = None,
        last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
        last_event_id_query: Annotated[
            str | None, Query(alias="last_event_id", max_length=20)
        ] = None,
    ) -> EventSourceResponse:
        """Progress as server-sent events; every frame has an id, so a reconnect resumes
        (`Last-Event-ID`, or `?last_event_id=` for a new EventSource, which cannot set it)."""
        runtime = runtime_of(request)
        async with transaction(runtime.sessionmaker) as session:
            if credentials is not None:
                if credentials.scheme.lower() != "bearer":
                    raise Unauthorized("Send a bearer token or a stream ticket.")
                principal = await runtime.verifier.verify(credentials.credentials)
            elif ticket:
                principal = await jobs.spend_ticket(session, job_id, ticket)
            else:
                raise Unauthorized("Send `Authorization: Bearer <token>` or `?ticket=`.")
            await jobs.owned(session, Principal(user_id=principal.user_id), job_id)
        from sse_starlette.sse import EventSourceResponse

        jobs.slots.take()
        return EventSourceResponse(
            jobs.frames(
                runtime.sessionmaker,
                runtime.broker,
                job_id,
                parse_last_event_id(last_event_id or last_event_id_query),
                viewer=principal.user_id,
            ),
            ping=jobs.settings.STREAM_HEARTBEAT_SECONDS,
            headers={"X-Accel-Buffering": "no", "Cache-Control": "no-cache"},
        )

    return router
