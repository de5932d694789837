"""Every SQL statement of the locations service."""

from __future__ import annotations

import uuid

from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from locations.models import Location


async def get(
    session: AsyncSession, location_id: uuid.UUID, *, lock: bool = False
) -> Location | None:
    statement = select(Location).where(col(Location.id) == location_id)
    if lock:
        statement = statement.with_for_update().execution_options(populate_existing=True)
    return (await session.scalars(statement)).first()


async def page(
    session: AsyncSession, where: list[ColumnElement[bool]], *, offset: int, limit: int
) -> tuple[list[Location], int]:
    total = await session.scalar(select(func.count()).select_from(Location).where(*where))
    rows = await session.scalars(
        select(Location)
        .where(*where)
        .order_by(col(Location.updated_at).desc(), col(Location.id))
        .offset(offset)
        .limit(limit)
    )
    return list(rows.all()), int(total or 0)


def owned_by(owner_id: uuid.UUID, project_id: uuid.UUID | None) -> list[ColumnElement[bool]]:
    where = [col(Location.owner_id) == owner_id]
    if project_id is not None:
        where.append(col(Location.project_id) == project_id)
    return where


def in_project(project_id: uuid.UUID) -> list[ColumnElement[bool]]:
    return [col(Location.project_id) == project_id]


async def delete_for_project(session: AsyncSession, project_id: uuid.UUID) -> None:
    await session.execute(delete(Location).where(col(Location.project_id) == project_id))
