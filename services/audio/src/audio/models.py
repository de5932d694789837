from __future__ import annotations

from sqlalchemy import (
    CheckConstraint,
    Column,
    DateTime,
    Float,
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

SCHEMA = "audio"

AUDIO_TYPES = ("voice", "music", "sfx", "ambient", "mix", "stem")
FORMATS = ("wav", "flac", "mp3", "ogg")


class Base(SQLModel, registry=schema_registry(SCHEMA)):
    pass


event_tables = EventTables.on(Base.metadata)
project_replica = project_replica_table(Base.metadata)
rate_limits = rate_limit_table(Base.metadata)
assets_table = asset_table(Base.metadata)
# The service's jobs: kind "generate" (one record, same id), "multitrack" (its stems; the job's
# id is the multitrack id) and "mix" (one record, same id). The request is the kit's ``params``.
job_tables = JobTables.on(Base.metadata)

# One audio file: what was asked (``profile``) and, once rendered, what was measured on it.
# Its status and error are its job's (``job_id``).
audio = Table(
    "audio",
    Base.metadata,
    Column("id", Uuid, primary_key=True),
    Column("project_id", Uuid, nullable=False, index=True),
    Column("owner_id", Uuid, nullable=False, index=True),
    Column("job_id", Uuid, nullable=False, index=True),
    Column("type", String(16), nullable=False),
    Column("name", String(64), nullable=True),  # a stem's name (base, melody, ...)
    Column("multitrack_id", Uuid, nullable=True),
    Column("format", String(8), nullable=False),
    Column("bit_depth", Integer, nullable=False),
    Column("sample_rate", Integer, nullable=False),
    Column("channels", Integer, nullable=False),
    Column("profile", JSONB, nullable=True),
    Column("duration_seconds", Float, nullable=True),
    Column("file_size_bytes", Integer, nullable=True),
    Column("loudness_lufs", Float, nullable=True),
    Column("peak_dbfs", Float, nullable=True),
    Column("asset_key", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint(f"type IN {AUDIO_TYPES!r}", name="audio_type"),
    CheckConstraint(f"format IN {FORMATS!r}", name="audio_format"),
)

# An automix result: the tracks' categories, priorities, levels and effects, the master and
# the ducking; ``export-mix`` renders it.
mix_configuration = Table(
    "mix_configuration",
    Base.metadata,
    Column("id", Uuid, primary_key=True),
    Column("project_id", Uuid, nullable=False, index=True),
    Column("owner_id", Uuid, nullable=False),
    Column("configuration", JSONB, nullable=False),
    Column("warnings", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
