from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Index, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from storycore_shared.db import schema_registry, utcnow
from storycore_shared.events.tables import EventTables
from storycore_shared.ratelimit import rate_limit_table
from storycore_shared.replicas.projects import project_replica_table

SCHEMA = "sequences"


class Base(SQLModel, registry=schema_registry(SCHEMA)):
    pass


event_tables = EventTables.on(Base.metadata)
project_replica = project_replica_table(Base.metadata)
rate_limits = rate_limit_table(Base.metadata)

TERMINAL = frozenset({"completed", "failed", "cancelled"})


class Job(Base, table=True):
    """A generation job. ``status`` only moves forward, by compare-and-set."""

    __tablename__ = "job"
    __table_args__ = (Index("ix_job_owner_created", "owner_id", "created_at"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    project_id: uuid.UUID = Field(index=True)
    owner_id: uuid.UUID
    status: str = Field(default="pending", max_length=20)
    progress: int = 0
    current_step: str = Field(default="queued", max_length=255)
    prompt: str = Field(sa_type=Text)
    shot_count: int = 5
    style: str | None = Field(default=None, max_length=200)
    mood: str | None = Field(default=None, max_length=200)
    characters: list[str] = Field(default_factory=list, sa_type=JSONB)
    settings: dict[str, Any] = Field(default_factory=dict, sa_type=JSONB)
    image_backend: str = Field(max_length=20)
    width: int
    height: int
    plan: list[dict[str, Any]] | None = Field(default=None, sa_type=JSONB)
    result: dict[str, Any] | None = Field(default=None, sa_type=JSONB)
    error: str | None = Field(default=None, sa_type=Text)
    attempt: int = 0
    event_seq: int = 0
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
    started_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    completed_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    updated_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))


class JobEvent(Base, table=True):
    """Every change a stream must show, numbered per job (the SSE ``id:``)."""

    __tablename__ = "job_event"

    job_id: uuid.UUID = Field(primary_key=True)
    seq: int = Field(primary_key=True)
    status: str = Field(max_length=20)
    progress: int
    current_step: str = Field(max_length=255)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))


class StreamTicket(Base, table=True):
    """A single-use, short-lived credential for one job's stream (EventSource sends no headers)."""

    __tablename__ = "stream_ticket"

    ticket_hash: str = Field(primary_key=True, max_length=64)
    job_id: uuid.UUID
    user_id: uuid.UUID
    expires_at: datetime = Field(sa_type=DateTime(timezone=True))
    used_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
