from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Column, DateTime, Index, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from storycore_shared.db import schema_registry, utcnow
from storycore_shared.events.tables import EventTables

SCHEMA = "projects"


class Base(SQLModel, registry=schema_registry(SCHEMA)):
    pass


event_tables = EventTables.on(Base.metadata)


class Project(Base, table=True):
    __tablename__ = "project"
    __table_args__ = (Index("ix_project_owner_updated", "owner_id", "updated_at"),)

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    owner_id: uuid.UUID
    name: str = Field(max_length=255)
    description: str | None = Field(default=None, sa_type=Text)
    format: str = Field(default="landscape", max_length=20)
    resolution_width: int = 1920
    resolution_height: int = 1080
    fps: int = 24
    status: str = Field(default="draft", max_length=20)
    tags: list[str] = Field(default_factory=list, sa_type=JSONB)
    # "metadata" is SQLModel's own attribute, so the column is mapped under another name.
    meta: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column("metadata", JSONB, nullable=False)
    )
    is_public: bool = False
    shot_count: int = 0
    sequence_count: int = 0
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
    updated_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
    version: int = 1
