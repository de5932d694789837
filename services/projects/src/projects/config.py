from __future__ import annotations

from typing import ClassVar

from storycore_shared.config import ServiceSettings


class Settings(ServiceSettings):
    ENV_PREFIX: ClassVar[str] = "PROJECTS_"
    SERVICE_NAME: ClassVar[str] = "projects"
