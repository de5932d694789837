from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import SecretStr

from storycore_shared.config import ServiceSettings

ProviderName = Literal["ollama", "openai", "anthropic", "mock"]


class Settings(ServiceSettings):
    """Provider endpoints come from configuration only, never from a request (no SSRF)."""

    ENV_PREFIX: ClassVar[str] = "LLM_"
    SERVICE_NAME: ClassVar[str] = "llm"

    # mock is deterministic and labels every answer `provider: "mock"`, so a default of mock
    # can never pass for real generation.
    DEFAULT_PROVIDER: ProviderName = "mock"

    OLLAMA_URL: str | None = None
    OLLAMA_MODEL: str = "llama3.1"
    OLLAMA_TIMEOUT_SECONDS: float = 60.0

    OPENAI_URL: str | None = None  # any OpenAI-compatible server, e.g. https://host/v1 's base
    OPENAI_MODEL: str = "gpt-4o-mini"
    OPENAI_API_KEY: SecretStr | None = None
    OPENAI_TIMEOUT_SECONDS: float = 60.0

    ANTHROPIC_URL: str | None = None
    ANTHROPIC_MODEL: str = "claude-3-5-haiku-latest"
    ANTHROPIC_API_KEY: SecretStr | None = None
    ANTHROPIC_TIMEOUT_SECONDS: float = 60.0

    CACHE_TTL_SECONDS: int = 3600
    RATE_LIMIT_PER_MINUTE: int = 30
    # Bearer token of the internal planning route (used by the sequences worker). Unset: the
    # internal route answers 503.
    INTERNAL_TOKEN: SecretStr | None = None
