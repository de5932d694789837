"""The CloudEvents 1.0 envelope every StoryCore event travels in."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from storycore_shared.events.contracts import EventData


class CloudEvent(BaseModel):
    """CloudEvents 1.0 JSON, plus ``correlationid`` (the request id) and ``actor`` (user id)."""

    model_config = ConfigDict(extra="allow")

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    source: str
    type: str
    subject: str | None = None
    time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    datacontenttype: Literal["application/json"] = "application/json"
    data: dict[str, Any]
    correlationid: str | None = None
    actor: str | None = None

    @classmethod
    def wrap(
        cls,
        data: EventData,
        *,
        source: str,
        actor: uuid.UUID | str | None = None,
        correlation_id: str | None = None,
    ) -> CloudEvent:
        return cls(
            source=source,
            type=data.event_type,
            subject=str(data.id),
            data=data.model_dump(mode="json"),
            correlationid=correlation_id,
            actor=str(actor) if actor is not None else None,
        )

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()
