"""Every SQL statement of the projects service."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
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


async def update_owned(
    session: AsyncSession,
    project_id: uuid.UUID,
    owner_id: uuid.UUID,
    *,
    changes: dict[str, Any],
    expected_version: int | None,
    now: datetime,
) -> Project | None:
    """Apply ``changes`` and the next version in one statement, when the project is
    ``owner_id``'s and at ``expected_version`` (if given); None when it is not (the caller then
    finds out why). The row lock is taken and the new row read in the same round trip."""
    where = [col(Project.id) == project_id, col(Project.owner_id) == owner_id]
    if expected_version is not None:
        where.append(col(Project.version) == expected_version)
    statement = (
        update(Project)
        .where(*where)
        .values(**changes, version=col(Project.version) + 1, updated_at=now)
        .returning(Project)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
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
