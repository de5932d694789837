"""Media, storyboards and exports (the timeline, track and clip routes are in
:mod:`video_editor.timeline_routes`)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status

from storycore_shared.assets.http import file_route
from storycore_shared.auth import PrincipalDep
from storycore_shared.db import SessionDep, transaction
from storycore_shared.jobs.routes import job_router
from storycore_shared.media import MediaPrincipalDep
from video_editor.exports import Exports
from video_editor.media_service import Media
from video_editor.schemas import (
    ExportPublic,
    ExportRequest,
    FromSequenceRequest,
    MediaImport,
    MediaListPublic,
    MediaPublic,
    StoryboardsPublic,
)
from video_editor.state import RateLimitedPrincipal, VideoEditorStateDep, get_jobs
from video_editor.storyboards import Storyboards
from video_editor.timeline_routes import TimelinesDep
from video_editor.timeline_schemas import TimelinePublic

router = APIRouter(prefix="/api/video-editor", tags=["video-editor"])
UPLOAD_PATH = r"/api/video-editor/projects/[^/]+/media"


async def _media(state: VideoEditorStateDep) -> Media:
    return state.media


async def _exports(state: VideoEditorStateDep) -> Exports:
    return state.exports


async def _storyboards(state: VideoEditorStateDep) -> Storyboards:
    return state.storyboards


MediaDep = Annotated[Media, Depends(_media)]
ExportsDep = Annotated[Exports, Depends(_exports)]
StoryboardsDep = Annotated[Storyboards, Depends(_storyboards)]


@router.post(
    "/projects/{timeline_id}/media",
    status_code=status.HTTP_201_CREATED,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {"file": {"type": "string", "format": "binary"}},
                    }
                }
            },
        }
    },
    responses={413: {"description": "Past the upload limit"}, 415: {"description": "Not media"}},
)
async def upload_media(
    timeline_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    state: VideoEditorStateDep,
    principal: PrincipalDep,
    timelines: TimelinesDep,
    media: MediaDep,
    response: Response,
) -> MediaPublic:
    """Upload a video, audio file or image (multipart field ``file``), streamed to the store."""
    # Checked in a transaction of its own: none stays open (idle) while the body arrives.
    async with transaction(state.sessionmaker) as check:
        timeline = await timelines.owned_timeline(check, principal, timeline_id, lock=False)
    created = await media.upload(
        session,
        timeline=timeline,
        stream=request.stream(),
        content_type=request.headers.get("content-type"),
    )
    response.headers["Location"] = f"/api/video-editor/media/{created.id}"
    return created


@router.get("/projects/{timeline_id}/media")
async def list_media(
    timeline_id: uuid.UUID,
    session: SessionDep,
    principal: PrincipalDep,
    timelines: TimelinesDep,
    media: MediaDep,
) -> MediaListPublic:
    """The timeline's media, oldest first."""
    await timelines.owned_timeline(session, principal, timeline_id, lock=False)
    return await media.of_timeline(session, timeline_id)


@router.post("/projects/{timeline_id}/media/import", status_code=status.HTTP_201_CREATED)
async def import_media(
    timeline_id: uuid.UUID,
    data: MediaImport,
    session: SessionDep,
    state: VideoEditorStateDep,
    principal: PrincipalDep,
    timelines: TimelinesDep,
    media: MediaDep,
    response: Response,
) -> MediaPublic:
    """Import a generated keyframe or an audio record, fetched with the caller's own token."""
    async with transaction(state.sessionmaker) as check:  # none stays open during the fetch
        timeline = await timelines.owned_timeline(check, principal, timeline_id, lock=False)
    created = await media.import_media(session, principal=principal, timeline=timeline, source=data)
    response.headers["Location"] = f"/api/video-editor/media/{created.id}"
    return created


@router.get("/media/{media_id}")
async def get_media(
    media_id: uuid.UUID, session: SessionDep, principal: PrincipalDep, media: MediaDep
) -> MediaPublic:
    """One of the caller's media."""
    return media.public(await media.owned(session, principal, media_id))


@router.delete("/media/{media_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_media(
    media_id: uuid.UUID, session: SessionDep, principal: PrincipalDep, media: MediaDep
) -> None:
    """Delete a medium and its files; clips that used it show missing media."""
    await media.delete(session, principal=principal, media_id=media_id)


@file_route(router, "/media/{media_id}/file")
async def get_media_file(
    media_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    principal: MediaPrincipalDep,
    media: MediaDep,
) -> Response:
    """The medium's bytes (Range, ETag)."""
    return await media.file(request, session, principal=principal, media_id=media_id)


@file_route(
    router,
    "/media/{media_id}/thumbnail",
    responses={200: {"content": {"image/png": {}}}},
)
async def get_media_thumbnail(
    media_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    principal: MediaPrincipalDep,
    media: MediaDep,
) -> Response:
    """The medium's PNG thumbnail."""
    return await media.thumbnail(request, session, principal=principal, media_id=media_id)


@router.get("/projects/{timeline_id}/storyboards")
async def list_storyboards(
    timeline_id: uuid.UUID,
    session: SessionDep,
    principal: PrincipalDep,
    storyboards: StoryboardsDep,
) -> StoryboardsPublic:
    """Generated storyboards of the timeline's project that a timeline can be made from."""
    return await storyboards.available(session, principal=principal, timeline_id=timeline_id)


@router.post("/projects/{timeline_id}/from-sequence")
async def from_sequence(
    timeline_id: uuid.UUID,
    data: FromSequenceRequest,
    session: SessionDep,
    principal: PrincipalDep,
    storyboards: StoryboardsDep,
) -> TimelinePublic:
    """Lay a generated storyboard out: each keyframe held for its shot, with Ken Burns and
    0.5 s dissolves, plus the audio when given."""
    return await storyboards.from_sequence(
        session, principal=principal, timeline_id=timeline_id, data=data
    )


@router.post("/projects/{timeline_id}/export", status_code=status.HTTP_202_ACCEPTED)
async def export_timeline(
    timeline_id: uuid.UUID,
    data: ExportRequest,
    session: SessionDep,
    principal: RateLimitedPrincipal,
    timelines: TimelinesDep,
    exports: ExportsDep,
    response: Response,
) -> ExportPublic:
    """Queue an export of the timeline as it is now (MP4, WebM or GIF)."""
    timeline = await timelines.owned_timeline(session, principal, timeline_id, lock=False)
    tree = await timelines.tree(session, timeline_id)
    created = await exports.create(
        session,
        principal=principal,
        timeline=timeline,
        tree=tree.model_dump(mode="json"),
        data=data,
    )
    response.headers["Location"] = f"/api/video-editor/exports/{created.id}"
    return created


@router.get("/exports/{export_id}")
async def get_export(
    export_id: uuid.UUID, session: SessionDep, principal: PrincipalDep, exports: ExportsDep
) -> ExportPublic:
    """One of the caller's exports."""
    return await exports.get(session, principal=principal, export_id=export_id)


@file_route(
    router,
    "/exports/{export_id}/download",
    responses={200: {"content": {"video/mp4": {}, "video/webm": {}, "image/gif": {}}}},
)
async def download_export(
    export_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    principal: MediaPrincipalDep,
    exports: ExportsDep,
) -> Response:
    """The exported file (Range, ETag)."""
    return await exports.download(request, session, principal=principal, export_id=export_id)


router.include_router(job_router(get_jobs, prefix="/jobs", tags=["video-editor"], status_suffix=""))
