"""The request pool against a real Postgres."""

from __future__ import annotations

from typing import Any

import asyncpg
from sqlalchemy import text

from storycore_shared.config import ServiceSettings
from storycore_shared.db import asyncpg_dsn, create_engine
from storycore_testkit.polling import eventually


async def test_a_connection_the_server_closed_is_never_handed_out(postgres_admin_url: str):
    settings = ServiceSettings(
        DATABASE_URL=postgres_admin_url,
        NATS_URL="nats://127.0.0.1:4222",
        JWKS_URL="http://127.0.0.1/jwks",
        DATABASE_POOL_SIZE=1,
        DATABASE_MAX_OVERFLOW=0,
    )
    engine = create_engine(settings, "public")
    admin = await asyncpg.connect(asyncpg_dsn(postgres_admin_url))
    try:
        async with engine.connect() as conn:
            raw: Any = (await conn.get_raw_connection()).driver_connection
            first = await conn.scalar(text("select pg_backend_pid()"))
        # The only pooled connection's server side goes away (as in a database restart).
        await admin.execute("select pg_terminate_backend($1)", first)

        async def seen_closed() -> bool:
            return bool(raw.is_closed())

        await eventually(seen_closed, within=5, what="the client saw the connection close")
        async with engine.connect() as conn:  # no ping round trip, and no error either
            second = await conn.scalar(text("select pg_backend_pid()"))
        assert second != first
    finally:
        await admin.close()
        await engine.dispose()
