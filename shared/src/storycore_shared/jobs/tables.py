"""The tables every job-running service has: ``job``, ``job_event`` and ``stream_ticket``.

``shared`` declares no table itself; a service makes these concrete on its own metadata, adding
the columns its jobs need beside the common ones::

    job_tables = JobTables.on(
        Base.metadata,
        Column("prompt", Text, nullable=False),
        Column("plan", JSONB, nullable=True),
    )
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

PENDING, PROCESSING = "pending", "processing"
COMPLETED, FAILED, CANCELLED = "completed", "failed", "cancelled"
ACTIVE = frozenset({PENDING, PROCESSING})
TERMINAL = frozenset({COMPLETED, FAILED, CANCELLED})


@dataclass(frozen=True)
class JobTables:
    job: Table
    job_event: Table
    stream_ticket: Table

    @classmethod
    def on(cls, metadata: MetaData, *extra: Column[object]) -> JobTables:
        """Declare the job tables on ``metadata``; ``extra`` columns go on ``job``."""
        job = Table(
            "job",
            metadata,
            Column("id", Uuid, primary_key=True),
            Column("project_id", Uuid, nullable=False, index=True),
            Column("owner_id", Uuid, nullable=False),
            Column("kind", String(40), nullable=False, server_default=""),
            Column("status", String(20), nullable=False, server_default=PENDING),
            Column("progress", Integer, nullable=False, server_default="0"),
            Column("current_step", String(255), nullable=False, server_default="queued"),
            # The job's input, for jobs whose service keeps it as one document.
            Column("params", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
            # What finished steps left behind, so a redelivered job resumes instead of redoing.
            Column("checkpoint", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
            Column("result", JSONB, nullable=True),
            Column("error", Text, nullable=True),
            # Bumped by every claim; a worker's writes name its attempt (compare-and-set).
            Column("attempt", Integer, nullable=False, server_default="0"),
            Column("event_seq", Integer, nullable=False, server_default="0"),
            # Refreshed by the worker while it runs: a stale one means no worker holds the job.
            Column("heartbeat_at", DateTime(timezone=True), nullable=True),
            Column(
                "created_at", DateTime(timezone=True), nullable=False, server_default=func.now()
            ),
            Column("started_at", DateTime(timezone=True), nullable=True),
            Column("completed_at", DateTime(timezone=True), nullable=True),
            Column(
                "updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()
            ),
            *extra,
            Index("ix_job_owner_created", "owner_id", "created_at"),
        )
        job_event = Table(
            "job_event",
            metadata,
            Column("job_id", Uuid, primary_key=True),
            Column("seq", Integer, primary_key=True),
            Column("status", String(20), nullable=False),
            Column("progress", Integer, nullable=False),
            Column("current_step", String(255), nullable=False),
            Column(
                "created_at", DateTime(timezone=True), nullable=False, server_default=func.now()
            ),
        )
        stream_ticket = Table(
            "stream_ticket",
            metadata,
            Column("ticket_hash", String(64), primary_key=True),
            Column("job_id", Uuid, nullable=False),
            Column("user_id", Uuid, nullable=False),
            Column("expires_at", DateTime(timezone=True), nullable=False),
            Column("used_at", DateTime(timezone=True), nullable=True),
        )
        return cls(job=job, job_event=job_event, stream_ticket=stream_ticket)
