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

SCHEMA = "llm"


class Base(SQLModel, registry=schema_registry(SCHEMA)):
    pass


event_tables = EventTables.on(Base.metadata)
rate_limits = rate_limit_table(Base.metadata)


class ResponseCache(Base, table=True):
    """A cached generation, keyed by user, provider, model and every parameter."""

    __tablename__ = "response_cache"

    key: str = Field(primary_key=True, max_length=64)
    user_id: uuid.UUID = Field(index=True)
    provider: str = Field(max_length=20)
    model: str = Field(max_length=255)
    text: str = Field(sa_type=Text)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
    expires_at: datetime = Field(sa_type=DateTime(timezone=True))


class UsageRecord(Base, table=True):
    __tablename__ = "usage_record"
    __table_args__ = (Index("ix_usage_record_user_created", "user_id", "created_at"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID
    endpoint: str = Field(max_length=40)
    provider: str = Field(max_length=20)
    model: str = Field(max_length=255)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False
    latency_ms: float = 0.0
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))


class Scenario(Base, table=True):
    __tablename__ = "scenario"
    __table_args__ = (Index("ix_scenario_user_created", "user_id", "created_at"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    user_id: uuid.UUID
    title: str = Field(max_length=255)
    status: str = Field(default="completed", max_length=20)
    provider: str = Field(max_length=20)
    story: str = Field(sa_type=Text)
    document: dict[str, Any] = Field(sa_type=JSONB)
    summary: dict[str, Any] = Field(sa_type=JSONB)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
