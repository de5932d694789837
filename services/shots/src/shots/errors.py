from __future__ import annotations

from storycore_shared.errors import Forbidden, NotFound, Unprocessable


class ShotNotFound(NotFound):
    code = "shot_not_found"
    title = "Shot not found"


class ProjectNotFound(NotFound):
    code = "project_not_found"
    title = "Project not found"


class ProjectReadOnly(Forbidden):
    code = "project_read_only"
    title = "Project is read-only for you"


class InvalidShotOrder(Unprocessable):
    code = "invalid_shot_order"
    title = "The order must name each of the project's shots exactly once"
