"""What the sequences API builds at start-up, typed, and the dependencies that read it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from sequences.keyframes import Keyframes
from sequences.rigging.service import Rigs
from sequences.service import Sequences
from storycore_shared.app import state_dependency
from storycore_shared.auth import Principal, PrincipalDep
from storycore_shared.jobs.service import Jobs
from storycore_shared.ratelimit import RateLimiter


@dataclass
class SequencesState:
    sequences: Sequences
    keyframes: Keyframes
    rigs: Rigs
    limiter: RateLimiter
    sessionmaker: async_sessionmaker[AsyncSession]


SequencesStateDep = Annotated[SequencesState, Depends(state_dependency(SequencesState))]


async def get_sequences(state: SequencesStateDep) -> Sequences:
    return state.sequences


async def get_jobs(state: SequencesStateDep) -> Jobs:
    return state.sequences.jobs


async def get_keyframes(state: SequencesStateDep) -> Keyframes:
    return state.keyframes


async def rate_limited(state: SequencesStateDep, principal: PrincipalDep) -> Principal:
    """The caller, once the generation rate limit has counted this request (else 429)."""
    await state.limiter.hit(state.sessionmaker, f"sequences.generate:{principal.user_id}")
    return principal


async def get_rigs(state: SequencesStateDep) -> Rigs:
    return state.rigs


async def get_rig_jobs(state: SequencesStateDep) -> Jobs:
    return state.rigs.jobs


async def rig_rate_limited(state: SequencesStateDep, principal: PrincipalDep) -> Principal:
    """The caller, once the rigging rate limit has counted this request (else 429)."""
    await state.limiter.hit(state.sessionmaker, f"rigging.convert:{principal.user_id}")
    return principal


SequencesDep = Annotated[Sequences, Depends(get_sequences)]
KeyframesDep = Annotated[Keyframes, Depends(get_keyframes)]
RigsDep = Annotated[Rigs, Depends(get_rigs)]
RateLimitedPrincipal = Annotated[Principal, Depends(rate_limited)]
RigRateLimitedPrincipal = Annotated[Principal, Depends(rig_rate_limited)]
