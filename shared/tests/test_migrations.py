"""Migrations: Alembic only when a revision is pending, against a real Postgres."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from pathlib import Path

import asyncpg
from alembic.script import ScriptDirectory

from storycore_shared.db import asyncpg_dsn
from storycore_shared.migrations import alembic_config, at_head, head_revisions, migrate

REVISION = '''
"""{message}"""
from alembic import op
import sqlalchemy as sa

revision: str = "{revision}"
down_revision: str | None = {down}
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("{table}", sa.Column("id", sa.Integer, primary_key=True), schema="{schema}")


def downgrade() -> None:
    op.drop_table("{table}", schema="{schema}")
'''

ENV = """
from sqlalchemy import Column, Integer, MetaData, Table

from storycore_shared.migrations import run_alembic_env

metadata = MetaData(schema="{schema}")
Table("first", metadata, Column("id", Integer, primary_key=True))
Table("second", metadata, Column("id", Integer, primary_key=True))
run_alembic_env(metadata)
"""


def make_tree(root: Path, schema: str) -> Path:
    (root / "versions").mkdir(parents=True)
    (root / "env.py").write_text(ENV.format(schema=schema))
    for name, revision, down, table in (
        ("1_first", "a1b2c3", "None", "first"),
        ("2_second", "d4e5f6", '"a1b2c3"', "second"),
    ):
        (root / "versions" / f"{name}.py").write_text(
            REVISION.format(message=table, revision=revision, down=down, table=table, schema=schema)
        )
    return root


def test_the_heads_read_from_the_files_are_alembics(tmp_path: Path, unique_name: str):
    tree = make_tree(tmp_path / "migrations", unique_name)
    alembic_heads = ScriptDirectory.from_config(alembic_config(tree, unique_name)).get_heads()
    assert head_revisions(tree) == set(alembic_heads) == {"d4e5f6"}


async def test_a_schema_at_head_starts_without_importing_alembic(
    tmp_path: Path, unique_name: str, postgres_admin_url: str
):
    tree = make_tree(tmp_path / "migrations", unique_name)
    assert not await at_head(postgres_admin_url, unique_name, tree)
    try:
        await migrate(postgres_admin_url, unique_name, tree)
        assert await at_head(postgres_admin_url, unique_name, tree)
        await _starts_without_alembic(postgres_admin_url, unique_name, tree)
    finally:
        conn = await asyncpg.connect(asyncpg_dsn(postgres_admin_url))
        try:
            await conn.execute(f'drop schema if exists "{unique_name}" cascade')
        finally:
            await conn.close()


async def _starts_without_alembic(database_url: str, schema: str, tree: Path) -> None:
    # A process starting on the migrated schema: migrate() finds nothing pending, so Alembic
    # is never imported.
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        from pathlib import Path
        from storycore_shared.migrations import migrate
        asyncio.run(migrate({database_url!r}, {schema!r}, Path({str(tree)!r})))
        print("alembic" in sys.modules)
        """
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, err.decode()
    assert out.decode().strip() == "False", err.decode()
