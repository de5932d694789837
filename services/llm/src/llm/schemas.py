from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from llm.config import ProviderName

Role = Literal["system", "user", "assistant"]
Temperature = Annotated[float, Field(ge=0, le=2)]
MaxTokens = Annotated[int, Field(ge=1, le=32768)]


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role
    content: Annotated[str, Field(min_length=1, max_length=50_000)]


class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: Annotated[str, Field(min_length=1, max_length=10_000)]
    model: Annotated[str, Field(max_length=255)] | None = None
    provider: ProviderName | None = None
    temperature: Temperature | None = None
    max_tokens: MaxTokens | None = None
    context: Annotated[list[ChatMessage], Field(max_length=100)] = Field(default_factory=list)
    use_cache: bool = True


class UsagePublic(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class GenerateResponse(BaseModel):
    text: str
    model: str
    provider: str
    usage: UsagePublic
    cached: bool
    latency_ms: float
    mock: bool = False


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    messages: Annotated[list[ChatMessage], Field(min_length=1, max_length=200)]
    model: Annotated[str, Field(max_length=255)] | None = None
    provider: ProviderName | None = None
    temperature: Temperature | None = None
    max_tokens: MaxTokens | None = None


class ChatChoice(BaseModel):
    message: dict[str, str]
    finish_reason: str


class ChatResponse(BaseModel):
    choices: list[ChatChoice]
    model: str
    provider: str
    usage: UsagePublic
    mock: bool = False


class ModelInfo(BaseModel):
    provider: str
    name: str
    default: bool


class ModelsPublic(BaseModel):
    models: list[ModelInfo]
    default_provider: str
    unavailable: dict[str, str]


class TemplateInfo(BaseModel):
    name: str
    description: str
    variables: list[str]


class TemplatesPublic(BaseModel):
    templates: list[TemplateInfo]


class RenderRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    variables: dict[str, Any] = Field(default_factory=dict)


class RenderResponse(BaseModel):
    name: str
    prompt: str


class ProviderUsage(BaseModel):
    provider: str
    model: str
    requests: int
    total_tokens: int


class UsageSummary(BaseModel):
    user_id: uuid.UUID
    requests: int
    cached_requests: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    by_model: list[ProviderUsage]
    since: datetime | None


class CacheCleared(BaseModel):
    deleted: int
