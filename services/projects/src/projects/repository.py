"""Every SQL statement of the projects service."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from projects.models import Project


async def get(
    session: AsyncSession, project_id: uuid.UUID, *, lock: bool = False
) -> Project | None:
    statement = select(Project).where(col(Project.id) == project_id)
    if lock:
        statement = statement.with_for_update().execution_options(populate_existing=True)
    result = await session.scalars(statement)
    return result.first()


async def list_owned(
    session: AsyncSession,
    owner_id: uuid.UUID,
    *,
    status: str | None,
    offset: int,
    limit: int,
) -> tuple[list[Project], int]:
    where = [col(Project.owner_id) == owner_id]
    if status is not None:
        where.append(col(Project.status) == status)
    total = await session.scalar(select(func.count()).select_from(Project).where(*where))
    rows = await session.scalars(
        select(Project)
        .where(*where)
        .order_by(col(Project.updated_at).desc(), col(Project.id))
        .offset(offset)
        .limit(limit)
    )
    return list(rows.all()), int(total or 0)


async def delete(session: AsyncSession, project: Project) -> None:
    await session.delete(project)
    await session.flush()
