"""What the locations service builds at start-up, and the dependency that hands it to routes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends

from locations.service import Locations
from storycore_shared.app import state_dependency


@dataclass(frozen=True)
class LocationsState:
    locations: Locations


async def get_locations(
    state: Annotated[LocationsState, Depends(state_dependency(LocationsState))],
) -> Locations:
    return state.locations


LocationsDep = Annotated[Locations, Depends(get_locations)]
