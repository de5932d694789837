"""Event contracts: one module per producing service; consumers import them, nobody copies.

An event's ``data`` is a past-tense Pydantic model whose ``event_type`` is its NATS subject::

    class ProjectDeleted(EventData):
        event_type: ClassVar[str] = "project.deleted"
        owner_id: UUID
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Annotated, ClassVar
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict


class EventData(BaseModel):
    """Base of every event payload. Unknown fields are ignored so producers can add fields."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_type: ClassVar[str]
    id: uuid.UUID


_LINK_CHARACTERS = re.compile(r"[\x21-\x7e]{1,2048}")  # printable ASCII, no spaces


def check_link(value: str) -> str:
    """A link a client may be handed: ``https://host/...`` or a path on this site (``/api/...``).

    Anything else (``javascript:``, ``data:``, ``http:``, ``//host``, ``/\\host``, spaces or
    control characters) is refused, so an event can never plant a script or an off-site link.
    """
    if not _LINK_CHARACTERS.fullmatch(value) or "\\" in value:
        raise ValueError("a link is printable ASCII, without spaces or backslashes")
    if value.startswith("/") and not value.startswith("//"):
        return value
    parts = urlsplit(value)
    if parts.scheme == "https" and parts.hostname and "@" not in parts.netloc:
        return value
    raise ValueError("a link must be an https:// URL or a path on this site (/api/...)")


LinkUrl = Annotated[str, AfterValidator(check_link)]


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
