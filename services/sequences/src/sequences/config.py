from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import SecretStr

from storycore_shared.config import ServiceSettings

ImageBackend = Literal["builtin", "comfyui"]


class Settings(ServiceSettings):
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
    MAX_STREAMS: int = 200
    STREAM_HEARTBEAT_SECONDS: float = 15.0
    TICKET_TTL_SECONDS: int = 60
    # How long a worker may go silent before JetStream hands its job to another worker; a
    # working worker reports progress to JetStream three times per period.
    WORKER_ACK_WAIT_SECONDS: float = 30.0
