"""A replica of projects for services that own project-scoped data (shots, locations, ...).

It is fed by ``project.created/updated/deleted`` and answers "does this project exist, who owns
it, is it public" without a call to the projects service. On a miss (the event has not arrived
yet, e.g. a shot added right after its project was created) it asks the projects service once,
over internal HTTP, **forwarding the caller's own bearer token** (``Principal.token``): the
projects service then applies its own rules (owner, or public for reads) and answers 404 for
anything else, so no service credential exists that could read every project.

:meth:`ProjectDirectory.require` is the one project guard: it returns the project or raises the
shared ``ProjectNotFound`` (404; also for another user's private project) or ``ProjectReadOnly``
(403, a write to someone else's public project)::

    directory = ProjectDirectory(project_replica_table(Base.metadata), settings.PROJECTS_URL)
    project = await directory.require(session, project_id, principal, write=True)

Events are applied by version, and a deleted project leaves a tombstone, so a late or
redelivered event can never resurrect it.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Protocol, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Integer,
    MetaData,
    Select,
    String,
    Table,
    Uuid,
    bindparam,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from storycore_shared import outbound
from storycore_shared.auth import Principal
from storycore_shared.db import DriverConnection, Prepared, executemany, fetchrow
from storycore_shared.errors import (
    ProjectNotFound,
    ProjectReadOnly,
    ServiceUnavailable,
    UpstreamError,
    UpstreamTimeout,
)
from storycore_shared.events.consumer import Batched, EventConsumer
from storycore_shared.events.contracts import projects as project_events
from storycore_shared.events.contracts.projects import (
    ProjectCreated,
    ProjectDeleted,
    ProjectState,
    ProjectUpdated,
)

if TYPE_CHECKING:
    from storycore_shared.app import Runtime

logger = logging.getLogger(__name__)


def project_replica_table(metadata: MetaData) -> Table:
    return Table(
        "project_replica",
        metadata,
        Column("id", Uuid, primary_key=True),
        Column("owner_id", Uuid, nullable=False),
        Column("is_public", Boolean, nullable=False),
        Column("name", String(255), nullable=False),
        Column("status", String(20), nullable=False),
        Column("version", Integer, nullable=False),
        Column("resolution_width", Integer, nullable=False, server_default="1920"),
        Column("resolution_height", Integer, nullable=False, server_default="1080"),
        Column("deleted_at", DateTime(timezone=True), nullable=True),
        Column("synced_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


@dataclass(frozen=True)
class ProjectView:
    id: uuid.UUID
    owner_id: uuid.UUID
    is_public: bool
    name: str
    status: str
    version: int
    resolution_width: int = 1920
    resolution_height: int = 1080


class OwnedProject(Protocol):
    """What the access rule reads of a project: a replica's view or the projects table's row."""

    @property
    def owner_id(self) -> uuid.UUID: ...

    @property
    def is_public(self) -> bool: ...


ProjectT = TypeVar("ProjectT", bound=OwnedProject)


def check_access(
    project: ProjectT | None, project_id: uuid.UUID, principal: Principal, *, write: bool
) -> ProjectT:
    """The project when ``principal`` may read it (its owner's, or public), and with ``write``
    change it (its owner's); else ``ProjectNotFound`` (404) or ``ProjectReadOnly`` (403).
    """
    if project is None or not (project.is_public or project.owner_id == principal.user_id):
        raise ProjectNotFound(f"No project {project_id}.")
    if write and project.owner_id != principal.user_id:
        raise ProjectReadOnly("Only the project's owner can change it or what belongs to it.")
    return project


class ProjectAnswer(BaseModel):
    """The projects service's answer to ``GET /api/projects/{id}``, as far as a replica uses it.

    Other fields of the answer are ignored; a missing or malformed one is a bad upstream answer.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: uuid.UUID
    owner_id: uuid.UUID
    name: Annotated[str, Field(max_length=255)]
    is_public: bool
    status: Annotated[str, Field(min_length=1, max_length=20)]
    version: Annotated[int, Field(ge=1)]
    resolution_width: Annotated[int, Field(ge=1)]
    resolution_height: Annotated[int, Field(ge=1)]

    def state(self) -> ProjectState:
        return ProjectState(project_id=self.id, **self.model_dump())


Cascade = Callable[[AsyncSession, ProjectDeleted], Awaitable[None]]


# The replica columns an event sets (``synced_at`` and ``deleted_at`` are the replica's own).
_STATE = (
    "id",
    "owner_id",
    "is_public",
    "name",
    "status",
    "version",
    "resolution_width",
    "resolution_height",
)


# What a lookup answers, in ProjectView's order.
_VIEW = tuple(field.name for field in dataclasses.fields(ProjectView))


def _state_row(data: ProjectState) -> dict[str, object]:
    return {name: getattr(data, name) for name in _STATE}


class ProjectDirectory:
    def __init__(self, table: Table, projects_url: str, *, timeout: float = 2.0) -> None:
        self.table = table
        self.projects_url = projects_url.rstrip("/")
        self.timeout = timeout

    async def refusal(
        self, session: AsyncSession, project_id: uuid.UUID, owner_id: uuid.UUID
    ) -> str | None:
        """Why the replica says ``owner_id`` may not work in ``project_id`` for a command from
        the projects service (a production's), or None.

        A project the replica does not know yet passes (its ``project.created`` may still be on
        its way): the command's project and owner are the projects service's own word. The
        replica only catches a contradiction: another owner, or a project deleted since.
        """
        row = (
            await session.execute(
                select(self.table.c.owner_id, self.table.c.deleted_at).where(
                    self.table.c.id == project_id
                )
            )
        ).first()
        if row is None:
            return None
        if row.deleted_at is not None:
            return f"project {project_id} was deleted"
        if row.owner_id != owner_id:
            return f"project {project_id} is not the owner's"
        return None

    # -- events ------------------------------------------------------------------------------

    async def apply(self, db: AsyncSession | DriverConnection, data: ProjectState) -> None:
        """Upsert a project's state unless we already hold a newer one or a tombstone."""
        await fetchrow(db, self._upsert, _state_row(data))

    async def apply_many(
        self, db: AsyncSession | DriverConnection, states: list[ProjectState]
    ) -> None:
        """:meth:`apply` for a run of states: only each project's newest is written (the upsert
        would skip the older ones anyway), in one executemany."""
        newest: dict[uuid.UUID, ProjectState] = {}
        for data in states:
            if data.id not in newest or data.version > newest[data.id].version:
                newest[data.id] = data
        await executemany(db, self._upsert, [_state_row(data) for data in newest.values()])

    @functools.cached_property
    def _upsert(self) -> Prepared:
        """The upsert, built once (its parameters are bound per event): building and hashing a
        statement per event cost more than running it."""
        statement = insert(self.table).values({name: bindparam(name) for name in _STATE})
        excluded = statement.excluded
        return Prepared(
            statement.on_conflict_do_update(
                index_elements=[self.table.c.id],
                set_={**{k: excluded[k] for k in _STATE if k != "id"}, "synced_at": func.now()},
                where=(self.table.c.version < excluded.version) & self.table.c.deleted_at.is_(None),
            )
        )

    async def tombstone(self, session: AsyncSession, data: ProjectDeleted) -> None:
        statement = insert(self.table).values(
            id=data.id,
            owner_id=data.owner_id,
            is_public=False,
            name="",
            status="deleted",
            version=0,
            deleted_at=func.now(),
        )
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=[self.table.c.id],
                set_={"deleted_at": func.now(), "is_public": False},
            )
        )

    def handlers(
        self, on_deleted: Cascade
    ) -> dict[type, Callable[[AsyncSession, Any], Awaitable[None]]]:
        """Consumer handlers: keep the replica, and run ``on_deleted`` to cascade a delete."""

        async def deleted(session: AsyncSession, data: ProjectDeleted) -> None:
            await self.tombstone(session, data)
            await on_deleted(session, data)

        states = Batched(self.apply, self.apply_many, driver=True)
        return {ProjectCreated: states, ProjectUpdated: states, ProjectDeleted: deleted}

    def consumer(self, runtime: Runtime, *, name: str, on_deleted: Cascade) -> EventConsumer:
        """The durable consumer that keeps this replica (and runs the service's cascade)."""
        return EventConsumer(
            name=name,
            stream=project_events.STREAM,
            handlers=self.handlers(on_deleted),
            sessionmaker=runtime.sessionmaker,
            tables=runtime.tables,
            broker=runtime.broker,
            linger=runtime.settings.REPLICA_LINGER_SECONDS,
        )

    # -- lookups -----------------------------------------------------------------------------

    async def require(
        self,
        session: AsyncSession | DriverConnection,
        project_id: uuid.UUID,
        principal: Principal,
        *,
        write: bool,
        lock: bool | None = None,
    ) -> ProjectView:
        """The project guard: the project ``principal`` may read (or, with ``write``, change).

        Raises ``ProjectNotFound`` (404), also for another user's private project, or
        ``ProjectReadOnly`` (403). ``lock`` defaults to ``write``: see :meth:`get`.
        """
        project = await self.get(
            session, project_id, principal=principal, lock=write if lock is None else lock
        )
        return check_access(project, project_id, principal, write=write)

    async def get(
        self,
        session: AsyncSession | DriverConnection,
        project_id: uuid.UUID,
        *,
        principal: Principal | None = None,
        lock: bool = False,
    ) -> ProjectView | None:
        """The project, or None when it does not exist (or the caller may not see it).

        On a miss the projects service is asked once, with the caller's own token
        (``principal.token``), so it applies its own rules. ``lock`` holds the replica row
        until the transaction ends, which serialises writers of one project (ordering shots,
        racing a delete). This does not check access: use :meth:`require` for that.
        """
        row = await self._row(session, project_id, lock=lock)
        if row is None:
            token = principal.token if principal is not None else None
            fetched = await self._fetch(project_id, f"Bearer {token}" if token else None)
            if fetched is None:
                return None
            await self.apply(session, fetched)
            row = await self._row(session, project_id, lock=lock)
            if row is None:  # pragma: no cover - the upsert above just wrote it
                return None
        if row["deleted_at"] is not None:
            return None
        return ProjectView(*(row[name] for name in _VIEW))

    async def _row(
        self, db: AsyncSession | DriverConnection, project_id: uuid.UUID, *, lock: bool
    ) -> Mapping[str, Any] | None:
        return await fetchrow(
            db, self._select_locked if lock else self._select, {"project_id": project_id}
        )

    @functools.cached_property
    def _select(self) -> Prepared:
        return Prepared(self._lookup)

    @functools.cached_property
    def _select_locked(self) -> Prepared:
        return Prepared(self._lookup.with_for_update())

    @functools.cached_property
    def _lookup(self) -> Select[Any]:
        return select(self.table).where(self.table.c.id == bindparam("project_id"))

    async def _fetch(self, project_id: uuid.UUID, authorization: str | None) -> ProjectState | None:
        if not authorization:
            return None
        url = f"{self.projects_url}/api/projects/{project_id}"
        try:
            async with outbound.client(timeout=self.timeout) as client:
                answer = await client.get(url, headers={"Authorization": authorization})
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout("The projects service did not answer in time.") from exc
        except httpx.HTTPError as exc:
            raise ServiceUnavailable("The projects service is unreachable.") from exc
        if answer.status_code == 404:
            return None
        if answer.status_code != 200:
            logger.warning("replica.projects.fetch_failed", extra={"status": answer.status_code})
            if answer.status_code == 503:
                raise ServiceUnavailable("The projects service is unavailable.")
            if answer.status_code == 504:
                raise UpstreamTimeout("The projects service timed out.")
            raise UpstreamError(f"The projects service answered {answer.status_code}.")
        try:
            project = ProjectAnswer.model_validate_json(answer.content)
        except ValidationError as exc:
            logger.warning("replica.projects.bad_answer", extra={"errors": exc.error_count()})
            raise UpstreamError("The projects service gave a malformed project.") from exc
        if project.id != project_id:
            raise UpstreamError("The projects service answered with another project.")
        logger.info("replica.projects.miss_filled", extra={"project_id": str(project_id)})
        return project.state()
