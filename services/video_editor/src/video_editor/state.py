"""What the video editor API builds at start-up, typed, and the dependencies that read it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storycore_shared.app import state_dependency
from storycore_shared.auth import Principal, PrincipalDep
from storycore_shared.jobs.service import Jobs
from storycore_shared.ratelimit import RateLimiter
from video_editor.exports import Exports
from video_editor.media_service import Media
from video_editor.storyboards import Storyboards
from video_editor.timelines import Timelines


@dataclass
class VideoEditorState:
    timelines: Timelines
    media: Media
    exports: Exports
    storyboards: Storyboards
    limiter: RateLimiter
    sessionmaker: async_sessionmaker[AsyncSession]


VideoEditorStateDep = Annotated[VideoEditorState, Depends(state_dependency(VideoEditorState))]


async def get_jobs(state: VideoEditorStateDep) -> Jobs:
    return state.exports.jobs


async def rate_limited(state: VideoEditorStateDep, principal: PrincipalDep) -> Principal:
    """The caller, once the export rate limit has counted this request (else 429)."""
    await state.limiter.hit(state.sessionmaker, f"video_editor.export:{principal.user_id}")
    return principal


RateLimitedPrincipal = Annotated[Principal, Depends(rate_limited)]
