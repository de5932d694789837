from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from llm.config import ProviderName
from storycore_shared.types import FiniteFloat, Int32, JsonObject, StrictBool, TextRules

Role = Literal["system", "user", "assistant"]
Temperature = Annotated[FiniteFloat, Field(ge=0, le=2)]
MaxTokens = Annotated[Int32, Field(ge=1, le=32768)]
ModelName = Annotated[str, StringConstraints(max_length=255), TextRules]


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role
    content: Annotated[str, StringConstraints(min_length=1, max_length=50_000), TextRules]


class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: Annotated[str, StringConstraints(min_length=1, max_length=10_000), TextRules]
    model: ModelName | None = None
    provider: ProviderName | None = None
    temperature: Temperature | None = None
    max_tokens: MaxTokens | None = None
    context: Annotated[list[ChatMessage], Field(max_length=100)] = Field(default_factory=list)
    use_cache: StrictBool = True


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
    model: ModelName | None = None
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

    name: Annotated[str, StringConstraints(max_length=255), TextRules]
    variables: JsonObject = Field(default_factory=dict)


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
