"""Transactional outbox: the event row is written in the same transaction as the change.

Service functions call :func:`add_event` and never publish; the commit makes the change and the
event visible together, and ``NOTIFY`` (delivered at commit) wakes the relay::

    await add_event(session, event_tables, ProjectDeleted(id=p.id, owner_id=p.owner_id),
                    source="projects", actor=principal.user_id)

A write that is one statement can carry its event in the same statement, which then needs no
transaction of its own (no ``BEGIN`` and ``COMMIT`` round trips, and a row lock held only while
the statement runs): :func:`insert_with_event` when the event is known before the write,
:func:`returning_with_event` when its data is the row the write returns. Both take the event's
envelope as bound parameters, from :func:`event_parameters` or :func:`envelope_parameters`.
"""

from __future__ import annotations

import functools
import itertools
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Insert,
    Select,
    String,
    Table,
    Update,
    bindparam,
    func,
    insert,
    literal,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.selectable import CTE

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


# Names of the outbox's bound parameters in the one-statement writes, apart from the change's.
EVENT_ID, EVENT_SUBJECT, EVENT_PAYLOAD, EVENT_ENVELOPE = (
    "outbox_event_id",
    "outbox_subject",
    "outbox_payload",
    "outbox_envelope",
)


def event_parameters(
    data: EventData, *, source: str, actor: uuid.UUID | str | None = None
) -> dict[str, Any]:
    """The outbox row of ``data``'s event, for :func:`insert_with_event`."""
    event = CloudEvent.wrap(data, source=source, actor=actor, correlation_id=request_id_var.get())
    return {
        EVENT_ID: event.id,
        EVENT_SUBJECT: event.type,
        EVENT_PAYLOAD: event.model_dump(mode="json"),
    }


def envelope_parameters(
    event_type: type[EventData],
    subject: uuid.UUID,
    *,
    source: str,
    actor: uuid.UUID | str | None = None,
) -> dict[str, Any]:
    """The envelope of an event whose ``data`` the statement builds from the row it writes,
    for :func:`returning_with_event`. ``subject`` is the event's ``id`` (the row's)."""
    event = CloudEvent(
        source=source,
        type=event_type.event_type,
        subject=str(subject),
        data={},
        correlationid=request_id_var.get(),
        actor=str(actor) if actor is not None else None,
    )
    return {
        EVENT_ID: event.id,
        EVENT_SUBJECT: event.type,
        EVENT_ENVELOPE: event.model_dump(mode="json", exclude={"data"}),
    }


def insert_with_event(change: Insert, tables: EventTables) -> Insert:
    """``WITH change AS (<change>) INSERT INTO outbox ... RETURNING pg_notify(...)``: the write
    and its event (:func:`event_parameters`) in one statement. Postgres runs a data-modifying
    ``WITH`` to completion whether or not the main statement reads it."""
    return (
        insert(tables.outbox)
        .values(
            event_id=bindparam(EVENT_ID),
            subject=bindparam(EVENT_SUBJECT),
            payload=bindparam(EVENT_PAYLOAD, type_=JSONB),
        )
        .returning(func.pg_notify(tables.notify_channel, ""))
        .add_cte(change.cte("change"))
    )


@functools.cache
def insert_row_with_event(table: Table, tables: EventTables) -> Insert:
    """:func:`insert_with_event` of one whole row of ``table``, built once: every column is
    the bound parameter ``v_<column>`` (:func:`row_parameters`)."""
    values = {c.name: bindparam(f"v_{c.name}", type_=c.type) for c in table.c}
    return insert_with_event(insert(table).values(values), tables)


def row_parameters(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row's columns as the ``v_<column>`` parameters of the one-statement writes. (A
    parameter named after a column of an ``UPDATE`` would be taken for that column's value.)"""
    return {f"v_{name}": value for name, value in row.items()}


def returning_with_event(
    change: Insert | Update,
    tables: EventTables,
    event_type: type[EventData],
    data: Callable[[CTE], Mapping[str, ColumnElement[Any]]],
) -> Select[Any]:
    """The rows ``change`` (an ``INSERT`` or ``UPDATE`` ... ``RETURNING``) wrote, each with its
    event in the outbox, in one statement: the event's ``data`` is built by Postgres from the
    returned row, one ``jsonb`` member per field of ``event_type`` (``data`` maps each field to
    its column of the change), merged into the envelope bound by :func:`envelope_parameters`.
    For a write whose values Postgres decides (an update, a computed column). A change that
    writes no row writes no event. The main query reads the outbox insert, so its
    ``pg_notify`` is evaluated."""
    changed = change.cte("change")
    fields = dict(data(changed))
    if set(fields) != set(event_type.model_fields):
        raise ValueError(
            f"{event_type.__name__}'s data needs exactly {sorted(event_type.model_fields)}, "
            f"not {sorted(fields)}"
        )
    members = itertools.chain.from_iterable(
        (literal(name), value) for name, value in fields.items()
    )
    payload = bindparam(EVENT_ENVELOPE, type_=JSONB).op("||")(
        func.jsonb_build_object(literal("data", String), func.jsonb_build_object(*members))
    )
    written = (
        insert(tables.outbox)
        .from_select(
            ["event_id", "subject", "payload"],
            select(
                bindparam(EVENT_ID, type_=String), bindparam(EVENT_SUBJECT, type_=String), payload
            ).select_from(changed),
        )
        .returning(func.pg_notify(tables.notify_channel, "").label("notified"))
        .cte("written")
    )
    events = select(func.count()).select_from(written).scalar_subquery()
    return select(changed, events.label("outbox_events"))
