"""The llm service's small use cases: the model catalogue, templates, usage and the cache."""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncSession

from llm import repository
from llm.providers.registry import Providers
from llm.schemas import (
    CacheCleared,
    ModelInfo,
    ModelsPublic,
    RenderRequest,
    RenderResponse,
    TemplateInfo,
    TemplatesPublic,
    UsageSummary,
)
from llm.templates import TEMPLATES, get_template
from storycore_shared.auth import Principal

MODELS_TIMEOUT_SECONDS = 5


async def list_models(providers: Providers) -> ModelsPublic:
    """Every configured provider's models, asked in parallel; a failure is listed, not raised."""

    async def ask(name: str) -> tuple[str, list[str] | str]:
        provider = providers.available[name]
        try:
            return name, await asyncio.wait_for(provider.models(), timeout=MODELS_TIMEOUT_SECONDS)
        except Exception as exc:
            return name, getattr(exc, "detail", None) or type(exc).__name__

    answers = await asyncio.gather(*(ask(n) for n in sorted(providers.available)))
    models: list[ModelInfo] = []
    unavailable: dict[str, str] = {}
    for name, result in answers:
        if isinstance(result, str):
            unavailable[name] = result
            continue
        default = providers.available[name].default_model
        models += [ModelInfo(provider=name, name=m, default=m == default) for m in result]
    return ModelsPublic(models=models, default_provider=providers.default, unavailable=unavailable)


def list_templates() -> TemplatesPublic:
    return TemplatesPublic(
        templates=[
            TemplateInfo(name=t.name, description=t.description, variables=t.variables)
            for t in TEMPLATES.values()
        ]
    )


def render_template(data: RenderRequest) -> RenderResponse:
    return RenderResponse(name=data.name, prompt=get_template(data.name).render(data.variables))


async def usage_summary(session: AsyncSession, principal: Principal) -> UsageSummary:
    totals = await repository.usage_totals(session, principal.user_id)
    return UsageSummary(
        user_id=principal.user_id,
        total_tokens=totals["prompt_tokens"] + totals["completion_tokens"],
        **totals,
    )


async def clear_cache(session: AsyncSession, principal: Principal) -> CacheCleared:
    return CacheCleared(deleted=await repository.cache_clear(session, principal.user_id))
