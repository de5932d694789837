from __future__ import annotations

from storycore_shared.errors import Forbidden, NotFound


class LocationNotFound(NotFound):
    code = "location_not_found"
    title = "Location not found"


class LocationReadOnly(Forbidden):
    code = "location_read_only"
    title = "Location is read-only for you"
