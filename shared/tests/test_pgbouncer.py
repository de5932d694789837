"""The request pool through a real PgBouncer in transaction mode (``DATABASE_PGBOUNCER``).

PgBouncer hands each transaction whichever server connection is free, so a prepared statement
made in one transaction may be missing (or named twice) in the next, and it refuses startup
parameters it does not know (``search_path``). Here many pooled client connections share two
server connections, with the same statements over and over.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator

import pytest
from pydantic import ValidationError
from sqlalchemy import Column, Integer, MetaData, Table, Text, func, insert, select, text
from sqlalchemy.engine import make_url

from storycore_shared.db import (
    create_engine,
    create_sessionmaker,
    provision_service_role,
    transaction,
)
from storycore_testkit.infra.processes import free_port, port_open, wait_until
from storycore_testkit.infra.servers import PG_SYSTEM_USER
from storycore_testkit.toy_jobs import ToySettings

PGBOUNCER = shutil.which("pgbouncer")
pytestmark = pytest.mark.skipif(
    PGBOUNCER is None,
    reason="no pgbouncer here: `python3 storycore.py test` installs Debian's when run as root",
)
SERVER_CONNECTIONS = 2


@pytest.fixture(scope="module")
def role(postgres_admin_url: str) -> tuple[str, str]:
    name, password = f"pgb_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    asyncio.run(provision_service_role(postgres_admin_url, name, password))
    return name, password


@pytest.fixture(scope="module")
def pgbouncer(
    postgres_admin_url: str, role: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[int]:
    """PgBouncer in transaction mode in front of the test Postgres; its port."""
    assert PGBOUNCER is not None
    server = make_url(postgres_admin_url)
    folder = tmp_path_factory.mktemp("pgbouncer")
    port = free_port()
    name, password = role
    (folder / "users.txt").write_text(f'"{name}" "{password}"\n')
    (folder / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"* = host={server.host} port={server.port}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = md5\nauth_file = {folder / 'users.txt'}\n"
        f"pool_mode = transaction\ndefault_pool_size = {SERVER_CONNECTIONS}\n"
        "max_client_conn = 200\n"
    )
    argv = [PGBOUNCER, str(folder / "pgbouncer.ini")]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # it refuses to run as root
        folder.chmod(0o755)
        for file in folder.iterdir():
            file.chmod(0o644)
        argv[1:1] = ["-u", PG_SYSTEM_USER]
    with (folder / "pgbouncer.log").open("wb") as log:  # says why, if it does not start
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: port_open(port), timeout=10, what="pgbouncer")
            yield port
        finally:
            process.terminate()
            process.wait(timeout=10)


def _settings(url: str, direct: str, **values: object) -> ToySettings:
    return ToySettings(
        DATABASE_URL=url,
        DATABASE_DIRECT_URL=direct,
        NATS_URL="nats://127.0.0.1:9",
        JWKS_URL="http://127.0.0.1:9/unused",
        ENVIRONMENT="test",
        DATABASE_POOL_SIZE=8,
        **values,  # type: ignore[arg-type]
    )


def _url(admin_url: str, role: tuple[str, str], port: int | None = None) -> str:
    url = make_url(admin_url).set(username=role[0], password=role[1])
    if port is not None:
        url = url.set(host="127.0.0.1", port=port)
    return url.render_as_string(hide_password=False)


@pytest.fixture(scope="module")
def notes(role: tuple[str, str]) -> Table:
    return Table(
        "notes",
        MetaData(schema=role[0]),
        Column("id", Integer, primary_key=True),
        Column("body", Text, nullable=False),
    )


@pytest.fixture
async def notes_table(postgres_admin_url: str, role: tuple[str, str], notes: Table) -> None:
    direct = _url(postgres_admin_url, role)
    engine = create_engine(_settings(direct, direct), role[0])
    async with engine.begin() as conn:
        await conn.run_sync(notes.metadata.create_all)
        await conn.execute(notes.delete())
    await engine.dispose()


@pytest.mark.usefixtures("notes_table")
async def test_transactions_through_pgbouncer_share_two_server_connections(
    postgres_admin_url: str,
    role: tuple[str, str],
    pgbouncer: int,
    notes: Table,
) -> None:
    settings = _settings(
        _url(postgres_admin_url, role, pgbouncer),
        _url(postgres_admin_url, role),
        DATABASE_PGBOUNCER=True,
    )
    engine = create_engine(settings, role[0])
    sessions = create_sessionmaker(engine)

    async def one(index: int) -> None:
        async with transaction(sessions) as session:
            await session.execute(insert(notes).values(body=f"note {index}"))
            await session.execute(select(func.count()).select_from(notes))
            # Unqualified: the role's default search_path ("$user") is its schema.
            assert await session.scalar(text("select count(*) from notes")) is not None

    try:
        await asyncio.gather(*(one(i) for i in range(200)))
        async with transaction(sessions) as session:
            assert await session.scalar(select(func.count()).select_from(notes)) == 200
            assert await session.scalar(text("select current_schema()")) == role[0]
    finally:
        await engine.dispose()


async def test_without_the_setting_pgbouncer_refuses_the_pool(
    postgres_admin_url: str, role: tuple[str, str], pgbouncer: int
) -> None:
    """The control: the ordinary pool's connect parameters do not pass PgBouncer."""
    through = _url(postgres_admin_url, role, pgbouncer)
    engine = create_engine(_settings(through, through), role[0])
    try:
        with pytest.raises(Exception, match="search_path"):
            async with transaction(create_sessionmaker(engine)) as session:
                await session.execute(text("select 1"))
    finally:
        await engine.dispose()


def test_the_setting_requires_a_direct_url() -> None:
    with pytest.raises(ValidationError, match="DATABASE_DIRECT_URL"):
        ToySettings(
            DATABASE_URL="postgresql://x:y@127.0.0.1:6432/db",
            DATABASE_PGBOUNCER=True,
            NATS_URL="nats://127.0.0.1:9",
            JWKS_URL="http://127.0.0.1:9/unused",
        )
