"""Every SQL statement of the shots service."""

from __future__ import annotations

import uuid

from sqlalchemy import Table, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from shots.models import Shot


async def get(session: AsyncSession, shot_id: uuid.UUID, *, lock: bool = False) -> Shot | None:
    statement = select(Shot).where(col(Shot.id) == shot_id)
    if lock:
        # populate_existing: a writer that waited for the lock must see the row as the other
        # writer committed it, not the copy it loaded before waiting (else a lost update).
        statement = statement.with_for_update().execution_options(populate_existing=True)
    return (await session.scalars(statement)).first()


async def next_order_index(session: AsyncSession, project_id: uuid.UUID) -> int:
    last = await session.scalar(
        select(func.max(Shot.order_index)).where(col(Shot.project_id) == project_id)
    )
    return 0 if last is None else int(last) + 1


async def list_for_project(
    session: AsyncSession,
    project_id: uuid.UUID,
    *,
    status: str | None = None,
    offset: int = 0,
    limit: int | None = None,
    lock: bool = False,
) -> tuple[list[Shot], int]:
    where = [col(Shot.project_id) == project_id]
    if status is not None:
        where.append(col(Shot.status) == status)
    total = await session.scalar(select(func.count()).select_from(Shot).where(*where))
    statement = (
        select(Shot)
        .where(*where)
        .order_by(col(Shot.order_index), col(Shot.created_at))
        .offset(offset)
        .limit(limit)
    )
    if lock:
        statement = statement.with_for_update().execution_options(populate_existing=True)
    return list((await session.scalars(statement)).all()), int(total or 0)


async def project_deleted(session: AsyncSession, project_id: uuid.UUID, replica: Table) -> bool:
    deleted_at = await session.scalar(
        select(replica.c.deleted_at).where(replica.c.id == project_id)
    )
    return deleted_at is not None


async def delete_for_project(session: AsyncSession, project_id: uuid.UUID) -> int:
    result = await session.execute(delete(Shot).where(col(Shot.project_id) == project_id))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
