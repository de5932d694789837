"""Every SQL statement of the sequences service, including the job state machine."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from sequences.models import Job, JobEvent, StreamTicket
from storycore_shared.db import utcnow


async def get(session: AsyncSession, job_id: uuid.UUID) -> Job | None:
    return await session.get(Job, job_id, populate_existing=True)


async def list_owned(
    session: AsyncSession,
    owner_id: uuid.UUID,
    *,
    project_id: uuid.UUID | None,
    status: str | None,
    offset: int,
    limit: int,
) -> tuple[list[Job], int]:
    where = [col(Job.owner_id) == owner_id]
    if project_id is not None:
        where.append(col(Job.project_id) == project_id)
    if status is not None:
        where.append(col(Job.status) == status)
    total = await session.scalar(select(func.count()).select_from(Job).where(*where))
    rows = await session.scalars(
        select(Job).where(*where).order_by(col(Job.created_at).desc()).offset(offset).limit(limit)
    )
    return list(rows.all()), int(total or 0)


async def advance(
    session: AsyncSession,
    job_id: uuid.UUID,
    *,
    from_statuses: set[str],
    expect_attempt: int | None = None,
    **values: Any,
) -> Job | None:
    """Compare-and-set: change the job only if it is in ``from_statuses`` (and, for a worker,
    still on ``expect_attempt``), record the change as the job's next event, and return the job.
    None means someone else moved it first (a cancel, another worker): nothing was written."""
    conditions = [col(Job.id) == job_id, col(Job.status).in_(from_statuses)]
    if expect_attempt is not None:
        conditions.append(col(Job.attempt) == expect_attempt)
    result = await session.execute(
        update(Job)
        .where(*conditions)
        .values(**values, event_seq=Job.event_seq + 1, updated_at=utcnow())
        .returning(col(Job.id))
    )
    if result.first() is None:
        return None
    job = await get(session, job_id)
    assert job is not None
    await session.execute(
        insert(JobEvent).values(
            job_id=job.id,
            seq=job.event_seq,
            status=job.status,
            progress=job.progress,
            current_step=job.current_step,
        )
    )
    return job


async def events_after(session: AsyncSession, job_id: uuid.UUID, seq: int) -> list[JobEvent]:
    rows = await session.scalars(
        select(JobEvent)
        .where(col(JobEvent.job_id) == job_id, col(JobEvent.seq) > seq)
        .order_by(col(JobEvent.seq))
    )
    return list(rows.all())


async def use_ticket(session: AsyncSession, ticket_hash: str, now: datetime) -> StreamTicket | None:
    """Spend a ticket: it works once, and only before it expires."""
    result = await session.execute(
        update(StreamTicket)
        .where(
            col(StreamTicket.ticket_hash) == ticket_hash,
            col(StreamTicket.used_at).is_(None),
            col(StreamTicket.expires_at) > now,
        )
        .values(used_at=now)
        .returning(col(StreamTicket.job_id), col(StreamTicket.user_id))
    )
    row = result.first()
    if row is None:
        return None
    return StreamTicket(ticket_hash=ticket_hash, job_id=row[0], user_id=row[1], expires_at=now)
