from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from locations.models import Location
from locations.schemas import LocationCreate, LocationPublic, LocationsPublic, LocationUpdate
from locations.state import LocationsDep
from storycore_shared.auth import PrincipalDep
from storycore_shared.db import SessionDep
from storycore_shared.http import (
    IfMatch,
    IfNoneMatch,
    Page,
    PageSize,
    etag,
    expected_version,
    not_modified,
)

router = APIRouter(tags=["locations"])


def _public(response: Response, location: Location) -> LocationPublic:
    response.headers["ETag"] = etag(location.version)
    return LocationPublic.of(location)


@router.post("/api/locations", status_code=status.HTTP_201_CREATED)
async def create_location(
    data: LocationCreate,
    session: SessionDep,
    principal: PrincipalDep,
    locations: LocationsDep,
    response: Response,
) -> LocationPublic:
    """Create a location, optionally in one of the caller's projects."""
    location = await locations.create_location(session, principal=principal, data=data)
    response.headers["Location"] = f"/api/locations/{location.id}"
    return _public(response, location)


@router.get("/api/locations")
async def list_locations(
    session: SessionDep,
    principal: PrincipalDep,
    locations: LocationsDep,
    project_id: uuid.UUID | None = None,
    page: Page = 1,
    page_size: PageSize = 20,
) -> LocationsPublic:
    """The caller's locations, optionally of one project."""
    items, total = await locations.list_mine(
        session, principal=principal, project_id=project_id, page=page, page_size=page_size
    )
    return LocationsPublic(
        locations=[LocationPublic.of(i) for i in items], total=total, page=page, page_size=page_size
    )


@router.get("/api/projects/{project_id}/locations")
async def list_project_locations(
    project_id: uuid.UUID,
    session: SessionDep,
    principal: PrincipalDep,
    locations: LocationsDep,
    page: Page = 1,
    page_size: PageSize = 20,
) -> LocationsPublic:
    """The locations of a project the caller can read."""
    items, total = await locations.list_project(
        session,
        principal=principal,
        project_id=project_id,
        page=page,
        page_size=page_size,
    )
    return LocationsPublic(
        locations=[LocationPublic.of(i) for i in items], total=total, page=page, page_size=page_size
    )


@router.get("/api/locations/{location_id}", response_model=LocationPublic)
async def get_location(
    location_id: uuid.UUID,
    session: SessionDep,
    principal: PrincipalDep,
    locations: LocationsDep,
    response: Response,
    if_none_match: IfNoneMatch = None,
) -> LocationPublic | Response:
    """One location the caller can read (304 for a current ETag)."""
    location = await locations.get_location(session, principal=principal, location_id=location_id)
    if cached := not_modified(if_none_match, location.version):
        return cached
    return _public(response, location)


@router.put("/api/locations/{location_id}")
async def update_location(
    location_id: uuid.UUID,
    data: LocationUpdate,
    session: SessionDep,
    principal: PrincipalDep,
    locations: LocationsDep,
    response: Response,
    if_match: IfMatch = None,
) -> LocationPublic:
    """Change some fields; unknown or protected fields answer 422."""
    location = await locations.update_location(
        session,
        principal=principal,
        location_id=location_id,
        data=data,
        expected_version=expected_version(data.version, if_match),
    )
    return _public(response, location)


@router.delete("/api/locations/{location_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_location(
    location_id: uuid.UUID,
    session: SessionDep,
    principal: PrincipalDep,
    locations: LocationsDep,
) -> Response:
    """Delete a location."""
    await locations.delete_location(session, principal=principal, location_id=location_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
