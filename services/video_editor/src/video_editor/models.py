from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
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

SCHEMA = "video_editor"

TRACK_KINDS = ("video", "audio", "text", "overlay")
MEDIA_KINDS = ("video", "audio", "image")
ASPECT_RATIOS = ("16:9", "9:16", "1:1", "4:5", "4:3", "21:9")


class Base(SQLModel, registry=schema_registry(SCHEMA)):
    pass


event_tables = EventTables.on(Base.metadata)
project_replica = project_replica_table(Base.metadata)
rate_limits = rate_limit_table(Base.metadata)
assets_table = asset_table(Base.metadata)
# Exports are the kit's jobs (kind "export"); the request is the job's ``params`` and the export's
# record the ``export`` row of the same id.
job_tables = JobTables.on(Base.metadata)

# A timeline of a StoryCore project; every edit of it or of its tracks and clips bumps
# ``version`` in the same transaction.
timeline = Table(
    "timeline",
    Base.metadata,
    Column("id", Uuid, primary_key=True),
    Column("project_id", Uuid, nullable=False, index=True),
    Column("owner_id", Uuid, nullable=False, index=True),
    Column("name", String(255), nullable=False),
    Column("description", Text, nullable=True),
    Column("aspect_ratio", String(8), nullable=False),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("fps", Float, nullable=False),
    Column("version", Integer, nullable=False, server_default="1"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint(f"aspect_ratio IN {ASPECT_RATIOS!r}", name="timeline_aspect_ratio"),
    CheckConstraint("fps >= 1 AND fps <= 120", name="timeline_fps"),
)

track = Table(
    "track",
    Base.metadata,
    Column("id", Uuid, primary_key=True),
    Column(
        "timeline_id",
        Uuid,
        ForeignKey("timeline.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("kind", String(16), nullable=False),
    Column("name", String(255), nullable=False),
    Column("order", Integer, nullable=False),
    Column("muted", Boolean, nullable=False, server_default="false"),
    Column("locked", Boolean, nullable=False, server_default="false"),
    Column("volume", Float, nullable=False, server_default="1"),
    CheckConstraint(f"kind IN {TRACK_KINDS!r}", name="track_kind"),
)

# Media a timeline uses: uploaded (``source`` upload) or imported by reference (keyframe, audio).
media = Table(
    "media",
    Base.metadata,
    Column("id", Uuid, primary_key=True),
    Column(
        "timeline_id",
        Uuid,
        ForeignKey("timeline.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("project_id", Uuid, nullable=False, index=True),
    Column("owner_id", Uuid, nullable=False),
    Column("kind", String(8), nullable=False),
    Column("name", String(255), nullable=False),
    Column("content_type", String(100), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("duration_seconds", Float, nullable=True),
    Column("width", Integer, nullable=True),
    Column("height", Integer, nullable=True),
    Column("fps", Float, nullable=True),
    Column("has_audio", Boolean, nullable=False, server_default="false"),
    Column("asset_key", Text, nullable=False),
    Column("thumbnail_key", Text, nullable=False),
    Column("source", String(16), nullable=False),
    # What an imported medium came from: {"audio_id": ...} or {"sequence_job_id", "index"}.
    Column("source_ref", JSONB, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint(f"kind IN {MEDIA_KINDS!r}", name="media_kind"),
)

clip = Table(
    "clip",
    Base.metadata,
    Column("id", Uuid, primary_key=True),
    Column(
        "track_id", Uuid, ForeignKey("track.id", ondelete="CASCADE"), nullable=False, index=True
    ),
    Column("timeline_id", Uuid, nullable=False, index=True),
    Column("media_id", Uuid, ForeignKey("media.id", ondelete="SET NULL"), nullable=True),
    Column("text", Text, nullable=True),
    Column("start", Float, nullable=False),
    Column("in_point", Float, nullable=False),
    Column("out_point", Float, nullable=False),
    Column("transition_type", String(16), nullable=True),
    Column("transition_duration", Float, nullable=True),
    Column("ken_burns", JSONB, nullable=True),
    Column("opacity", Float, nullable=False, server_default="1"),
    Column("volume", Float, nullable=False, server_default="1"),
    Column("fade_in", Float, nullable=False, server_default="0"),
    Column("fade_out", Float, nullable=False, server_default="0"),
    # The audio record it played was deleted (audio.deleted): shown as missing media.
    Column("missing_media", Boolean, nullable=False, server_default="false"),
    CheckConstraint("out_point > in_point", name="clip_points"),
    CheckConstraint("start >= 0", name="clip_start"),
)

# The export's record (its status and error are its job's, same id).
export = Table(
    "export",
    Base.metadata,
    Column("id", Uuid, primary_key=True),
    Column("timeline_id", Uuid, nullable=False, index=True),
    Column("project_id", Uuid, nullable=False, index=True),
    Column("owner_id", Uuid, nullable=False),
    Column("preset", String(32), nullable=False),
    Column("format", String(8), nullable=False),
    Column("quality", String(16), nullable=False),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("fps", Float, nullable=False),
    Column("asset_key", Text, nullable=True),
    Column("size", BigInteger, nullable=True),
    Column("duration_seconds", Float, nullable=True),
    Column("video_codec", String(32), nullable=True),
    Column("audio_codec", String(32), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Storyboards available to a project: recorded when ``sequence.generated`` arrives, so the
# frontend can offer "make a timeline from it".
storyboard = Table(
    "storyboard",
    Base.metadata,
    Column("sequence_job_id", Uuid, primary_key=True),
    Column("project_id", Uuid, nullable=False, index=True),
    Column("owner_id", Uuid, nullable=False),
    Column("shot_count", Integer, nullable=False),
    Column("total_duration", Float, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
