"""Events published by the locations service. ``id`` is the location id."""

from __future__ import annotations

import uuid
from typing import ClassVar

from storycore_shared.events.contracts import EventData, StreamSpec

STREAM = StreamSpec(name="LOCATIONS", subjects=["location.>"])


class LocationState(EventData):
    project_id: uuid.UUID | None
    owner_id: uuid.UUID
    name: str
    location_type: str
    version: int


class LocationCreated(LocationState):
    event_type: ClassVar[str] = "location.created"


class LocationUpdated(LocationState):
    event_type: ClassVar[str] = "location.updated"


class LocationDeleted(EventData):
    event_type: ClassVar[str] = "location.deleted"
    project_id: uuid.UUID | None
    owner_id: uuid.UUID


STREAM.register(LocationCreated, LocationUpdated, LocationDeleted)
