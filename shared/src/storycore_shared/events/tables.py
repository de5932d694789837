"""The event tables every service has: outbox, processed_event (the inbox) and dead_letter.

``shared`` declares no table itself; a service makes these concrete on its own metadata::

    event_tables = EventTables.on(Base.metadata)
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB


@dataclass(frozen=True)
class EventTables:
    outbox: Table
    processed_event: Table
    dead_letter: Table

    @property
    def schema(self) -> str:
        assert self.outbox.schema is not None
        return self.outbox.schema

    @property
    def notify_channel(self) -> str:
        return f"{self.schema}_outbox"

    @classmethod
    def on(cls, metadata: MetaData) -> EventTables:
        outbox = Table(
            "outbox",
            metadata,
            Column("seq", BigInteger, Identity(always=True), primary_key=True),
            Column("event_id", String(64), nullable=False, unique=True),
            Column("subject", String(255), nullable=False),
            Column("payload", JSONB, nullable=False),
            Column(
                "created_at", DateTime(timezone=True), nullable=False, server_default=func.now()
            ),
            Column("published_at", DateTime(timezone=True), nullable=True),
            Index("ix_outbox_pending", "seq", postgresql_where=text("published_at is null")),
            Index("ix_outbox_created_at", "created_at"),
        )
        processed = Table(
            "processed_event",
            metadata,
            Column("consumer", String(255), primary_key=True),
            Column("event_id", String(64), primary_key=True),
            Column(
                "processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()
            ),
        )
        dead_letter = Table(
            "dead_letter",
            metadata,
            Column("id", BigInteger, Identity(always=True), primary_key=True),
            Column("consumer", String(255), nullable=False),
            Column("event_id", String(64), nullable=True),
            Column("subject", String(255), nullable=False),
            Column("payload", Text, nullable=False),
            Column("error", Text, nullable=False),
            Column("deliveries", Integer, nullable=False),
            Column(
                "created_at", DateTime(timezone=True), nullable=False, server_default=func.now()
            ),
        )
        return cls(outbox=outbox, processed_event=processed, dead_letter=dead_letter)
