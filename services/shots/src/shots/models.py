from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Column, DateTime, Index, Table, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from storycore_shared.db import new_list, schema_registry, utcnow
from storycore_shared.events.tables import EventTables
from storycore_shared.replicas.projects import project_replica_table

SCHEMA = "shots"


class Base(SQLModel, registry=schema_registry(SCHEMA)):
    pass


event_tables = EventTables.on(Base.metadata)
project_replica = project_replica_table(Base.metadata)


class Shot(Base, table=True):
    __tablename__ = "shot"
    __table_args__ = (Index("ix_shot_project_order", "project_id", "order_index"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    project_id: uuid.UUID
    sequence_id: uuid.UUID | None = None
    name: str = Field(max_length=255)
    description: str | None = Field(default=None, sa_type=Text)
    prompt: str = Field(sa_type=Text)
    shot_type: str = Field(default="action", max_length=20)
    framing: str | None = Field(default=None, max_length=30)
    camera_angle: str | None = Field(default=None, max_length=20)
    duration_seconds: float = 5.0
    order_index: int = 0
    status: str = Field(default="pending", max_length=20)
    meta: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column("metadata", JSONB, nullable=False)
    )
    character_ids: list[str] = Field(default_factory=new_list, sa_type=JSONB)
    asset_ids: list[str] = Field(default_factory=new_list, sa_type=JSONB)
    result_url: str | None = Field(default=None, sa_type=Text)
    thumbnail_url: str | None = Field(default=None, sa_type=Text)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
    updated_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
    version: int = 1


# The table itself, for the statements built once on it.
shot_table: Table = Shot.metadata.tables[f"{SCHEMA}.{Shot.__tablename__}"]
