"""Settings base shared by every service.

Each service subclasses :class:`ServiceSettings` and sets ``ENV_PREFIX`` (``PROJECTS_``). A field
is read from ``<ENV_PREFIX><FIELD>`` first, then from ``STORYCORE_<FIELD>``, so one variable can
serve every service while a service-specific one overrides it::

    class Settings(ServiceSettings):
        ENV_PREFIX: ClassVar[str] = "PROJECTS_"
        SERVICE_NAME: ClassVar[str] = "projects"

No secret has a default: a missing ``DATABASE_URL`` or key is a start-up error, in every mode.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

Environment = Literal["development", "test", "production"]


class ServiceSettings(BaseSettings):
    """Configuration common to every StoryCore service."""

    ENV_PREFIX: ClassVar[str] = ""
    SERVICE_NAME: ClassVar[str] = ""
    # Services that verify tokens issued elsewhere need a JWKS source; auth signs its own.
    NEEDS_JWKS: ClassVar[bool] = True

    model_config = SettingsConfigDict(extra="ignore", case_sensitive=True)

    ENVIRONMENT: Environment = "production"
    DATABASE_URL: str
    # Connections kept open once made. Overflow connections are closed as soon as they go back
    # to a full pool, so under steady load they were opened and closed per request (a Postgres
    # backend started each time): the default keeps all of them instead.
    DATABASE_POOL_SIZE: int = 20
    DATABASE_MAX_OVERFLOW: int = 0
    # Bounds every wait on Postgres (connect, statement), so an outage is a fast 503, never a
    # hung request.
    DATABASE_TIMEOUT_SECONDS: float = 5.0
    # How long a request may wait for a pooled connection while every one is busy: that is
    # load, not an outage (an unreachable database fails at connect), and the queue drains.
    DATABASE_POOL_TIMEOUT_SECONDS: float = 30.0
    # DATABASE_URL points at PgBouncer in transaction mode: asyncpg's and SQLAlchemy's
    # statement caches are off (a prepared statement lives on one server connection, and the
    # next transaction may get another), and no search_path is sent at connect (PgBouncer
    # refuses unknown startup parameters; the default "$user" is the service's schema anyway).
    DATABASE_PGBOUNCER: bool = False
    # A session of its own, straight to Postgres (or through a session-mode pool), for what a
    # transaction pool cannot carry: migrations' and the outbox relay's advisory locks, the
    # relay's LISTEN, and the readiness probe's session settings. Defaults to DATABASE_URL;
    # required with DATABASE_PGBOUNCER.
    DATABASE_DIRECT_URL: str | None = None
    NATS_URL: str
    JWT_ISSUER: str = "storycore-auth"
    JWT_AUDIENCE: str = "storycore"
    # Access-token lifetime: auth issues tokens for this long, and every verifier refuses a
    # token whose exp - iat is longer (plus a minute of leeway).
    ACCESS_TOKEN_TTL_SECONDS: int = 1800
    JWKS_URL: str | None = None
    OIDC_ISSUER_URL: str | None = None
    LOG_LEVEL: str = "INFO"
    LOG_JSON: bool = True
    OUTBOX_RETENTION_DAYS: int = 7
    # How long a consumer that keeps a copy of another service's data (the project replicas,
    # projects' shot counts) waits, after a fetch that did not fill its batch, for more events
    # to apply in the same transaction (storycore_shared.events.consumer.PullConsumer). Those
    # copies then lag by up to this much more (a replica miss still asks the owner at once);
    # each event of a single client's writes costs them a fraction of a transaction instead of
    # one. Consumers that drive work (the saga, jobs, shots from a storyboard) never linger.
    # 100 ms: a replica's CPU per event at 300 events a second is about 0.7 of what 50 ms
    # costs (benchmarks/consumer_bench.py); longer gains less, as batches fill at 50.
    REPLICA_LINGER_SECONDS: float = Field(default=0.1, ge=0, le=1)
    # Requests inside a replica at once (storycore_shared.middleware.AdmissionMiddleware); the
    # rest wait their turn in arrival order. Unset: the pool's connections plus 4, so that the
    # pool stays busy while some admitted requests are before or after their statements.
    ADMISSION_LIMIT: int | None = Field(default=None, ge=1, le=10_000)
    # How long an admitted request keeps its place if its answer has not started by then.
    ADMISSION_LEASE_SECONDS: float = Field(default=1.0, gt=0, le=60)
    # Larger request bodies get 413 from the service too (the gateway's limit has the same
    # variable but does not cover the streaming routes).
    MAX_BODY_BYTES: int = 1_048_576
    # Binary assets (storycore_shared.assets): the NATS object store, one bucket per service, or
    # one S3-compatible bucket in which each service's bucket name becomes a key prefix.
    ASSET_BACKEND: Literal["nats", "s3"] = "nats"
    S3_ENDPOINT_URL: str | None = None
    S3_BUCKET: str | None = None
    S3_ACCESS_KEY_ID: SecretStr | None = None
    S3_SECRET_ACCESS_KEY: SecretStr | None = None
    S3_REGION: str = "us-east-1"

    @model_validator(mode="after")
    def _check_identity_source(self) -> ServiceSettings:
        if self.NEEDS_JWKS and not (self.JWKS_URL or self.OIDC_ISSUER_URL):
            raise ValueError(
                f"set {self.ENV_PREFIX}JWKS_URL or STORYCORE_JWKS_URL (or OIDC_ISSUER_URL): "
                "tokens cannot be verified without the issuer's public keys"
            )
        return self

    @property
    def admission_limit(self) -> int:
        """Requests inside a replica at once (see ADMISSION_LIMIT)."""
        return self.ADMISSION_LIMIT or self.DATABASE_POOL_SIZE + self.DATABASE_MAX_OVERFLOW + 4

    @property
    def direct_database_url(self) -> str:
        """Where session-scoped work connects (see DATABASE_DIRECT_URL)."""
        return self.DATABASE_DIRECT_URL or self.DATABASE_URL

    @model_validator(mode="after")
    def _check_pgbouncer(self) -> ServiceSettings:
        if self.DATABASE_PGBOUNCER and not self.DATABASE_DIRECT_URL:
            raise ValueError(
                f"{self.ENV_PREFIX}DATABASE_PGBOUNCER is set but {self.ENV_PREFIX}"
                "DATABASE_DIRECT_URL is not: migrations and the outbox relay hold advisory locks "
                "and LISTEN, which need a session connection to Postgres, not a transaction pool"
            )
        return self

    @model_validator(mode="after")
    def _check_asset_store(self) -> ServiceSettings:
        if self.ASSET_BACKEND == "s3":
            names = ("S3_ENDPOINT_URL", "S3_BUCKET", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY")
            if missing := [name for name in names if not getattr(self, name)]:
                raise ValueError(
                    "ASSET_BACKEND is s3 but "
                    + ", ".join(f"{self.ENV_PREFIX}{n} (or STORYCORE_{n})" for n in missing)
                    + " not set"
                )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,  # noqa: ARG003 - replaced by two below
        dotenv_settings: PydanticBaseSettingsSource,  # noqa: ARG003 - no .env files
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        own = EnvSettingsSource(settings_cls, env_prefix=cls.ENV_PREFIX, case_sensitive=True)
        common = EnvSettingsSource(settings_cls, env_prefix="STORYCORE_", case_sensitive=True)
        return (init_settings, own, common, file_secret_settings)

    def public_summary(self) -> dict[str, Any]:
        """Settings safe to log: URLs without credentials, no keys."""
        return {
            "service": self.SERVICE_NAME,
            "environment": self.ENVIRONMENT,
            "database": _strip_credentials(self.DATABASE_URL),
            "database_pgbouncer": self.DATABASE_PGBOUNCER,
            "nats": _strip_credentials(self.NATS_URL),
            # Its own NATS user (storycore_shared.events.bus); never the password.
            "nats_user": _user(self.NATS_URL),
        }


def _user(url: str) -> str | None:
    _, sep, rest = url.partition("://")
    userinfo, at, _ = rest.rpartition("@")
    if not (sep and at):
        return None
    return userinfo.partition(":")[0] or None


def _strip_credentials(url: str) -> str:
    """The URL without user and password; each server of a comma-separated list (a cluster)."""
    stripped = []
    for part in url.split(","):
        scheme, sep, rest = part.strip().partition("://")
        stripped.append(f"{scheme}://{rest.rpartition('@')[2]}" if sep else part.strip())
    return ",".join(stripped)
