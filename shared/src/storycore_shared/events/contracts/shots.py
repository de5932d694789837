"""Events published by the shots service. ``id`` is the shot id (the project id for reorders)."""

from __future__ import annotations

import uuid
from typing import ClassVar

from storycore_shared.events.contracts import EventData, StreamSpec

STREAM = StreamSpec(name="SHOTS", subjects=["shot.>"])


class ShotState(EventData):
    project_id: uuid.UUID
    order_index: int
    name: str
    prompt: str
    shot_type: str
    framing: str | None
    version: int


class ShotCreated(ShotState):
    event_type: ClassVar[str] = "shot.created"


class ShotUpdated(ShotState):
    event_type: ClassVar[str] = "shot.updated"


class ShotDeleted(EventData):
    event_type: ClassVar[str] = "shot.deleted"
    project_id: uuid.UUID


class ShotsReordered(EventData):
    """``id`` is the project; ``shot_ids`` in their new order (order_index = position)."""

    event_type: ClassVar[str] = "shot.reordered"
    project_id: uuid.UUID
    shot_ids: list[uuid.UUID]


class ShotRegenerationRequested(ShotState):
    """The shot went back to pending; the sequences worker re-renders its keyframe."""

    event_type: ClassVar[str] = "shot.regeneration_requested"


STREAM.register(ShotCreated, ShotUpdated, ShotDeleted, ShotsReordered, ShotRegenerationRequested)
