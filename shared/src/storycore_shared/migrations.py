"""Alembic, one tree per service, run under a Postgres advisory lock.

Replicas that start together all call :func:`migrate`; the first takes the lock and upgrades,
the others wait and then find nothing to do. The version table lives in the service's schema.

Alembic (and Mako) are imported only when a revision is pending: :func:`migrate` first reads
the schema's version table and the revision ids of the tree's files, and a schema already at
head starts without them (about 6 MB less in every process).

A service's ``migrations/env.py`` is two lines::

    from projects.models import Base
    from storycore_shared.migrations import run_alembic_env
    run_alembic_env(Base.metadata)
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
from sqlalchemy import Connection, MetaData, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from storycore_shared.db import asyncpg_dsn, check_identifier, sqlalchemy_url

if TYPE_CHECKING:
    from alembic.config import Config

logger = logging.getLogger(__name__)

FILE_TEMPLATE = "%%(year)d-%%(month).2d-%%(day).2d-%%(hour).2d%%(minute).2d_%%(slug)s"


_REVISION = re.compile(r"^revision\b[^=\n]*=\s*(.+)$", re.MULTILINE)
_DOWN_REVISION = re.compile(r"^down_revision\b[^=\n]*=\s*(.+)$", re.MULTILINE)
_QUOTED = re.compile(r"""['"]([^'"]+)['"]""")


def head_revisions(script_location: Path) -> set[str] | None:
    """The tree's heads, read from its revision files without Alembic (None when a file does
    not read as expected: then Alembic decides)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (script_location / "versions").glob("*.py"):
        source = path.read_text()
        revision, down = _REVISION.search(source), _DOWN_REVISION.search(source)
        ids = _QUOTED.findall(revision.group(1)) if revision else []
        if len(ids) != 1 or down is None:
            return None
        revisions.add(ids[0])
        parents.update(_QUOTED.findall(down.group(1)))
    return revisions - parents


async def at_head(database_url: str, schema: str, script_location: Path) -> bool:
    """True when the schema's version table names exactly the tree's heads."""
    heads = head_revisions(script_location)
    if not heads:
        return False
    conn = await asyncpg.connect(asyncpg_dsn(database_url), timeout=10)
    try:
        table = await conn.fetchval("select to_regclass($1)", f'"{schema}".alembic_version')
        if table is None:
            return False
        rows = await conn.fetch(f'select version_num from "{schema}".alembic_version')
    finally:
        await conn.close()
    return {row["version_num"] for row in rows} == heads


def alembic_config(script_location: Path, schema: str) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    cfg.set_main_option("file_template", FILE_TEMPLATE)
    cfg.attributes["schema"] = schema
    return cfg


async def _with_lock(database_url: str, schema: str, action: Any) -> None:
    check_identifier(schema)
    engine = create_async_engine(
        sqlalchemy_url(database_url),
        poolclass=NullPool,
        # The service's schema is named explicitly everywhere, and must not be the default
        # schema here: autogenerate would then compare it as "no schema" and miss every table.
        connect_args={"server_settings": {"search_path": "public", "timezone": "UTC"}},
    )
    try:
        async with engine.connect() as conn:
            key = {"key": f"storycore.migrate.{schema}"}
            await conn.execute(text("select pg_advisory_lock(hashtext(:key))"), key)
            await conn.commit()
            try:
                exists = await conn.scalar(
                    text("select 1 from pg_namespace where nspname = :s"), {"s": schema}
                )
                if not exists:
                    await conn.execute(text(f'create schema "{schema}"'))
                await conn.run_sync(action)
                await conn.commit()
            finally:
                await conn.rollback()
                await conn.execute(text("select pg_advisory_unlock(hashtext(:key))"), key)
                await conn.commit()
    finally:
        await engine.dispose()


async def migrate(database_url: str, schema: str, script_location: Path) -> None:
    """Upgrade ``schema`` to head, holding the schema's advisory lock for the whole run (not
    even taken when the schema is at head already)."""
    check_identifier(schema)
    if await at_head(database_url, schema, script_location):
        logger.info("migrations.at_head", extra={"schema": schema})
        return

    def upgrade(conn: Connection) -> None:
        from alembic import command

        cfg = alembic_config(script_location, schema)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")

    await _with_lock(database_url, schema, upgrade)
    logger.info("migrations.done", extra={"schema": schema})


async def make_revision(
    database_url: str, schema: str, script_location: Path, message: str
) -> None:
    """Autogenerate a new revision against a database that is at head (a development aid)."""

    def revise(conn: Connection) -> None:
        from alembic import command

        cfg = alembic_config(script_location, schema)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
        command.revision(cfg, message=message, autogenerate=True)

    await _with_lock(database_url, schema, revise)


def run_alembic_env(metadata: MetaData) -> None:
    """Body of every service's ``env.py``: migrate on the locked connection we were handed."""
    from alembic import context

    config = context.config
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError(
            "run migrations with `python3 storycore.py migrate`: it holds the advisory lock"
        )
    schema = metadata.schema
    assert schema is not None

    def include_name(name: str | None, type_: str, _parent: Any) -> bool:
        return name == schema if type_ == "schema" else True

    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table_schema=schema,
        include_schemas=True,
        include_name=include_name,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
