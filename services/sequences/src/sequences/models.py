from __future__ import annotations

from sqlalchemy import (
    CHAR,
    CheckConstraint,
    Column,
    DateTime,
    Integer,
    String,
    Table,
    Text,
    Uuid,
    func,
)
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
# The service's jobs, of two kinds: "sequence" (the kit's job columns plus the request and the
# plan it made) and "rig" (its input is the kit's ``params``; the rig itself is a row of ``rig``).
SEQUENCE_COLUMNS = (
    "prompt",
    "shot_count",
    "characters",
    "settings",
    "image_backend",
    "width",
    "height",
)
job_tables = JobTables.on(
    Base.metadata,
    Column("prompt", Text, nullable=True),
    Column("shot_count", Integer, nullable=True),
    Column("style", String(200), nullable=True),
    Column("mood", String(200), nullable=True),
    Column("characters", JSONB, nullable=True),
    Column("settings", JSONB, nullable=True),
    Column("image_backend", String(20), nullable=True),
    Column("width", Integer, nullable=True),
    Column("height", Integer, nullable=True),
    Column("plan", JSONB, nullable=True),
)
# A sequence job always has its request (the columns are nullable only for the other kinds).
job_tables.job.append_constraint(
    CheckConstraint(
        "kind <> 'sequence' OR ("
        + " AND ".join(f"{c} IS NOT NULL" for c in SEQUENCE_COLUMNS)
        + ")",
        name="sequence_request",
    )
)

# A character rig: made by a job of kind "rig" whose id it shares. Its status and error are the
# job's; the built file is an asset (``asset_key``).
rig = Table(
    "rig",
    Base.metadata,
    Column("id", Uuid, primary_key=True),
    Column("project_id", Uuid, nullable=False, index=True),
    Column("owner_id", Uuid, nullable=False),
    Column("shot_id", Uuid, nullable=True),
    # What the rig is made from: {"keypoints": ...}, {"keyframe": ..., "asset_key": ...} or
    # {"asset_key": ...}.
    Column("sheet", JSONB, nullable=False),
    Column("detector", String(40), nullable=False),
    Column("bone_count", Integer, nullable=True),
    Column("hash", CHAR(64), nullable=True),
    Column("keypoints", JSONB, nullable=True),
    Column("asset_key", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
