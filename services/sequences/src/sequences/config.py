from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, SecretStr

from storycore_shared.jobs.settings import JobSettings
from storycore_shared.media import MediaSettings

ImageBackend = Literal["builtin", "comfyui"]
PoseDetector = Literal["auto", "comfyui", "none"]


class Settings(JobSettings, MediaSettings):
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

    # The bucket (NATS) or key prefix (S3) of every sequences asset: keyframes, uploaded
    # character sheets (``sheets/``) and rigs (``rigs/``), all in the one ``asset`` table.
    KEYFRAME_BUCKET: str = "sequences-keyframes"
    RATE_LIMIT_PER_MINUTE: int = 10

    # Rigging. The character height the skeleton is scaled to, in metres.
    RIG_HEIGHT_METRES: float = Field(default=1.75, gt=0.1, le=10.0)
    # Pose detection for image sheets: "auto" uses ComfyUI when COMFYUI_URL is set; "none"
    # refuses image sheets (503), so only client keypoints make rigs.
    POSE_DETECTOR: PoseDetector = "auto"
    # An API-format workflow whose pose node answers OpenPose JSON, with an "{{image}}"
    # placeholder; the one shipped in sequences/workflows (DWPreprocessor) is used when unset.
    POSE_WORKFLOW_FILE: Path | None = None
    # Uploaded character sheets (the gateway's and the service's body limit apply first).
    SHEET_MAX_BYTES: int = Field(default=20 * 2**20, gt=0)

    @property
    def pose_detector(self) -> Literal["comfyui"] | None:
        """The detector image sheets use, or None when there is none."""
        if self.POSE_DETECTOR == "none" or not self.COMFYUI_URL:
            return None
        return "comfyui"
