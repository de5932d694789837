"""The shot planner's contract: the llm service plans, the sequences worker consumes.

POST /internal/llm/plan   (Authorization: Bearer <STORYCORE_INTERNAL_TOKEN>)
POST /api/llm/plan        (a user's access token; rate limited)
body PlanRequest  ->  answer Plan
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from storycore_shared.contracts.vocabulary import Framing, ShotType
from storycore_shared.types import Int32, TextRules

# The llm service's provider names (its ``ProviderName``; tests/test_fuzz.py checks they agree):
# an unknown name is a 422, a known one that is not configured a 503.
PlannerProvider = Literal["ollama", "openai", "anthropic", "mock"]
Short = Annotated[str, StringConstraints(max_length=200), TextRules]


class PlanRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: Annotated[str, StringConstraints(min_length=10, max_length=4000), TextRules]
    shot_count: Annotated[Int32, Field(ge=1, le=50)] = 5
    style: Short | None = None
    mood: Short | None = None
    provider: PlannerProvider | None = None


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
