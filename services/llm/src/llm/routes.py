from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter

from llm import service
from llm.planner import plan_shots
from llm.schemas import (
    CacheCleared,
    ChatRequest,
    ChatResponse,
    GenerateRequest,
    GenerateResponse,
    ModelsPublic,
    RenderRequest,
    RenderResponse,
    TemplatesPublic,
    UsageSummary,
)
from llm.state import (
    GenerationDep,
    InternalCaller,
    ProvidersDep,
    WantsEventStream,
    rate_limited,
)
from storycore_shared.auth import Principal, PrincipalDep
from storycore_shared.contracts.planning import Plan, PlanRequest
from storycore_shared.db import SessionDep

if TYPE_CHECKING:
    from sse_starlette.sse import EventSourceResponse


router = APIRouter(tags=["llm"])


@router.post("/api/llm/generate")
async def generate(
    data: GenerateRequest,
    generation: GenerationDep,
    principal: Annotated[Principal, rate_limited("llm.generate")],
) -> GenerateResponse:
    """Generate text from a prompt (cached per user and parameters)."""
    return await generation.generate(principal, data)


@router.post("/api/llm/chat")
async def chat(
    data: ChatRequest,
    generation: GenerationDep,
    principal: Annotated[Principal, rate_limited("llm.chat")],
) -> ChatResponse:
    """One chat turn."""
    return await generation.chat(principal, data)


@router.post("/api/llm/streaming-generate", response_model=None)
async def streaming_generate(
    data: GenerateRequest,
    generation: GenerationDep,
    stream: WantsEventStream,
    principal: Annotated[Principal, rate_limited("llm.stream")],
) -> EventSourceResponse | GenerateResponse:
    """Generate as a stream of SSE frames (start, chunk, usage, done, or error)."""
    return await generation.generate_or_stream(principal, data, stream=stream)


@router.get("/api/llm/models")
async def list_models(providers: ProvidersDep, _: PrincipalDep) -> ModelsPublic:
    """Models of every configured provider (those that answered)."""
    return await service.list_models(providers)


@router.get("/api/llm/templates")
async def list_templates(_: PrincipalDep) -> TemplatesPublic:
    """The prompt templates and their variables."""
    return service.list_templates()


@router.post("/api/llm/render-template")
async def render_template(data: RenderRequest, _: PrincipalDep) -> RenderResponse:
    """Fill a template; a missing variable answers 422 naming it."""
    return service.render_template(data)


@router.get("/api/llm/usage")
async def get_usage(session: SessionDep, principal: PrincipalDep) -> UsageSummary:
    """The caller's own usage, recorded per request."""
    return await service.usage_summary(session, principal)


@router.delete("/api/llm/cache")
async def clear_cache(session: SessionDep, principal: PrincipalDep) -> CacheCleared:
    """Forget the caller's cached answers (nobody else's)."""
    return await service.clear_cache(session, principal)


@router.post("/api/llm/plan")
async def plan(
    data: PlanRequest,
    providers: ProvidersDep,
    _: Annotated[Principal, rate_limited("llm.plan")],
) -> Plan:
    """Break a prompt into planned shots."""
    return await plan_shots(providers.select(data.provider), data)


@router.post("/internal/llm/plan", include_in_schema=False, dependencies=[InternalCaller])
async def plan_internal(data: PlanRequest, providers: ProvidersDep) -> Plan:
    """The planner for other services (the sequences worker), behind the internal token."""
    return await plan_shots(providers.select(data.provider), data)
