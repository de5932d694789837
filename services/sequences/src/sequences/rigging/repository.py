"""Every SQL statement about rigs. A rig's status and error are its job's (same id)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import RowMapping, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sequences.models import job_tables, rig
from storycore_shared.db import utcnow

job = job_tables.job
# The rig with its job's state.
RIG_VIEW = (
    *rig.c,
    job.c.status,
    job.c.error,
)


async def add(session: AsyncSession, **values: Any) -> None:
    await session.execute(insert(rig).values(**values))


async def get(session: AsyncSession, rig_id: uuid.UUID, *, lock: bool = False) -> RowMapping | None:
    """The rig and its job's status and error."""
    statement = select(*RIG_VIEW).join(job, job.c.id == rig.c.id).where(rig.c.id == rig_id)
    if lock:
        statement = statement.with_for_update(of=rig)
    return (await session.execute(statement)).mappings().first()


async def set_built(session: AsyncSession, rig_id: uuid.UUID, **values: Any) -> bool:
    """Record the built file and what it was built from; False when the rig is gone."""
    result = await session.execute(
        update(rig)
        .where(rig.c.id == rig_id)
        .values(**values, updated_at=utcnow())
        .returning(rig.c.id)
    )
    return result.first() is not None


async def remove(session: AsyncSession, rig_id: uuid.UUID) -> None:
    await session.execute(delete(rig).where(rig.c.id == rig_id))


async def remove_project(session: AsyncSession, project_id: uuid.UUID) -> int:
    result = await session.execute(
        delete(rig).where(rig.c.project_id == project_id).returning(rig.c.id)
    )
    return len(result.all())
