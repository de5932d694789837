from __future__ import annotations

import uuid
from typing import Any, Literal

from fastapi import APIRouter, Request, Response, status

from audio.schemas import (
    AudioPublic,
    AudiosPublic,
    AudioType,
    AudiowaveformPublic,
    AutomixPublic,
    AutomixRequest,
    ExportMixRequest,
    GenerateRequest,
    MaxPoints,
    MixRequest,
    MultitrackPublic,
    MultitrackRequest,
    ProfileRequest,
    SamplesPerSecond,
    WaveformPublic,
)
from audio.state import AudioDep, RateLimitedPrincipal, get_jobs
from storycore_shared.assets.http import file_route
from storycore_shared.auth import PrincipalDep
from storycore_shared.db import SessionDep
from storycore_shared.http import Page, PageSize
from storycore_shared.jobs.routes import job_router
from storycore_shared.media import MediaPrincipalDep

router = APIRouter(prefix="/api/audio", tags=["audio"])
projects_router = APIRouter(prefix="/api/projects", tags=["audio"])


def _located(response: Response, record: AudioPublic) -> AudioPublic:
    response.headers["Location"] = f"/api/audio/{record.id}"
    return record


@router.post("/generate", status_code=status.HTTP_202_ACCEPTED)
async def generate_audio(
    data: GenerateRequest,
    session: SessionDep,
    principal: RateLimitedPrincipal,
    audio: AudioDep,
    response: Response,
) -> AudioPublic:
    """Queue a voice, music, sfx or ambient render for one of the caller's projects."""
    return _located(response, await audio.generate(session, principal=principal, data=data))


@router.post("/generate-multitrack", status_code=status.HTTP_202_ACCEPTED)
async def generate_multitrack(
    data: MultitrackRequest, session: SessionDep, principal: RateLimitedPrincipal, audio: AudioDep
) -> MultitrackPublic:
    """Queue a profile's stems: music 6, sfx 4, voice 1."""
    return await audio.multitrack(session, principal=principal, data=data)


@router.post("/build-profile")
async def build_profile(
    data: ProfileRequest, session: SessionDep, principal: PrincipalDep, audio: AudioDep
) -> dict[str, Any]:
    """The profile a multitrack render would use (tracks, levels, BPM, filters); no audio."""
    return await audio.build_profile(session, principal=principal, data=data)


@router.post("/mix", status_code=status.HTTP_202_ACCEPTED)
async def mix_audio(
    data: MixRequest,
    session: SessionDep,
    principal: RateLimitedPrincipal,
    audio: AudioDep,
    response: Response,
) -> AudioPublic:
    """Queue a mixdown of the caller's rendered tracks of one project."""
    return _located(response, await audio.mix(session, principal=principal, data=data))


@router.post("/automix")
async def automix(
    data: AutomixRequest, session: SessionDep, principal: PrincipalDep, audio: AudioDep
) -> AutomixPublic:
    """Store a mix configuration made by the studio's rules, with its warnings."""
    return await audio.automix(session, principal=principal, data=data)


@router.post("/export-mix", status_code=status.HTTP_202_ACCEPTED)
async def export_mix(
    data: ExportMixRequest,
    session: SessionDep,
    principal: RateLimitedPrincipal,
    audio: AudioDep,
    response: Response,
) -> AudioPublic:
    """Queue the render of a stored automix configuration."""
    return _located(response, await audio.export_mix(session, principal=principal, data=data))


@router.get("/{audio_id}")
async def get_audio(
    audio_id: uuid.UUID, session: SessionDep, principal: PrincipalDep, audio: AudioDep
) -> AudioPublic:
    """One of the caller's audio records."""
    return await audio.get(session, principal=principal, audio_id=audio_id)


@router.delete("/{audio_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_audio(
    audio_id: uuid.UUID, session: SessionDep, principal: PrincipalDep, audio: AudioDep
) -> None:
    """Delete a record and its file (a render still running is cancelled)."""
    await audio.delete(session, principal=principal, audio_id=audio_id)


@file_route(
    router,
    "/{audio_id}/download",
    responses={
        200: {"content": {"audio/wav": {}, "audio/flac": {}, "audio/mpeg": {}, "audio/ogg": {}}}
    },
)
async def download_audio(
    audio_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    principal: MediaPrincipalDep,
    audio: AudioDep,
) -> Response:
    """The file (bearer or signed URL; Range, ETag and If-None-Match)."""
    return await audio.download(request, session, principal=principal, audio_id=audio_id)


@router.get("/{audio_id}/waveform")
async def get_waveform(
    audio_id: uuid.UUID,
    session: SessionDep,
    principal: PrincipalDep,
    audio: AudioDep,
    samples_per_second: SamplesPerSecond = 60,
    max_points: MaxPoints = 1000,
    format: Literal["storycore", "audiowaveform"] = "storycore",
) -> WaveformPublic | AudiowaveformPublic:
    """Peaks computed from the samples; ``format=audiowaveform`` gives peaks.js's JSON v2."""
    return await audio.waveform(
        session,
        principal=principal,
        audio_id=audio_id,
        samples_per_second=samples_per_second,
        max_points=max_points,
        shape=format,
    )


@projects_router.get("/{project_id}/audio")
async def list_project_audio(
    project_id: uuid.UUID,
    session: SessionDep,
    principal: PrincipalDep,
    audio: AudioDep,
    type: AudioType | None = None,
    page: Page = 1,
    page_size: PageSize = 20,
) -> AudiosPublic:
    """The caller's audio records of one project, newest first."""
    return await audio.list_project(
        session,
        principal=principal,
        project_id=project_id,
        kind=type,
        page=page,
        page_size=page_size,
    )


router.include_router(job_router(get_jobs, prefix="/jobs", tags=["audio"], status_suffix=""))
