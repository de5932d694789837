"""Readiness from the background check, against a real Postgres."""

from __future__ import annotations

from typing import Any

import asyncpg
from sqlalchemy import insert, text
from sqlalchemy.engine import make_url

from storycore_shared.db import asyncpg_dsn, transaction
from storycore_shared.health import DatabaseReadiness
from storycore_testkit.infra.processes import free_port


def _readiness(kit: Any, **kwargs: Any) -> DatabaseReadiness:
    return DatabaseReadiness(
        database_url=kit.database_url, schema=kit.name, name=kit.name, **kwargs
    )


async def test_ready_after_the_first_check_and_counts_dead_letters(kit: Any):
    async with transaction(kit.sessionmaker) as session:
        await session.execute(
            insert(kit.tables.dead_letter).values(
                consumer="c", subject="s", payload="{}", error="e", deliveries=1
            )
        )
    readiness = _readiness(kit)
    assert not readiness.ok  # nothing checked yet
    await readiness.start()
    try:
        assert readiness.ok
        assert readiness.status()["dead_letters"] == 1
        assert readiness.status()["consecutive_failures"] == 0
    finally:
        await readiness.stop()


async def test_unreachable_only_after_several_failed_checks_in_a_row(kit: Any):
    readiness = _readiness(kit, failures_allowed=3, timeout=2)
    await readiness.check()
    assert readiness.ok
    good = readiness.dsn
    # The database goes away: its connection is cut and nothing listens any more.
    readiness.dsn = asyncpg_dsn(
        make_url(kit.database_url).set(host="127.0.0.1", port=free_port()).render_as_string(False)
    )
    await _cut(kit)
    try:
        await readiness.check()
        await readiness.check()
        assert readiness.ok, "two failed checks are not an outage yet"
        assert readiness.status()["consecutive_failures"] == 2
        await readiness.check()
        assert not readiness.ok
        assert readiness.status()["error"]
        readiness.dsn = good
        await readiness.check()  # one good check and it is back
        assert readiness.ok
        assert readiness.status()["consecutive_failures"] == 0
    finally:
        await readiness.stop()


async def test_a_locked_dead_letter_table_is_not_an_outage(kit: Any):
    readiness = _readiness(kit, failures_allowed=1)
    await readiness.check()
    assert readiness.dead_letters == 0
    lock = await asyncpg.connect(asyncpg_dsn(kit.database_url))
    try:
        async with lock.transaction():
            await lock.execute(f'lock table "{kit.name}".dead_letter in access exclusive mode')
            await readiness.check()
            assert readiness.ok
            assert readiness.dead_letters == 0  # the last count stays
    finally:
        await lock.close()
        await readiness.stop()


async def _cut(kit: Any) -> None:
    """Terminate the readiness check's own connection, as a database restart would."""
    async with kit.engine.connect() as conn:
        await conn.execute(
            text(
                "select pg_terminate_backend(pid) from pg_stat_activity "
                "where application_name = :name"
            ),
            {"name": f"{kit.name}-readiness"},
        )
