"""Every SQL statement of the shots service."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Mapping
from typing import Any

import sqlalchemy
from sqlalchemy import Table, Uuid, bindparam, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from shots.models import Shot, event_tables, shot_table
from storycore_shared.db import DriverConnection, Prepared
from storycore_shared.events import outbox
from storycore_shared.events.contracts.shots import ShotCreated


async def get(session: AsyncSession, shot_id: uuid.UUID, *, lock: bool = False) -> Shot | None:
    statement = select(Shot).where(col(Shot.id) == shot_id)
    if lock:
        # populate_existing: a writer that waited for the lock must see the row as the other
        # writer committed it, not the copy it loaded before waiting (else a lost update).
        statement = statement.with_for_update().execution_options(populate_existing=True)
    return (await session.scalars(statement)).first()


async def insert(
    connection: DriverConnection,
    row: Mapping[str, Any],
    *,
    owner_id: uuid.UUID,
    append: bool,
    envelope: Mapping[str, Any],
) -> dict[str, Any] | None:
    """Insert the shot ``row`` (every column) and its ``shot.created`` event (``envelope``:
    ``envelope_parameters``) in one statement, and return the new row; None, with nothing
    written, when the project replica has no live project ``row["project_id"]`` of ``owner_id``.

    The statement first calls ``shots.next_shot_index`` (see its migration), which takes the
    project's row lock, held until the statement's transaction ends (in autocommit, the
    statement's own end), and reads the index after the project's last shot with a snapshot
    taken once it holds the lock. With ``append`` the shot gets that index, else its own."""
    parameters = outbox.row_parameters(row) | dict(envelope) | {"w_owner_id": owner_id}
    created = await connection.fetchrow(_insert(append=append), parameters)
    return None if created is None else dict(created)


@functools.cache
def _insert(*, append: bool) -> Prepared:
    table = shot_table
    values: dict[str, Any] = {c.name: bindparam(f"v_{c.name}", type_=c.type) for c in table.c}
    slot = select(
        func.shots.next_shot_index(values["project_id"], bindparam("w_owner_id", type_=Uuid)).label(
            "next_index"
        )
    ).subquery("slot")
    if append:
        values["order_index"] = slot.c.next_index
    change = (
        sqlalchemy.insert(table)
        .from_select(list(values), select(*values.values()).where(slot.c.next_index.is_not(None)))
        .returning(*table.c)
    )
    return Prepared(
        outbox.returning_with_event(
            change,
            event_tables,
            ShotCreated,
            lambda row: {field: row.c[field] for field in ShotCreated.model_fields},
        )
    )


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


async def lock_project(session: AsyncSession, project_id: uuid.UUID, replica: Table) -> bool:
    """Take the project replica's row lock (the one every writer of the project's shot order
    takes) until the transaction ends; False when the project was deleted."""
    deleted_at = await session.scalar(
        select(replica.c.deleted_at).where(replica.c.id == project_id).with_for_update()
    )
    return deleted_at is None


async def delete_for_project(session: AsyncSession, project_id: uuid.UUID) -> int:
    result = await session.execute(delete(Shot).where(col(Shot.project_id) == project_id))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
