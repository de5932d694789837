"""keyframes become assets: the asset table (owner, project, size, hash) of the shared kit

Revision ID: 8c3f6a1d2b90
Revises: 5b1d0c2e9a47
Create Date: 2026-11-28 14:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "8c3f6a1d2b90"
down_revision: str | None = "5b1d0c2e9a47"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "sequences"


def upgrade() -> None:
    op.create_table(
        "asset",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=True),
        sa.Column("content_type", sa.String(length=255), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.CHAR(length=64), nullable=False),
        sa.Column("filename", sa.Text(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_asset")),
        schema=SCHEMA,
    )
    op.create_index(
        op.f("ix_sequences_asset_project_id"), "asset", ["project_id"], unique=False, schema=SCHEMA
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_sequences_asset_project_id"), table_name="asset", schema=SCHEMA)
    op.drop_table("asset", schema=SCHEMA)
