from __future__ import annotations

from storycore_shared.errors import NotFound, Unprocessable


class ShotNotFound(NotFound):
    code = "shot_not_found"
    title = "Shot not found"


class InvalidShotOrder(Unprocessable):
    code = "invalid_shot_order"
    title = "The order must name each of the project's shots exactly once"
