"""Events published by the projects service. ``id`` is the project id."""

from __future__ import annotations

import uuid
from typing import ClassVar

from storycore_shared.events.contracts import EventData, StreamSpec

STREAM = StreamSpec(name="PROJECTS", subjects=["project.>"])


class ProjectState(EventData):
    """What replicas of a project need: owner, visibility, name, status and version."""

    project_id: uuid.UUID
    owner_id: uuid.UUID
    name: str
    is_public: bool
    status: str
    version: int
    resolution_width: int = 1920
    resolution_height: int = 1080


class ProjectCreated(ProjectState):
    event_type: ClassVar[str] = "project.created"


class ProjectUpdated(ProjectState):
    event_type: ClassVar[str] = "project.updated"


class ProjectDeleted(EventData):
    event_type: ClassVar[str] = "project.deleted"
    project_id: uuid.UUID
    owner_id: uuid.UUID


STREAM.register(ProjectCreated, ProjectUpdated, ProjectDeleted)
