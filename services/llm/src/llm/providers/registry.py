"""The configured providers, and the choice between them."""

from __future__ import annotations

from llm.config import Settings
from llm.errors import ProviderNotConfigured
from llm.providers import Provider
from llm.providers.anthropic import AnthropicProvider
from llm.providers.mock import MockProvider
from llm.providers.ollama import OllamaProvider
from llm.providers.openai import OpenAIProvider


class Providers:
    def __init__(self, settings: Settings) -> None:
        found: dict[str, Provider] = {"mock": MockProvider()}
        if settings.OLLAMA_URL:
            found["ollama"] = OllamaProvider(
                settings.OLLAMA_URL, settings.OLLAMA_MODEL, settings.OLLAMA_TIMEOUT_SECONDS
            )
        if settings.OPENAI_URL:
            key = settings.OPENAI_API_KEY.get_secret_value() if settings.OPENAI_API_KEY else None
            found["openai"] = OpenAIProvider(
                settings.OPENAI_URL, settings.OPENAI_MODEL, settings.OPENAI_TIMEOUT_SECONDS, key
            )
        if settings.ANTHROPIC_URL and settings.ANTHROPIC_API_KEY:
            found["anthropic"] = AnthropicProvider(
                settings.ANTHROPIC_URL,
                settings.ANTHROPIC_MODEL,
                settings.ANTHROPIC_TIMEOUT_SECONDS,
                settings.ANTHROPIC_API_KEY.get_secret_value(),
            )
        self.available = found
        self.default = settings.DEFAULT_PROVIDER

    def select(self, name: str | None) -> Provider:
        """The request's provider if it is configured, else the configured default."""
        chosen = name or self.default
        provider = self.available.get(chosen)
        if provider is None:
            raise ProviderNotConfigured(
                f"Provider {chosen!r} is not configured here; available: "
                f"{', '.join(sorted(self.available))}."
            )
        return provider
