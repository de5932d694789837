from __future__ import annotations

from storycore_shared.errors import Forbidden, NotFound


class ProjectNotFound(NotFound):
    code = "project_not_found"
    title = "Project not found"


class ProjectReadOnly(Forbidden):
    """A public project is readable by anyone, writable only by its owner."""

    code = "project_read_only"
    title = "Project is read-only for you"
