from __future__ import annotations

from storycore_shared.errors import Forbidden, NotFound


class LocationNotFound(NotFound):
    code = "location_not_found"
    title = "Location not found"


class ProjectNotFound(NotFound):
    code = "project_not_found"
    title = "Project not found"


class LocationReadOnly(Forbidden):
    code = "location_read_only"
    title = "Location is read-only for you"


class ProjectReadOnly(Forbidden):
    code = "project_read_only"
    title = "Project is read-only for you"
