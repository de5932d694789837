"""Events published by the auth service."""

from __future__ import annotations

from typing import ClassVar

from storycore_shared.events.contracts import EventData, StreamSpec

STREAM = StreamSpec(name="AUTH", subjects=["user.>"])


class UserRegistered(EventData):
    event_type: ClassVar[str] = "user.registered"
    email: str
    name: str


STREAM.register(UserRegistered)
