"""Event contracts: one module per producing service; consumers import them, nobody copies.

An event's ``data`` is a past-tense Pydantic model whose ``event_type`` is its NATS subject::

    class ProjectDeleted(EventData):
        event_type: ClassVar[str] = "project.deleted"
        owner_id: UUID
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import ClassVar

from pydantic import BaseModel, ConfigDict


class EventData(BaseModel):
    """Base of every event payload. Unknown fields are ignored so producers can add fields."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_type: ClassVar[str]
    id: uuid.UUID


@dataclass(frozen=True)
class StreamSpec:
    """A JetStream stream owned by one producing service."""

    name: str
    subjects: list[str]
    # JetStream drops a re-sent Nats-Msg-Id inside this window (seconds).
    duplicate_window: float = 120.0
    max_age_days: float = 14.0
    events: dict[str, type[EventData]] = field(default_factory=dict)

    def register(self, *models: type[EventData]) -> None:
        for model in models:
            self.events[model.event_type] = model
