"""Request and answer shapes of the scenario routes (the document itself is ``document.py``)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints

from llm.config import ProviderName
from llm.models import Scenario
from storycore_shared.types import TextRules

ExportFormat = Literal["json", "txt", "md", "html"]


class TransformRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    story: Annotated[str, StringConstraints(min_length=10, max_length=50_000), TextRules]
    title: Annotated[str, StringConstraints(max_length=255), TextRules] | None = None
    provider: ProviderName | None = None


class TransformResponse(BaseModel):
    scenario_id: uuid.UUID
    status: str
    summary: dict[str, Any]


class ScenarioPublic(BaseModel):
    id: uuid.UUID
    title: str
    status: str
    provider: str
    summary: dict[str, Any]
    created_at: datetime
    mock: bool

    @classmethod
    def of(cls, scenario: Scenario) -> ScenarioPublic:
        return cls(
            id=scenario.id,
            title=scenario.title,
            status=scenario.status,
            provider=scenario.provider,
            summary=scenario.summary,
            created_at=scenario.created_at,
            mock=scenario.provider == "mock",
        )


class ScenariosPublic(BaseModel):
    scenarios: list[ScenarioPublic]
    total: int
    page: int
    page_size: int
