"""rigs: the rig table, and jobs of a second kind (a rig job has no sequence request columns)

Revision ID: 3e7a95c4d1f2
Revises: 8c3f6a1d2b90
Create Date: 2026-11-28 15:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "3e7a95c4d1f2"
down_revision: str | None = "8c3f6a1d2b90"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "sequences"
SEQUENCE_COLUMNS = ("prompt", "shot_count", "characters", "settings", "image_backend", "width", "height")


def upgrade() -> None:
    # Jobs from before the kit's kind column are sequence jobs.
    op.execute(sa.text(f"UPDATE {SCHEMA}.job SET kind = 'sequence' WHERE kind = ''"))
    for column in SEQUENCE_COLUMNS:
        op.alter_column("job", column, nullable=True, schema=SCHEMA)
    op.create_check_constraint(
        "ck_job_sequence_request",
        "job",
        "kind <> 'sequence' OR (" + " AND ".join(f"{c} IS NOT NULL" for c in SEQUENCE_COLUMNS) + ")",
        schema=SCHEMA,
    )
    op.create_table(
        "rig",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("shot_id", sa.Uuid(), nullable=True),
        sa.Column("sheet", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("detector", sa.String(length=40), nullable=False),
        sa.Column("bone_count", sa.Integer(), nullable=True),
        sa.Column("hash", sa.CHAR(length=64), nullable=True),
        sa.Column("keypoints", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("asset_key", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rig")),
        schema=SCHEMA,
    )
    op.create_index(op.f("ix_sequences_rig_project_id"), "rig", ["project_id"], unique=False, schema=SCHEMA)


def downgrade() -> None:
    op.drop_index(op.f("ix_sequences_rig_project_id"), table_name="rig", schema=SCHEMA)
    op.drop_table("rig", schema=SCHEMA)
    op.execute(sa.text(f"DELETE FROM {SCHEMA}.job WHERE kind <> 'sequence'"))
    op.drop_constraint("ck_job_sequence_request", "job", type_="check", schema=SCHEMA)
    for column in SEQUENCE_COLUMNS:
        op.alter_column("job", column, nullable=False, schema=SCHEMA)
