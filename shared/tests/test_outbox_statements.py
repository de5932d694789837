"""One-statement writes with their event (``insert_with_event``, ``returning_with_event``) on real
Postgres, without a transaction of their own, and their events through the relay to JetStream."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest
from nats.js.errors import NotFoundError
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from storycore_shared.db import DriverConnection, Prepared, asyncpg_dsn, transaction
from storycore_shared.events.broker import Broker
from storycore_shared.events.envelope import CloudEvent
from storycore_shared.events.outbox import (
    EVENT_ID,
    envelope_parameters,
    event_parameters,
    insert_with_event,
    returning_with_event,
)
from storycore_shared.events.relay import OutboxRelay
from storycore_testkit.polling import eventually

ACTOR = uuid.uuid4()


def _statements(kit: Any) -> tuple[Any, Any]:
    applied = kit.applied
    create = insert_with_event(
        insert(applied).values(
            event_id=bindparam("v_event_id"), entity_id=bindparam("v_entity_id"), n=bindparam("v_n")
        ),
        kit.tables,
    )
    bump = returning_with_event(
        update(applied)
        .where(applied.c.entity_id == bindparam("w_entity_id"))
        .values(n=applied.c.n + 1)
        .returning(*applied.c),
        kit.tables,
        kit.event,
        lambda row: {"id": row.c.entity_id, "n": row.c.n},
    )
    return create, bump


async def _outbox(kit: Any) -> list[tuple[str, dict[str, Any]]]:
    async with kit.engine.connect() as conn:
        rows = await conn.execute(
            select(kit.tables.outbox.c.subject, kit.tables.outbox.c.payload).order_by(
                kit.tables.outbox.c.seq
            )
        )
        return [(subject, payload) for subject, payload in rows]


async def test_one_statement_writes_record_their_event_without_a_transaction(kit: Any) -> None:
    listener = await asyncpg.connect(asyncpg_dsn(kit.database_url))
    notified: asyncio.Queue[str] = asyncio.Queue()
    await listener.add_listener(kit.tables.notify_channel, lambda *_: notified.put_nowait(""))
    create, bump = (Prepared(statement) for statement in _statements(kit))
    entity = uuid.uuid4()
    try:
        created = kit.event(id=entity, n=1)
        # As a route runs them: on the driver connection, outside any transaction.
        async with kit.engine.connect() as pooled:
            connection = await DriverConnection.of(pooled)
            await connection.fetchrow(
                create,
                {"v_event_id": "e1", "v_entity_id": entity, "v_n": 1}
                | event_parameters(created, source="kit", actor=ACTOR),
            )
            # Each statement committed on its own: another connection sees the row at once.
            assert await kit.applied_count() == 1
            parameters = envelope_parameters(kit.event, entity, source="kit", actor=ACTOR)
            row = await connection.fetchrow(bump, parameters | {"w_entity_id": entity})
            assert row is not None
            assert (row["entity_id"], row["n"], row["outbox_events"]) == (entity, 2, 1)
            # A change that matches no row writes no event.
            missing = envelope_parameters(kit.event, entity, source="kit")
            nothing = await connection.fetchrow(bump, missing | {"w_entity_id": uuid.uuid4()})
            assert nothing is None
        await asyncio.wait_for(notified.get(), timeout=5)
        await asyncio.wait_for(notified.get(), timeout=5)
    finally:
        await listener.close()
    [(first_subject, first), (second_subject, second)] = await _outbox(kit)
    assert first_subject == created.event_type
    assert CloudEvent.model_validate(first).data == {"id": str(entity), "n": 1}
    # Postgres built the second event's data from the row: the same as Python would have.
    event = CloudEvent.model_validate(second)
    expected = CloudEvent.wrap(kit.event(id=entity, n=2), source="kit", actor=ACTOR)
    assert second_subject == event.type == expected.type
    assert set(second) == set(expected.model_dump(mode="json"))
    assert (event.subject, event.source, event.actor) == (str(entity), "kit", str(ACTOR))
    assert event.data == expected.data == {"id": str(entity), "n": 2}
    assert kit.event.model_validate(event.data) == kit.event(id=entity, n=2)


async def test_a_refused_event_undoes_its_write(kit: Any) -> None:
    """The write and its event are one statement: when the outbox row cannot be written (here a
    duplicate event id), the change is not made either."""
    create, bump = _statements(kit)
    entity = uuid.uuid4()
    async with transaction(kit.sessionmaker) as session:
        await session.execute(
            create,
            {"v_event_id": "e1", "v_entity_id": entity, "v_n": 1}
            | event_parameters(kit.event(id=entity, n=1), source="kit"),
        )
    taken = (await _outbox(kit))[0][1]["id"]
    parameters = envelope_parameters(kit.event, entity, source="kit") | {EVENT_ID: taken}
    with pytest.raises(IntegrityError):
        async with transaction(kit.sessionmaker) as session:
            await session.execute(bump, parameters | {"w_entity_id": entity})
    with pytest.raises(IntegrityError):
        async with transaction(kit.sessionmaker) as session:
            await session.execute(
                create,
                {"v_event_id": "e2", "v_entity_id": uuid.uuid4(), "v_n": 5}
                | event_parameters(kit.event(id=entity, n=5), source="kit")
                | {EVENT_ID: taken},
            )
    assert [(r.event_id, r.n) for r in await kit.applied_rows()] == [("e1", 1)]
    assert len(await _outbox(kit)) == 1


def test_the_event_data_must_name_exactly_the_event_fields(kit: Any) -> None:
    change = update(kit.applied).values(n=1).returning(*kit.applied.c)
    with pytest.raises(ValueError, match="needs exactly"):
        returning_with_event(change, kit.tables, kit.event, lambda row: {"id": row.c.entity_id})


async def test_events_of_one_statement_writes_reach_the_stream(kit: Any, broker: Broker) -> None:
    create, bump = _statements(kit)
    relay = OutboxRelay(
        database_url=kit.database_url, tables=kit.tables, broker=broker, streams=[kit.stream]
    )
    entity = uuid.uuid4()
    await relay.start()
    try:
        async with transaction(kit.sessionmaker) as session:
            await session.execute(
                create,
                {"v_event_id": "e1", "v_entity_id": entity, "v_n": 1}
                | event_parameters(kit.event(id=entity, n=1), source="kit"),
            )
            await session.execute(
                bump,
                envelope_parameters(kit.event, entity, source="kit") | {"w_entity_id": entity},
            )
        js = await broker.jetstream()

        async def both_published() -> bool:
            try:  # the relay provisions the stream when it takes the lead
                info = await js.stream_info(kit.stream.name)
            except NotFoundError:
                return False
            return bool(info.state.messages == 2)

        await eventually(both_published, within=10, what="2 events in the stream")
        sub = await js.pull_subscribe(f"{kit.name}.>", stream=kit.stream.name)
        messages = await sub.fetch(2, timeout=5)
        decoded = [CloudEvent.model_validate_json(m.data) for m in messages]
        assert [kit.event.model_validate(e.data).n for e in decoded] == [1, 2]  # type: ignore[attr-defined]
        assert await kit.unpublished_count() == 0
    finally:
        await relay.stop()
