from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field

from storycore_shared.jobs.settings import JobSettings
from storycore_shared.media import MediaSettings


class Settings(JobSettings, MediaSettings):
    ENV_PREFIX: ClassVar[str] = "VIDEO_EDITOR_"
    SERVICE_NAME: ClassVar[str] = "video-editor"

    PROJECTS_URL: str
    # The sequences and audio services themselves (behind the gateway or direct): media imported
    # by reference is fetched from them with the caller's own token.
    SEQUENCES_URL: str
    AUDIO_URL: str
    IMPORT_TIMEOUT_SECONDS: float = Field(default=30.0, gt=0)

    # The bucket (NATS) or key prefix (S3) of uploaded media, thumbnails and exports.
    BUCKET: str = "video-editor-files"
    # The biggest media upload (413 past it; the request is cut mid-stream).
    UPLOAD_MAX_BYTES: int = Field(default=2 * 2**30, gt=0)
    # Where uploads are received and exports rendered before they are stored; system temp when
    # unset. A file is stored only once it is complete.
    WORK_DIR: Path | None = None
    RATE_LIMIT_PER_MINUTE: int = Field(default=20, gt=0)
