"""Transactional outbox: the event row is written in the same transaction as the change.

Service functions call :func:`add_event` and never publish; the commit makes the change and the
event visible together, and ``NOTIFY`` (delivered at commit) wakes the relay::

    await add_event(session, event_tables, ProjectDeleted(id=p.id, owner_id=p.owner_id),
                    source="projects", actor=principal.user_id)
"""

from __future__ import annotations

import functools
import uuid

from sqlalchemy import Insert, Table, bindparam, func, insert
from sqlalchemy.ext.asyncio import AsyncSession

from storycore_shared.events.contracts import EventData
from storycore_shared.events.envelope import CloudEvent
from storycore_shared.events.tables import EventTables
from storycore_shared.logs import request_id_var


async def add_event(
    session: AsyncSession,
    tables: EventTables,
    data: EventData,
    *,
    source: str,
    actor: uuid.UUID | str | None = None,
) -> CloudEvent:
    event = CloudEvent.wrap(data, source=source, actor=actor, correlation_id=request_id_var.get())
    await session.execute(
        _outbox_insert(tables.outbox, tables.notify_channel),
        {"event_id": event.id, "subject": event.type, "payload": event.model_dump(mode="json")},
    )
    return event


@functools.cache
def _outbox_insert(outbox: Table, channel: str) -> Insert:
    """One statement, built once: the row, and the NOTIFY that Postgres delivers at commit."""
    return (
        insert(outbox)
        .values(
            event_id=bindparam("event_id"),
            subject=bindparam("subject"),
            payload=bindparam("payload"),
        )
        .returning(func.pg_notify(channel, ""))
    )
