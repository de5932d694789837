from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from storycore_shared.jobs.settings import JobSettings
from storycore_shared.media import MediaSettings


class Settings(JobSettings, MediaSettings):
    """Productions are jobs of the kit (their stream, tickets and cancel); their results hand
    out the film's signed download URL."""

    ENV_PREFIX: ClassVar[str] = "PROJECTS_"
    SERVICE_NAME: ClassVar[str] = "projects"

    # A production step with no answer for this long fails its production (a command that was
    # dead-lettered, a service that never came back): a production never stays processing for
    # ever. Generous, since a real model's scenario or a long 4K export can take a while.
    PRODUCTION_STEP_TIMEOUT_SECONDS: float = Field(default=3 * 3600, gt=0)
    # How often each replica looks for such steps (each locks the production it fails, so
    # replicas looking at once fail it once).
    PRODUCTION_SWEEP_SECONDS: float = Field(default=60, gt=0)
