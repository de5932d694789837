"""What the llm service builds at start-up, and the dependencies that hand it to routes."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from llm.config import Settings
from llm.errors import ProviderNotConfigured
from llm.generation import Generation
from llm.providers.registry import Providers
from storycore_shared.app import state_dependency
from storycore_shared.auth import Principal, PrincipalDep
from storycore_shared.errors import Unauthorized
from storycore_shared.ratelimit import RateLimiter


@dataclass(frozen=True)
class LlmState:
    settings: Settings
    providers: Providers
    generation: Generation
    limiter: RateLimiter
    sessionmaker: async_sessionmaker[AsyncSession]


LlmStateDep = Annotated[LlmState, Depends(state_dependency(LlmState))]


async def get_generation(state: LlmStateDep) -> Generation:
    return state.generation


async def get_providers(state: LlmStateDep) -> Providers:
    return state.providers


async def get_sessionmaker(state: LlmStateDep) -> async_sessionmaker[AsyncSession]:
    return state.sessionmaker


GenerationDep = Annotated[Generation, Depends(get_generation)]
ProvidersDep = Annotated[Providers, Depends(get_providers)]
# For routes that open their own short transactions around a slow provider call.
SessionmakerDep = Annotated[async_sessionmaker[AsyncSession], Depends(get_sessionmaker)]


def rate_limited(action: str) -> Any:
    """The caller, counted against the per-user limit of ``action`` (429 past it)."""

    async def check(state: LlmStateDep, principal: PrincipalDep) -> Principal:
        await state.limiter.hit(state.sessionmaker, f"{action}:{principal.user_id}")
        return principal

    return Depends(check)


async def wants_event_stream(
    accept: Annotated[str, Header(include_in_schema=False)] = "",
) -> bool:
    return "text/event-stream" in accept


WantsEventStream = Annotated[bool, Depends(wants_event_stream)]

_bearer = HTTPBearer(auto_error=False)


async def require_internal_token(
    state: LlmStateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Internal routes answer only to ``Authorization: Bearer <LLM_INTERNAL_TOKEN>``."""
    if state.settings.INTERNAL_TOKEN is None:
        raise ProviderNotConfigured("The internal planning route is not enabled here.")
    expected = state.settings.INTERNAL_TOKEN.get_secret_value().encode()
    if credentials is None or not hmac.compare_digest(credentials.credentials.encode(), expected):
        raise Unauthorized("The internal token is missing or wrong.")


InternalCaller = Depends(require_internal_token)
