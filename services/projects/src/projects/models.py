from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Column, DateTime, Index, Integer, String, Table, Text, Uuid, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from storycore_shared.db import new_list, schema_registry, utcnow
from storycore_shared.events.tables import EventTables
from storycore_shared.jobs.tables import JobTables

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
    tags: list[str] = Field(default_factory=new_list, sa_type=JSONB)
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


# The table itself, for the statements built once on it (events, repository).
project_table: Table = Project.metadata.tables[f"{SCHEMA}.{Project.__tablename__}"]

# Productions (story -> film): each is a job of the kit (status, progress, events, cancel,
# stream tickets) whose ``params`` hold the request and whose ``checkpoint`` holds the plan the
# scenario step returned. Its steps are rows of ``production_step``.
job_tables = JobTables.on(Base.metadata)

# One step of a production: the scenario, each storyboard, each narration, the music, the mix,
# the film. ``ref`` is the id of what the step asked another service to make (a sequence job,
# an audio record, an export), chosen by the saga (``uuid5(production_id, key)``), so the
# answer names it and a re-issued command names the same artefact.
production_step = Table(
    "production_step",
    Base.metadata,
    Column("production_id", Uuid, primary_key=True),
    Column("key", String(40), primary_key=True),
    Column("kind", String(20), nullable=False),
    Column("position", Integer, nullable=False, server_default="0"),
    Column("ref", Uuid, nullable=False, unique=True),
    Column("status", String(20), nullable=False, server_default="requested"),
    Column("detail", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("error", Text, nullable=True),
    Column("requested_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("finished_at", DateTime(timezone=True), nullable=True),
)
