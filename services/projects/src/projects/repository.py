"""Every SQL statement of the projects service."""

from __future__ import annotations

import functools
import uuid
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from projects.models import Project, event_tables, project_table
from storycore_shared.db import DriverConnection, Prepared
from storycore_shared.events import outbox
from storycore_shared.events.contracts.projects import ProjectState, ProjectUpdated


async def get(
    session: AsyncSession, project_id: uuid.UUID, *, lock: bool = False
) -> Project | None:
    statement = select(Project).where(col(Project.id) == project_id)
    if lock:
        statement = statement.with_for_update().execution_options(populate_existing=True)
    result = await session.scalars(statement)
    return result.first()


class _Columns(Protocol):
    def __getitem__(self, name: str) -> Any: ...


def event_state(row: _Columns) -> dict[str, Any]:
    """What a project's events carry, from its columns: a row's values, or (for Postgres to
    build an event from the row it writes) a statement's columns."""
    return {f: row["id" if f == "project_id" else f] for f in ProjectState.model_fields}


async def get_row(connection: DriverConnection, project_id: uuid.UUID) -> dict[str, Any] | None:
    """The project's columns (no ORM object), by a statement built once."""
    row = await connection.fetchrow(_select_one(), {"w_id": project_id})
    return None if row is None else dict(row)


async def insert(connection: DriverConnection, row: dict[str, Any], event: dict[str, Any]) -> None:
    """Insert the project ``row`` (every column) and its event (``event_parameters``) in one
    statement."""
    await connection.fetchrow(_insert(), outbox.row_parameters(row) | event)


async def update_owned_with_event(
    connection: DriverConnection,
    project_id: uuid.UUID,
    owner_id: uuid.UUID,
    *,
    changes: dict[str, Any],
    expected_version: int | None,
    now: datetime,
    envelope: dict[str, Any],
) -> dict[str, Any] | None:
    """Apply ``changes`` (by column name) and the next version, and write the
    ``project.updated`` event built from the new row, in one statement, when the project is
    ``owner_id``'s and at ``expected_version`` (if given). The new row's columns, or None when
    nothing was changed (the caller then finds out why). The row lock lasts as long as the
    statement."""
    statement = _update(frozenset(changes), versioned=expected_version is not None)
    parameters = outbox.row_parameters(changes) | envelope
    parameters |= {"w_id": project_id, "w_owner_id": owner_id, "now": now}
    if expected_version is not None:
        parameters["w_version"] = expected_version
    row = await connection.fetchrow(statement, parameters)
    return None if row is None else dict(row)


@functools.cache
def _select_one() -> Prepared:
    table = project_table
    return Prepared(select(table).where(table.c.id == bindparam("w_id")))


@functools.cache
def _insert() -> Prepared:
    return Prepared(outbox.insert_row_with_event(project_table, event_tables))


@functools.cache
def _update(columns: frozenset[str], *, versioned: bool) -> Prepared:
    """Built once per set of changed columns (bound parameters ``v_<column>``)."""
    table = project_table
    # Not a column's name: SQLAlchemy would take such a parameter for that column's new value.
    where = [table.c.id == bindparam("w_id"), table.c.owner_id == bindparam("w_owner_id")]
    if versioned:
        where.append(table.c.version == bindparam("w_version"))
    values: dict[str, Any] = {c: bindparam(f"v_{c}", type_=table.c[c].type) for c in columns}
    values |= {"version": table.c.version + 1, "updated_at": bindparam("now")}
    change = update(table).where(*where).values(values).returning(*table.c)
    return Prepared(
        outbox.returning_with_event(
            change,
            event_tables,
            ProjectUpdated,
            lambda row: event_state(row.c),
        )
    )


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
