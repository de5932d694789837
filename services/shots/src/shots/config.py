from __future__ import annotations

from typing import ClassVar

from storycore_shared.config import ServiceSettings
from storycore_shared.media import MediaSettings


class Settings(ServiceSettings, MediaSettings):
    ENV_PREFIX: ClassVar[str] = "SHOTS_"
    SERVICE_NAME: ClassVar[str] = "shots"

    # Where to ask about a project the replica has not heard of yet (read-your-writes).
    PROJECTS_URL: str
