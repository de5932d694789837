"""The shot planner's contract: the llm service plans, the sequences worker consumes.

POST /internal/llm/plan   (Authorization: Bearer <STORYCORE_INTERNAL_TOKEN>)
POST /api/llm/plan        (a user's access token; rate limited)
body PlanRequest  ->  answer Plan
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from storycore_shared.contracts.vocabulary import Framing, ShotType


class PlanRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: Annotated[str, StringConstraints(min_length=10, max_length=4000)]
    shot_count: Annotated[int, Field(ge=1, le=50)] = 5
    style: Annotated[str, Field(max_length=200)] | None = None
    mood: Annotated[str, Field(max_length=200)] | None = None
    provider: str | None = None


class PlannedShot(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
    prompt: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
    shot_type: ShotType
    framing: Framing
    duration_seconds: Annotated[float, Field(ge=0.5, le=300)]


class Plan(BaseModel):
    shots: list[PlannedShot]
    provider: str
    model: str
    mock: bool = False
