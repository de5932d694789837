from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field, SecretStr, model_validator

from storycore_shared.config import ServiceSettings


class Settings(ServiceSettings):
    ENV_PREFIX: ClassVar[str] = "AUTH_"
    SERVICE_NAME: ClassVar[str] = "auth"
    NEEDS_JWKS: ClassVar[bool] = False

    # The private signing key (Ed25519 or P-256, PEM), inline or as a file. No default.
    SIGNING_KEY: SecretStr | None = None
    SIGNING_KEY_FILE: Path | None = None
    # Keys being rotated out: still published in the JWKS so live tokens keep verifying.
    PREVIOUS_KEY_FILES: list[Path] = Field(default_factory=list)
    REFRESH_TOKEN_TTL_SECONDS: int = 30 * 86400
    # Login throttling (auth.throttle): failures allowed per account and per client address
    # inside the window, then blocks of BASE * 2^n seconds up to MAX.
    LOGIN_ACCOUNT_ALLOWANCE: int = Field(default=5, ge=1)
    LOGIN_CLIENT_ALLOWANCE: int = Field(default=50, ge=1)
    LOGIN_WINDOW_SECONDS: float = Field(default=900.0, gt=0)
    LOGIN_BACKOFF_BASE_SECONDS: float = Field(default=1.0, gt=0)
    LOGIN_BACKOFF_MAX_SECONDS: float = Field(default=900.0, gt=0)
    # Password hashes computed at once per process (argon2 in threads); the rest wait.
    HASHING_CONCURRENCY: int = Field(default=2, ge=1)

    @model_validator(mode="after")
    def _require_signing_key(self) -> Settings:
        if not (self.SIGNING_KEY or self.SIGNING_KEY_FILE):
            raise ValueError("set AUTH_SIGNING_KEY_FILE (or AUTH_SIGNING_KEY): auth has no key")
        return self

    def signing_key_pem(self) -> bytes:
        if self.SIGNING_KEY is not None:
            return self.SIGNING_KEY.get_secret_value().encode()
        assert self.SIGNING_KEY_FILE is not None
        return self.SIGNING_KEY_FILE.read_bytes()
