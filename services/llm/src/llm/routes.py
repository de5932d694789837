from __future__ import annotations

import asyncio
import hmac
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette.sse import EventSourceResponse

from llm import repository
from llm.config import Settings
from llm.errors import ProviderNotConfigured
from llm.generation import Generation
from llm.planner import plan_shots
from llm.providers.registry import Providers
from llm.scenario import service as scenarios
from llm.scenario.document import ScenarioDocument
from llm.scenario.export import MEDIA_TYPES, export
from llm.schemas import (
    CacheCleared,
    ChatRequest,
    ChatResponse,
    GenerateRequest,
    GenerateResponse,
    ModelInfo,
    ModelsPublic,
    RenderRequest,
    RenderResponse,
    TemplateInfo,
    TemplatesPublic,
    UsageSummary,
)
from llm.templates import TEMPLATES, get_template
from storycore_shared.auth import Principal, PrincipalDep
from storycore_shared.contracts.planning import Plan, PlanRequest
from storycore_shared.db import SessionDep, transaction
from storycore_shared.errors import Unauthorized
from storycore_shared.http import Page, PageSize
from storycore_shared.ratelimit import RateLimiter

router = APIRouter(tags=["llm"])


def get_generation(request: Request) -> Generation:
    generation: Generation = request.app.state.generation
    return generation


def get_providers(request: Request) -> Providers:
    providers: Providers = request.app.state.providers
    return providers


GenerationDep = Annotated[Generation, Depends(get_generation)]
ProvidersDep = Annotated[Providers, Depends(get_providers)]


def rate_limited(action: str) -> Any:
    async def check(request: Request, principal: PrincipalDep) -> Principal:
        limiter: RateLimiter = request.app.state.limiter
        await limiter.hit(request.app.state.sessionmaker, f"{action}:{principal.user_id}")
        return principal

    return Depends(check)


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
    request: Request,
    generation: GenerationDep,
    principal: Annotated[Principal, rate_limited("llm.stream")],
) -> EventSourceResponse | GenerateResponse:
    """Generate as a stream of SSE frames (start, chunk, usage, done, or error)."""
    if "text/event-stream" not in request.headers.get("accept", ""):
        return await generation.generate(principal, data)
    frames = await generation.stream(principal, data)
    return EventSourceResponse(frames, ping=15, headers={"X-Accel-Buffering": "no"})


@router.get("/api/llm/models")
async def list_models(providers: ProvidersDep, _: PrincipalDep) -> ModelsPublic:
    """Models of every configured provider (those that answered)."""

    async def ask(name: str) -> tuple[str, list[str] | str]:
        provider = providers.available[name]
        try:
            return name, await asyncio.wait_for(provider.models(), timeout=5)
        except Exception as exc:
            return name, getattr(exc, "detail", None) or type(exc).__name__

    answers = await asyncio.gather(*(ask(n) for n in sorted(providers.available)))
    models, unavailable = [], {}
    for name, result in answers:
        if isinstance(result, str):
            unavailable[name] = result
            continue
        default = providers.available[name].default_model
        models += [ModelInfo(provider=name, name=m, default=m == default) for m in result]
    return ModelsPublic(models=models, default_provider=providers.default, unavailable=unavailable)


@router.get("/api/llm/templates")
async def list_templates(_: PrincipalDep) -> TemplatesPublic:
    """The prompt templates and their variables."""
    return TemplatesPublic(
        templates=[
            TemplateInfo(name=t.name, description=t.description, variables=t.variables)
            for t in TEMPLATES.values()
        ]
    )


@router.post("/api/llm/render-template")
async def render_template(data: RenderRequest, _: PrincipalDep) -> RenderResponse:
    """Fill a template; a missing variable answers 422 naming it."""
    return RenderResponse(name=data.name, prompt=get_template(data.name).render(data.variables))


@router.get("/api/llm/usage")
async def get_usage(session: SessionDep, principal: PrincipalDep) -> UsageSummary:
    """The caller's own usage, recorded per request."""
    totals = await repository.usage_totals(session, principal.user_id)
    return UsageSummary(
        user_id=principal.user_id,
        total_tokens=totals["prompt_tokens"] + totals["completion_tokens"],
        **totals,
    )


@router.delete("/api/llm/cache")
async def clear_cache(session: SessionDep, principal: PrincipalDep) -> CacheCleared:
    """Forget the caller's cached answers (nobody else's)."""
    return CacheCleared(deleted=await repository.cache_clear(session, principal.user_id))


@router.post("/api/llm/plan")
async def plan(
    data: PlanRequest,
    providers: ProvidersDep,
    _: Annotated[Principal, rate_limited("llm.plan")],
) -> Plan:
    """Break a prompt into planned shots."""
    return await plan_shots(providers.select(data.provider), data)


@router.post("/internal/llm/plan", include_in_schema=False)
async def plan_internal(
    data: PlanRequest,
    request: Request,
    providers: ProvidersDep,
    authorization: Annotated[str | None, Header()] = None,
) -> Plan:
    """The planner for other services (the sequences worker), behind the internal token."""
    settings: Settings = request.app.state.runtime.settings
    if settings.INTERNAL_TOKEN is None:
        raise ProviderNotConfigured("The internal planning route is not enabled here.")
    expected = f"Bearer {settings.INTERNAL_TOKEN.get_secret_value()}"
    if not hmac.compare_digest((authorization or "").encode(), expected.encode()):
        raise Unauthorized("The internal token is missing or wrong.")
    return await plan_shots(providers.select(data.provider), data)


# -- scenarios ---------------------------------------------------------------------------------


class TransformRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    story: Annotated[str, Field(min_length=10, max_length=50_000)]
    title: Annotated[str, Field(max_length=255)] | None = None
    provider: Literal["ollama", "openai", "anthropic", "mock"] | None = None


class TransformResponse(BaseModel):
    scenario_id: uuid.UUID
    status: str
    summary: dict[str, Any]


class ScenarioPublic(BaseModel):
    id: uuid.UUID
    title: str
    status: str
    provider: str
    summary: dict[str, Any]
    created_at: datetime
    mock: bool


class ScenariosPublic(BaseModel):
    scenarios: list[ScenarioPublic]
    total: int
    page: int
    page_size: int


def _scenario_public(scenario: Any) -> ScenarioPublic:
    return ScenarioPublic(
        id=scenario.id,
        title=scenario.title,
        status=scenario.status,
        provider=scenario.provider,
        summary=scenario.summary,
        created_at=scenario.created_at,
        mock=scenario.provider == "mock",
    )


@router.post("/api/scenario/transform", status_code=status.HTTP_201_CREATED, tags=["scenario"])
async def transform_story(
    data: TransformRequest,
    request: Request,
    providers: ProvidersDep,
    principal: Annotated[Principal, rate_limited("scenario.transform")],
) -> TransformResponse:
    """Turn a story into a scenario document."""
    provider = providers.select(data.provider)
    document = await scenarios.build_document(provider, data.story, data.title)
    async with transaction(request.app.state.sessionmaker) as session:
        scenario = await scenarios.transform(
            session,
            principal=principal,
            provider=provider,
            story=data.story,
            document=document,
        )
    return TransformResponse(
        scenario_id=scenario.id, status=scenario.status, summary=scenario.summary
    )


@router.get("/api/scenario", tags=["scenario"])
async def list_scenarios(
    session: SessionDep, principal: PrincipalDep, page: Page = 1, page_size: PageSize = 20
) -> ScenariosPublic:
    """The caller's scenarios, newest first."""
    items, total = await repository.list_scenarios(
        session, principal.user_id, offset=(page - 1) * page_size, limit=page_size
    )
    return ScenariosPublic(
        scenarios=[_scenario_public(s) for s in items], total=total, page=page, page_size=page_size
    )


@router.get("/api/scenario/{scenario_id}", tags=["scenario"])
async def get_scenario(
    scenario_id: uuid.UUID, session: SessionDep, principal: PrincipalDep
) -> ScenarioPublic:
    """One scenario's summary."""
    return _scenario_public(await scenarios.get_owned(session, principal, scenario_id))


@router.get("/api/scenario/{scenario_id}/full", tags=["scenario"])
async def get_scenario_document(
    scenario_id: uuid.UUID, session: SessionDep, principal: PrincipalDep
) -> dict[str, Any]:
    """The whole scenario document."""
    scenario = await scenarios.get_owned(session, principal, scenario_id)
    return {"id": str(scenario.id), "provider": scenario.provider, **scenario.document}


@router.get("/api/scenario/{scenario_id}/export", tags=["scenario"])
async def export_scenario(
    scenario_id: uuid.UUID,
    session: SessionDep,
    principal: PrincipalDep,
    format: Literal["json", "txt", "md", "html"] = "json",
) -> Response:
    """The scenario as a json, txt, md or html file."""
    scenario = await scenarios.get_owned(session, principal, scenario_id)
    document = ScenarioDocument.model_validate(scenario.document)
    return Response(
        export(document, format),
        media_type=MEDIA_TYPES[format],
        headers={
            "Content-Disposition": f'attachment; filename="scenario-{scenario.id}.{format}"',
            "X-Content-Type-Options": "nosniff",
        },
    )


@router.delete(
    "/api/scenario/{scenario_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["scenario"]
)
async def delete_scenario(
    scenario_id: uuid.UUID, session: SessionDep, principal: PrincipalDep
) -> Response:
    """Delete a scenario."""
    await session.delete(await scenarios.get_owned(session, principal, scenario_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
