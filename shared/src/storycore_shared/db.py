"""Async database access: engine, one session per request, per-service schema and roles.

Each service owns one schema and connects as a role of the same name that owns that schema and
has no rights on any other. Its SQLModel tables hang off its own metadata::

    class Base(SQLModel, registry=schema_registry("projects")):
        pass

    class Project(Base, table=True): ...
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, cast

import asyncpg
from fastapi import Depends, Request
from sqlalchemy import Executable, MetaData, event
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import DisconnectionError, ResourceClosedError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import registry
from sqlalchemy.pool import ConnectionPoolEntry

from storycore_shared.config import ServiceSettings
from storycore_shared.errors import ServiceError

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """Now, timezone-aware UTC (every timestamp column is ``timestamptz``)."""
    return datetime.now(UTC)


def check_identifier(name: str) -> str:
    """Schema and role names are interpolated into DDL, so they must be plain identifiers."""
    if not _IDENTIFIER.match(name):
        raise ValueError(f"not a safe SQL identifier: {name!r}")
    return name


def schema_registry(schema: str) -> registry:
    """A mapper registry whose tables live in ``schema``, on metadata of their own."""
    metadata = MetaData(schema=check_identifier(schema), naming_convention=NAMING_CONVENTION)
    return registry(metadata=metadata)


def sqlalchemy_url(url: str) -> str:
    """Accept ``postgresql://`` or ``postgres://`` and pin the asyncpg driver."""
    parsed = make_url(url)
    return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def asyncpg_dsn(url: str) -> str:
    """The same URL for asyncpg itself (no ``+driver`` part)."""
    parsed = make_url(url)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def _unique_statement_name() -> str:
    return f"__asyncpg_{uuid.uuid4().hex}__"


def connect_args(settings: ServiceSettings, schema: str) -> dict[str, Any]:
    """asyncpg's connect arguments for the request pool (see DATABASE_PGBOUNCER)."""
    timeout = settings.DATABASE_TIMEOUT_SECONDS
    server_settings = {"application_name": settings.SERVICE_NAME, "timezone": "UTC"}
    # A statement asyncpg prepared while its table was a few rows keeps the plan made for that
    # size (a sequential scan) until the next ANALYZE; prepared again after this long, it is
    # planned for the table as it is (storycore_shared.events.relay.STATEMENT_LIFETIME_SECONDS).
    args: dict[str, Any] = {
        "timeout": timeout,
        "command_timeout": timeout * 6,
        "max_cached_statement_lifetime": 30,
    }
    if settings.DATABASE_PGBOUNCER:
        # No statement outlives its transaction, and names never collide on a server
        # connection another client used before (asyncpg's FAQ; SQLAlchemy's asyncpg notes).
        args |= {
            "statement_cache_size": 0,
            "prepared_statement_cache_size": 0,
            "prepared_statement_name_func": _unique_statement_name,
        }
    else:
        server_settings["search_path"] = check_identifier(schema)
    return args | {"server_settings": server_settings}


def create_engine(settings: ServiceSettings, schema: str) -> AsyncEngine:
    engine = create_async_engine(
        sqlalchemy_url(settings.DATABASE_URL),
        pool_size=settings.DATABASE_POOL_SIZE,
        max_overflow=settings.DATABASE_MAX_OVERFLOW,
        pool_timeout=settings.DATABASE_POOL_TIMEOUT_SECONDS,
        # The connection used last is handed out first. In first-in-first-out order, once a
        # burst has opened the whole pool, one client's requests go round every connection,
        # each to the backend idle the longest: an update at c = 1 then took a p50 of 3.7-4.1
        # ms instead of 2.1, and 1.6-1.8 times the CPU over the stack (docs/benchmarks.md).
        pool_use_lifo=True,
        # Not SQLAlchemy's ping (three round trips on asyncpg: BEGIN, ";", ROLLBACK, for every
        # request): a connection the server has closed is known without asking (below).
        pool_pre_ping=False,
        connect_args=connect_args(settings, check_identifier(schema)),
    )
    event.listen(engine.sync_engine, "checkout", _drop_closed_connection)
    return engine


def _drop_closed_connection(
    _dbapi_connection: object, record: ConnectionPoolEntry, _proxy: object
) -> None:
    """A pooled connection whose server side went away (a database restart) has seen its
    socket close already: the pool replaces it instead of handing it to a request."""
    driver = record.driver_connection
    if isinstance(driver, asyncpg.Connection) and driver.is_closed():
        raise DisconnectionError("the server closed this pooled connection")


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


@asynccontextmanager
async def transaction(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """A session that commits when the block succeeds and rolls back when it raises."""
    async with sessionmaker() as session:
        try:
            yield session
        except ServiceError as exc:
            if exc.commit_session:
                await session.commit()
            else:
                await session.rollback()
            raise
        except BaseException:
            await session.rollback()
            raise
        else:
            await session.commit()


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    # Imported here because the app module builds on this one.
    from storycore_shared.app import runtime_of

    async with transaction(runtime_of(request).sessionmaker) as session:
        yield session


# scope="function": commit happens when the route returns, before the answer is sent, so a
# client that got 201 can read its write at once.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


class Prepared:
    """A SQLAlchemy Core statement compiled once per dialect and run on asyncpg's own connection.

    For the hot routes: the statement is still built from the service's tables, and SQLAlchemy
    still compiles it and converts its bound values (``bind_processor``: JSON to text, say), but
    running it skips the session, the execution context and the ``Result``, about 0.2 ms of CPU
    per statement. asyncpg prepares it once per connection and decodes the row itself, with the
    JSON codecs SQLAlchemy's dialect installs on every connection; the column types of a prepared
    statement must need no result processing (a test compares both paths' rows). Statements with
    expanding (``IN``) or literal-execute parameters are refused.
    """

    def __init__(self, statement: Executable) -> None:
        self.statement = statement
        self._compiled: dict[int, _Compiled] = {}

    def compiled(self, dialect: Dialect) -> _Compiled:
        compiled = self._compiled.get(id(dialect))
        if compiled is None:
            compiled = self._compiled[id(dialect)] = _Compiled.of(self.statement, dialect)
        return compiled


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]
    # Values of the parameters the statement binds itself (literals), by name.
    defaults: Mapping[str, Any]
    processors: Mapping[str, Callable[[Any], Any]]

    @classmethod
    def of(cls, statement: Executable, dialect: Dialect) -> _Compiled:
        compiled = statement.compile(dialect=dialect)  # type: ignore[attr-defined]
        if dialect.paramstyle != "numeric_dollar" or compiled.positiontup is None:
            raise ValueError(f"Prepared needs asyncpg's positional parameters, not {dialect.name}")
        defaults: dict[str, Any] = {}
        processors: dict[str, Callable[[Any], Any]] = {}
        for name, bind in compiled.binds.items():
            if bind.expanding or bind.literal_execute or bind.callable is not None:
                raise ValueError(f"Prepared cannot bind {name!r} (expanding or deferred)")
            if not bind.required:
                defaults[name] = bind.value
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                processors[name] = processor
        return cls(compiled.string, tuple(compiled.positiontup), defaults, processors)

    def arguments(self, parameters: Mapping[str, Any]) -> list[Any]:
        values = []
        for name in self.names:
            value = parameters[name] if name in parameters else self.defaults[name]
            processor = self.processors.get(name)
            values.append(value if processor is None else processor(value))
        return values


class DriverConnection:
    """asyncpg's connection of a pooled SQLAlchemy connection, for :class:`Prepared` statements.

    A route's connection is checked out of the pool by its first statement, not before: a
    request that fails its validation or its token check never waits for, or holds, one.
    Outside a transaction (``DriverConnectionDep``) each statement commits on its own: a route
    whose write is one statement with its event (``outbox.insert_with_event``,
    ``outbox.returning_with_event``) makes no ``BEGIN`` and ``COMMIT`` round trips and holds a
    row lock only while it runs.
    """

    __slots__ = ("_connection", "_open", "dialect")

    def __init__(
        self,
        dialect: Dialect,
        *,
        connection: asyncpg.Connection | None = None,
        open_connection: Callable[[], Awaitable[asyncpg.Connection]] | None = None,
    ) -> None:
        self.dialect = dialect
        self._connection = connection
        self._open = open_connection

    @classmethod
    async def of(cls, connection: AsyncConnection | AsyncSession) -> DriverConnection:
        """The driver connection under ``connection`` (or a session's), inside whatever
        transaction it has begun; a test's rolled-back session, for one."""
        if isinstance(connection, AsyncSession):
            connection = await connection.connection()
        driver: asyncpg.Connection = (await connection.get_raw_connection()).driver_connection
        if connection.in_transaction() and not driver.is_in_transaction():
            # SQLAlchemy's adapter sends BEGIN with the first statement it runs itself.
            await connection.exec_driver_sql("select 1")
        return cls(connection.dialect, connection=driver)

    async def fetchrow(
        self, statement: Prepared, parameters: Mapping[str, Any]
    ) -> asyncpg.Record | None:
        connection = self._connection or await self._connect()
        compiled = statement.compiled(self.dialect)
        return await connection.fetchrow(compiled.sql, *compiled.arguments(parameters))

    async def fetch(
        self, statement: Prepared, parameters: Mapping[str, Any]
    ) -> list[asyncpg.Record]:
        connection = self._connection or await self._connect()
        compiled = statement.compiled(self.dialect)
        rows: list[asyncpg.Record] = await connection.fetch(
            compiled.sql, *compiled.arguments(parameters)
        )
        return rows

    async def executemany(self, statement: Prepared, rows: Sequence[Mapping[str, Any]]) -> None:
        """``statement`` once per row, in one round trip (asyncpg pipelines the executions)."""
        connection = self._connection or await self._connect()
        compiled = statement.compiled(self.dialect)
        await connection.executemany(compiled.sql, [compiled.arguments(row) for row in rows])

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """A transaction (a savepoint inside one): committed at the end of the block, rolled
        back if it raises."""
        async with (self._connection or await self._connect()).transaction():
            yield

    async def _connect(self) -> asyncpg.Connection:
        if self._open is None:
            raise RuntimeError("this driver connection has nothing to connect with")
        self._connection = await self._open()
        return self._connection


async def fetchrow(
    db: AsyncSession | DriverConnection, statement: Prepared, parameters: Mapping[str, Any]
) -> Mapping[str, Any] | None:
    """``statement``'s first row, by column name, on a driver connection or through a session
    (for code that serves both: a replica's lookups, in a route and in an event handler)."""
    if isinstance(db, DriverConnection):
        return await db.fetchrow(statement, parameters)
    result = await db.execute(statement.statement, parameters)
    try:
        return cast("Mapping[str, Any] | None", result.mappings().first())
    except ResourceClosedError:  # a statement without RETURNING
        return None


async def fetchall(
    db: AsyncSession | DriverConnection, statement: Prepared, parameters: Mapping[str, Any]
) -> list[Mapping[str, Any]]:
    """``statement``'s rows, by column name, on a driver connection or through a session."""
    if isinstance(db, DriverConnection):
        return list(await db.fetch(statement, parameters))
    result = await db.execute(statement.statement, parameters)
    return cast("list[Mapping[str, Any]]", result.mappings().all())


async def executemany(
    db: AsyncSession | DriverConnection, statement: Prepared, rows: Sequence[Mapping[str, Any]]
) -> None:
    """``statement`` once for each of ``rows``, on a driver connection or through a session
    (SQLAlchemy's executemany)."""
    if not rows:
        return
    if isinstance(db, DriverConnection):
        await db.executemany(statement, rows)
    else:
        await db.execute(statement.statement, list(rows))


@asynccontextmanager
async def pooled_driver_connection(engine: AsyncEngine) -> AsyncIterator[DriverConnection]:
    """A :class:`DriverConnection` checked out of ``engine``'s pool (with its limits and its
    check) by its first statement, and back in at the end of the block."""
    async with contextlib.AsyncExitStack() as opened:

        async def open_connection() -> asyncpg.Connection:
            pooled = await opened.enter_async_context(engine.connect())
            driver: asyncpg.Connection = (await pooled.get_raw_connection()).driver_connection
            return driver

        yield DriverConnection(engine.dialect, open_connection=open_connection)


async def get_driver_connection(request: Request) -> AsyncIterator[DriverConnection]:
    from storycore_shared.app import runtime_of

    async with pooled_driver_connection(runtime_of(request).engine) as connection:
        yield connection


# Each statement commits on its own; ``connection.transaction()`` groups statements.
DriverConnectionDep = Annotated[DriverConnection, Depends(get_driver_connection, scope="function")]


def new_list() -> list[Any]:
    """``default_factory`` for a list column of a SQLModel table. Pydantic inspects a factory's
    signature on every construction of a table model, and for the builtin ``list`` (whose
    signature is parsed from text) that costs about 0.2 ms each time; for a function, 7 us."""
    return []


async def provision_service_role(admin_dsn: str, role: str, password: str) -> None:
    """Create (or re-key) the login role ``role`` owning schema ``role``, with no other rights.

    Used by the dev stack and the test fixtures; compose does the same in its init script.
    """
    check_identifier(role)
    conn = await asyncpg.connect(asyncpg_dsn(admin_dsn))
    try:
        database = await conn.fetchval("select current_database()")
        exists = await conn.fetchval("select 1 from pg_roles where rolname = $1", role)
        verb = "alter" if exists else "create"
        # Passwords cannot be bound parameters in DDL; quote them with Postgres's own literal.
        literal = await conn.fetchval("select quote_literal($1)", password)
        await conn.execute(f'{verb} role "{role}" with login password {literal}')
        await conn.execute(f'create schema if not exists "{role}" authorization "{role}"')
        await conn.execute(f'alter schema "{role}" owner to "{role}"')
        await conn.execute(f'revoke all on schema "{role}" from public')
        await conn.execute(f'grant connect on database "{database}" to "{role}"')
        await conn.execute("revoke create on schema public from public")
    finally:
        await conn.close()
