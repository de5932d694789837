from __future__ import annotations

from typing import ClassVar

from storycore_shared.jobs.settings import JobSettings
from storycore_shared.media import MediaSettings


class Settings(JobSettings, MediaSettings):
    """Productions are jobs of the kit (their stream, tickets and cancel); their results hand
    out the film's signed download URL."""

    ENV_PREFIX: ClassVar[str] = "PROJECTS_"
    SERVICE_NAME: ClassVar[str] = "projects"
