"""Events published by the llm service."""

from __future__ import annotations

import uuid
from typing import ClassVar

from storycore_shared.events.contracts import EventData, StreamSpec

STREAM = StreamSpec(name="LLM", subjects=["scenario.>"])


class ScenarioCreated(EventData):
    """``id`` is the scenario id."""

    event_type: ClassVar[str] = "scenario.created"
    owner_id: uuid.UUID
    title: str
    sequences: int
    scenes: int


STREAM.register(ScenarioCreated)
