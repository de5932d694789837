from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import SecretStr

from storycore_shared.jobs.settings import JobSettings

ImageBackend = Literal["builtin", "comfyui"]


class Settings(JobSettings):
    ENV_PREFIX: ClassVar[str] = "SEQUENCES_"
    SERVICE_NAME: ClassVar[str] = "sequences"

    PROJECTS_URL: str
    # The llm service itself (its /internal route is not behind the gateway).
    LLM_URL: str
    INTERNAL_TOKEN: SecretStr
    PLANNER_TIMEOUT_SECONDS: float = 60.0

    IMAGE_BACKEND: ImageBackend = "builtin"
    COMFYUI_URL: str | None = None
    # An API-format workflow with "{{prompt}}", "{{negative}}", "{{width}}", "{{height}}" and
    # "{{seed}}" placeholders; the one shipped in sequences/workflows is used when unset.
    COMFYUI_WORKFLOW_FILE: Path | None = None
    COMFYUI_TIMEOUT_SECONDS: float = 120.0

    KEYFRAME_BUCKET: str = "sequences-keyframes"
    RATE_LIMIT_PER_MINUTE: int = 10
