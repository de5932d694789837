from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field

from storycore_shared.jobs.settings import JobSettings
from storycore_shared.media import MediaSettings


class Settings(JobSettings, MediaSettings):
    ENV_PREFIX: ClassVar[str] = "AUDIO_"
    SERVICE_NAME: ClassVar[str] = "audio"

    PROJECTS_URL: str

    # The bucket (NATS) or key prefix (S3) of every rendered file.
    BUCKET: str = "audio-files"
    # Where workers render before a file is stored (and fetch a mix's inputs); the system's
    # temporary directory when unset. A file is stored only once it is complete.
    WORK_DIR: Path | None = None
    # Generation requests per user and minute (rendering is CPU work on the workers).
    RATE_LIMIT_PER_MINUTE: int = Field(default=30, gt=0)
    # The biggest file a waveform request reads (longer audio: ask the file's own peaks).
    WAVEFORM_MAX_BYTES: int = Field(default=512 * 2**20, gt=0)
