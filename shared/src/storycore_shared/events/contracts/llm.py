"""Events published by the llm service."""

from __future__ import annotations

import uuid
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from storycore_shared.contracts.planning import PlannedShot
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


class PlannedScene(BaseModel):
    """One scene of a production's plan: what the narrator reads, and its shots."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    scene_id: str
    narration: str
    shots: list[PlannedShot]


class PlannedSequence(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    title: str
    prompt: str
    tension: str = "moyenne"
    scenes: list[PlannedScene]


class ScenarioPlanned(EventData):
    """A production's scenario exists (created or read) and is planned into sequences, scenes
    and shots; ``id`` is derived from the production, so a redelivery is the same event."""

    event_type: ClassVar[str] = "scenario.planned"
    production_id: uuid.UUID
    project_id: uuid.UUID
    owner_id: uuid.UUID
    scenario_id: uuid.UUID
    title: str
    genre: str
    sequences: list[PlannedSequence]


class ScenarioPlanFailed(EventData):
    """A production's scenario step failed (no such scenario for that owner, model error...)."""

    event_type: ClassVar[str] = "scenario.plan_failed"
    production_id: uuid.UUID
    project_id: uuid.UUID
    owner_id: uuid.UUID
    error: str


STREAM.register(ScenarioPlanned, ScenarioPlanFailed)
