from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Column, DateTime, Index, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from storycore_shared.db import schema_registry, utcnow
from storycore_shared.events.tables import EventTables
from storycore_shared.replicas.projects import project_replica_table

SCHEMA = "locations"


class Base(SQLModel, registry=schema_registry(SCHEMA)):
    pass


event_tables = EventTables.on(Base.metadata)
project_replica = project_replica_table(Base.metadata)


class Location(Base, table=True):
    __tablename__ = "location"
    __table_args__ = (
        Index("ix_location_owner_updated", "owner_id", "updated_at"),
        Index("ix_location_project", "project_id"),
    )

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    owner_id: uuid.UUID
    project_id: uuid.UUID | None = None
    name: str = Field(max_length=255)
    description: str | None = Field(default=None, sa_type=Text)
    location_type: str = Field(default="generic", max_length=20)
    significance: str | None = Field(default=None, sa_type=Text)
    atmosphere: str | None = Field(default=None, sa_type=Text)
    meta: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column("metadata", JSONB, nullable=False)
    )
    cube_faces: dict[str, str] | None = Field(default=None, sa_type=JSONB)
    skybox_data: dict[str, Any] | None = Field(default=None, sa_type=JSONB)
    created_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
    updated_at: datetime = Field(default_factory=utcnow, sa_type=DateTime(timezone=True))
    version: int = 1
