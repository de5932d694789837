"""Every SQL statement of the job kit: the compare-and-set state machine, events and tickets."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import RowMapping, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storycore_shared.db import utcnow
from storycore_shared.jobs.tables import PENDING, JobTables

Job = RowMapping


async def create(
    session: AsyncSession, tables: JobTables, *, job_id: uuid.UUID | None = None, **values: Any
) -> Job:
    """Insert a pending job with its first event (so a stream opened at once shows it)."""
    job_id = job_id or uuid.uuid4()
    now = utcnow()
    await session.execute(
        insert(tables.job).values(
            id=job_id,
            status=PENDING,
            progress=0,
            current_step="queued",
            event_seq=1,
            created_at=now,
            updated_at=now,
            **values,
        )
    )
    await session.execute(
        insert(tables.job_event).values(
            job_id=job_id, seq=1, status=PENDING, progress=0, current_step="queued", created_at=now
        )
    )
    job = await get(session, tables, job_id)
    assert job is not None
    return job


async def get(
    session: AsyncSession, tables: JobTables, job_id: uuid.UUID, *, lock: bool = False
) -> Job | None:
    statement = select(tables.job).where(tables.job.c.id == job_id)
    if lock:
        statement = statement.with_for_update()
    return (await session.execute(statement)).mappings().first()


async def list_owned(
    session: AsyncSession,
    tables: JobTables,
    owner_id: uuid.UUID,
    *,
    project_id: uuid.UUID | None = None,
    status: str | None = None,
    kind: str | None = None,
    offset: int,
    limit: int,
) -> tuple[list[Job], int]:
    job = tables.job
    where = [job.c.owner_id == owner_id]
    if project_id is not None:
        where.append(job.c.project_id == project_id)
    if status is not None:
        where.append(job.c.status == status)
    if kind is not None:
        where.append(job.c.kind == kind)
    total = await session.scalar(select(func.count()).select_from(job).where(*where))
    rows = await session.execute(
        select(job).where(*where).order_by(job.c.created_at.desc()).offset(offset).limit(limit)
    )
    return list(rows.mappings().all()), int(total or 0)


async def advance(
    session: AsyncSession,
    tables: JobTables,
    job_id: uuid.UUID,
    *,
    from_statuses: Iterable[str],
    expect_attempt: int | None = None,
    **values: Any,
) -> Job | None:
    """Compare-and-set: change the job only if it is in ``from_statuses`` (and, for a worker,
    still on ``expect_attempt``), record the change as the job's next event, and return the job.
    None means someone else moved it first (a cancel, another worker): nothing was written."""
    job = tables.job
    conditions = [job.c.id == job_id, job.c.status.in_(list(from_statuses))]
    if expect_attempt is not None:
        conditions.append(job.c.attempt == expect_attempt)
    row = (
        (
            await session.execute(
                update(job)
                .where(*conditions)
                .values(**values, event_seq=job.c.event_seq + 1, updated_at=utcnow())
                .returning(*job.c)
            )
        )
        .mappings()
        .first()
    )
    if row is None:
        return None
    await session.execute(
        insert(tables.job_event).values(
            job_id=job_id,
            seq=row["event_seq"],
            status=row["status"],
            progress=row["progress"],
            current_step=row["current_step"],
        )
    )
    return row


async def heartbeat(
    session: AsyncSession, tables: JobTables, job_id: uuid.UUID, attempt: int
) -> str | None:
    """Mark the job as held by a live worker and answer its status; None when the job is gone
    or another attempt holds it."""
    job = tables.job
    status: str | None = await session.scalar(
        update(job)
        .where(job.c.id == job_id, job.c.attempt == attempt)
        .values(heartbeat_at=utcnow())
        .returning(job.c.status)
    )
    return status


async def events_after(
    session: AsyncSession, tables: JobTables, job_id: uuid.UUID, seq: int
) -> list[RowMapping]:
    event = tables.job_event
    rows = await session.execute(
        select(event).where(event.c.job_id == job_id, event.c.seq > seq).order_by(event.c.seq)
    )
    return list(rows.mappings().all())


async def add_ticket(
    session: AsyncSession,
    tables: JobTables,
    *,
    ticket_hash: str,
    job_id: uuid.UUID,
    user_id: uuid.UUID,
    expires_at: datetime,
) -> None:
    await session.execute(
        insert(tables.stream_ticket).values(
            ticket_hash=ticket_hash, job_id=job_id, user_id=user_id, expires_at=expires_at
        )
    )


async def use_ticket(
    session: AsyncSession,
    tables: JobTables,
    ticket_hash: str,
    job_id: uuid.UUID,
    now: datetime,
) -> uuid.UUID | None:
    """Use a ticket for ``job_id``: it works for that job only, as often as needed until it
    expires (EventSource reconnects with the same URL). Records the first use; answers the
    user it was issued to."""
    ticket = tables.stream_ticket
    row = (
        await session.execute(
            update(ticket)
            .where(
                ticket.c.ticket_hash == ticket_hash,
                ticket.c.job_id == job_id,
                ticket.c.expires_at > now,
            )
            .values(used_at=func.coalesce(ticket.c.used_at, now))
            .returning(ticket.c.user_id)
        )
    ).first()
    return None if row is None else row[0]
