from __future__ import annotations

from sqlalchemy import Column, Integer, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import SQLModel

from storycore_shared.assets import asset_table
from storycore_shared.db import schema_registry
from storycore_shared.events.tables import EventTables
from storycore_shared.jobs.tables import JobTables
from storycore_shared.ratelimit import rate_limit_table
from storycore_shared.replicas.projects import project_replica_table

SCHEMA = "sequences"


class Base(SQLModel, registry=schema_registry(SCHEMA)):
    pass


event_tables = EventTables.on(Base.metadata)
project_replica = project_replica_table(Base.metadata)
rate_limits = rate_limit_table(Base.metadata)
assets_table = asset_table(Base.metadata)
# A generation job: the kit's job columns plus the request and the plan it made.
job_tables = JobTables.on(
    Base.metadata,
    Column("prompt", Text, nullable=False),
    Column("shot_count", Integer, nullable=False),
    Column("style", String(200), nullable=True),
    Column("mood", String(200), nullable=True),
    Column("characters", JSONB, nullable=False),
    Column("settings", JSONB, nullable=False),
    Column("image_backend", String(20), nullable=False),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("plan", JSONB, nullable=True),
)
