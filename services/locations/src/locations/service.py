"""Business rules of the locations service. Functions flush, never commit."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from locations import repository
from locations.errors import LocationNotFound, LocationReadOnly
from locations.models import Location, event_tables
from locations.schemas import LocationCreate, LocationUpdate
from storycore_shared.auth import Principal
from storycore_shared.db import utcnow
from storycore_shared.events.contracts.locations import (
    LocationCreated,
    LocationDeleted,
    LocationUpdated,
)
from storycore_shared.events.contracts.projects import ProjectDeleted
from storycore_shared.events.outbox import add_event
from storycore_shared.http import check_version
from storycore_shared.replicas.projects import ProjectDirectory

SOURCE = "locations"


def _state(location: Location) -> dict[str, object]:
    return {
        "id": location.id,
        "project_id": location.project_id,
        "owner_id": location.owner_id,
        "name": location.name,
        "location_type": location.location_type,
        "version": location.version,
    }


class Locations:
    def __init__(self, directory: ProjectDirectory) -> None:
        self.directory = directory

    async def _require_own_project(
        self, session: AsyncSession, principal: Principal, project_id: uuid.UUID
    ) -> None:
        # No lock on the project: locations have no order within it to keep consistent.
        await self.directory.require(session, project_id, principal, write=True, lock=False)

    async def _readable(
        self, session: AsyncSession, principal: Principal, location: Location
    ) -> bool:
        if location.owner_id == principal.user_id:
            return True
        if location.project_id is None:
            return False
        project = await self.directory.get(session, location.project_id, principal=principal)
        return project is not None and project.is_public

    async def _get(
        self,
        session: AsyncSession,
        principal: Principal,
        location_id: uuid.UUID,
        *,
        write: bool,
    ) -> Location:
        location = await repository.get(session, location_id, lock=write)
        if location is None or not await self._readable(session, principal, location):
            raise LocationNotFound(f"No location {location_id}.")
        if write and location.owner_id != principal.user_id:
            raise LocationReadOnly("Only the location's owner can change it.")
        return location

    async def create_location(
        self,
        session: AsyncSession,
        *,
        principal: Principal,
        data: LocationCreate,
    ) -> Location:
        if data.project_id is not None:
            await self._require_own_project(session, principal, data.project_id)
        location = Location(
            **data.model_dump(exclude={"metadata"}), meta=data.metadata, owner_id=principal.user_id
        )
        session.add(location)
        await session.flush()
        await add_event(
            session,
            event_tables,
            LocationCreated.model_validate(_state(location)),
            source=SOURCE,
            actor=principal.user_id,
        )
        return location

    async def get_location(
        self,
        session: AsyncSession,
        *,
        principal: Principal,
        location_id: uuid.UUID,
    ) -> Location:
        return await self._get(session, principal, location_id, write=False)

    async def update_location(
        self,
        session: AsyncSession,
        *,
        principal: Principal,
        location_id: uuid.UUID,
        data: LocationUpdate,
        expected_version: int | None,
    ) -> Location:
        location = await self._get(session, principal, location_id, write=True)
        check_version("location", location.version, expected_version)
        changes = data.changes()
        if not changes:
            return location
        new_project = changes.get("project_id")
        if new_project is not None and new_project != location.project_id:
            await self._require_own_project(session, principal, new_project)
        for field, value in changes.items():
            setattr(location, "meta" if field == "metadata" else field, value)
        location.version += 1
        location.updated_at = utcnow()
        await session.flush()
        await add_event(
            session,
            event_tables,
            LocationUpdated.model_validate(_state(location)),
            source=SOURCE,
            actor=principal.user_id,
        )
        return location

    async def delete_location(
        self,
        session: AsyncSession,
        *,
        principal: Principal,
        location_id: uuid.UUID,
    ) -> None:
        location = await self._get(session, principal, location_id, write=True)
        await session.delete(location)
        await session.flush()
        await add_event(
            session,
            event_tables,
            LocationDeleted(
                id=location.id, project_id=location.project_id, owner_id=location.owner_id
            ),
            source=SOURCE,
            actor=principal.user_id,
        )

    async def list_mine(
        self,
        session: AsyncSession,
        *,
        principal: Principal,
        project_id: uuid.UUID | None,
        page: int,
        page_size: int,
    ) -> tuple[list[Location], int]:
        return await repository.page(
            session,
            repository.owned_by(principal.user_id, project_id),
            offset=(page - 1) * page_size,
            limit=page_size,
        )

    async def list_project(
        self,
        session: AsyncSession,
        *,
        principal: Principal,
        project_id: uuid.UUID,
        page: int,
        page_size: int,
    ) -> tuple[list[Location], int]:
        await self.directory.require(session, project_id, principal, write=False)
        return await repository.page(
            session,
            repository.in_project(project_id),
            offset=(page - 1) * page_size,
            limit=page_size,
        )


async def delete_project_locations(session: AsyncSession, data: ProjectDeleted) -> None:
    """Cascade of ``project.deleted``: the project's locations go with it."""
    await repository.delete_for_project(session, data.id)
