"""jobs move onto the shared job kit: kind, params, checkpoint, heartbeat

Revision ID: 5b1d0c2e9a47
Revises: ffe4e1eca8a3
Create Date: 2026-11-28 13:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "5b1d0c2e9a47"
down_revision: str | None = "ffe4e1eca8a3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "sequences"


def upgrade() -> None:
    op.add_column("job", sa.Column("kind", sa.String(40), server_default="", nullable=False), schema=SCHEMA)
    op.add_column(
        "job",
        sa.Column("params", postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
        schema=SCHEMA,
    )
    op.add_column(
        "job",
        sa.Column("checkpoint", postgresql.JSONB(), server_default=sa.text("'{}'::jsonb"), nullable=False),
        schema=SCHEMA,
    )
    op.add_column("job", sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True), schema=SCHEMA)
    for column, default in [
        ("status", sa.text("'pending'")),
        ("progress", sa.text("0")),
        ("current_step", sa.text("'queued'")),
        ("attempt", sa.text("0")),
        ("event_seq", sa.text("0")),
        ("created_at", sa.text("now()")),
        ("updated_at", sa.text("now()")),
    ]:
        op.alter_column("job", column, server_default=default, schema=SCHEMA)
    op.alter_column("job_event", "created_at", server_default=sa.text("now()"), schema=SCHEMA)


def downgrade() -> None:
    for column in ("heartbeat_at", "checkpoint", "params", "kind"):
        op.drop_column("job", column, schema=SCHEMA)
