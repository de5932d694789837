"""What the audio API builds at start-up, typed, and the dependencies that read it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from audio.service import Audio
from storycore_shared.app import state_dependency
from storycore_shared.auth import Principal, PrincipalDep
from storycore_shared.jobs.service import Jobs
from storycore_shared.ratelimit import RateLimiter


@dataclass
class AudioState:
    audio: Audio
    limiter: RateLimiter
    sessionmaker: async_sessionmaker[AsyncSession]


AudioStateDep = Annotated[AudioState, Depends(state_dependency(AudioState))]


async def get_audio(state: AudioStateDep) -> Audio:
    return state.audio


async def get_jobs(state: AudioStateDep) -> Jobs:
    return state.audio.jobs


async def rate_limited(state: AudioStateDep, principal: PrincipalDep) -> Principal:
    """The caller, once the render rate limit has counted this request (else 429)."""
    await state.limiter.hit(state.sessionmaker, f"audio.render:{principal.user_id}")
    return principal


AudioDep = Annotated[Audio, Depends(get_audio)]
RateLimitedPrincipal = Annotated[Principal, Depends(rate_limited)]
