"""Timelines, tracks and clips. Every edit answers the whole timeline with its new version as
the ETag; send it back in ``version`` (or If-Match) to be told 409 when someone edited since."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Response, status

from storycore_shared.auth import PrincipalDep
from storycore_shared.db import SessionDep
from storycore_shared.http import (
    IfMatch,
    IfNoneMatch,
    Page,
    PageSize,
    etag,
    expected_version,
    not_modified,
)
from storycore_shared.types import JsonObject
from video_editor.state import VideoEditorStateDep
from video_editor.timeline_schemas import (
    AspectRatiosPublic,
    ClipCreate,
    ClipUpdate,
    FillGapsRequest,
    MoveRequest,
    PresetsPublic,
    SplitRequest,
    TimelineCreate,
    TimelinePublic,
    TimelinesPublic,
    TimelineUpdate,
    TrackCreate,
    TrackReorder,
    TrackUpdate,
)
from video_editor.timelines import Timelines, aspect_ratios, presets

router = APIRouter(prefix="/api/video-editor", tags=["video-editor"])
PREFIX = "/api/video-editor"


async def get_timelines(state: VideoEditorStateDep) -> Timelines:
    return state.timelines


TimelinesDep = Annotated[Timelines, Depends(get_timelines)]
OtioDocument = Annotated[JsonObject, Body(description="An OpenTimelineIO (otio_json) Timeline.")]


def _tagged(response: Response, timeline: TimelinePublic) -> TimelinePublic:
    response.headers["ETag"] = etag(timeline.version)
    return timeline


def _located(response: Response, path: str, timeline: TimelinePublic) -> TimelinePublic:
    response.headers["Location"] = f"{PREFIX}{path}"
    return _tagged(response, timeline)


def _deleted(version: int) -> Response:
    return Response(status_code=status.HTTP_204_NO_CONTENT, headers={"ETag": etag(version)})


# -- timelines ---------------------------------------------------------------------------------


@router.post("/projects", status_code=status.HTTP_201_CREATED)
async def create_timeline(
    data: TimelineCreate,
    session: SessionDep,
    principal: PrincipalDep,
    timelines: TimelinesDep,
    response: Response,
) -> TimelinePublic:
    """Create an empty timeline in one of the caller's projects."""
    made = await timelines.create_timeline(session, principal=principal, data=data)
    return _located(response, f"/projects/{made.id}", made)


@router.get("/projects")
async def list_timelines(
    session: SessionDep,
    principal: PrincipalDep,
    timelines: TimelinesDep,
    project_id: uuid.UUID | None = None,
    page: Page = 1,
    page_size: PageSize = 20,
) -> TimelinesPublic:
    """The caller's timelines (of one project with `project_id`), last edited first."""
    return await timelines.list_timelines(
        session, principal=principal, project_id=project_id, page=page, page_size=page_size
    )


@router.get("/projects/{timeline_id}", response_model=TimelinePublic)
async def get_timeline(
    timeline_id: uuid.UUID,
    session: SessionDep,
    principal: PrincipalDep,
    timelines: TimelinesDep,
    response: Response,
    if_none_match: IfNoneMatch = None,
) -> TimelinePublic | Response:
    """The whole timeline: tracks, clips, transitions (304 for a current ETag)."""
    timeline = await timelines.get_timeline(session, principal=principal, timeline_id=timeline_id)
    if cached := not_modified(if_none_match, timeline.version):
        return cached
    return _tagged(response, timeline)


@router.put("/projects/{timeline_id}")
async def update_timeline(
    timeline_id: uuid.UUID,
    data: TimelineUpdate,
    session: SessionDep,
    principal: PrincipalDep,
    timelines: TimelinesDep,
    response: Response,
    if_match: IfMatch = None,
) -> TimelinePublic:
    """Change the name, description, aspect ratio, size or frame rate."""
    timeline = await timelines.update_timeline(
        session,
        principal=principal,
        timeline_id=timeline_id,
        data=data,
        expected_version=expected_version(data.version, if_match),
    )
    return _tagged(response, timeline)


@router.delete("/projects/{timeline_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_timeline(
    timeline_id: uuid.UUID,
    session: SessionDep,
    principal: PrincipalDep,
    timelines: TimelinesDep,
    if_match: IfMatch = None,
) -> Response:
    """Delete a timeline with its tracks, clips and media."""
    await timelines.delete_timeline(
        session,
        principal=principal,
        timeline_id=timeline_id,
        expected_version=expected_version(None, if_match),
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- tracks ------------------------------------------------------------------------------------


@router.post("/projects/{timeline_id}/tracks", status_code=status.HTTP_201_CREATED)
async def create_track(
    timeline_id: uuid.UUID,
    data: TrackCreate,
    session: SessionDep,
    principal: PrincipalDep,
    timelines: TimelinesDep,
    response: Response,
    if_match: IfMatch = None,
) -> TimelinePublic:
    """Add a track on top of the others; answers the timeline."""
    made = await timelines.add_track(
        session,
        principal=principal,
        timeline_id=timeline_id,
        data=data,
        expected_version=expected_version(data.version, if_match),
    )
    return _located(response, f"/tracks/{made.id}", made.timeline)


@router.put("/tracks/{track_id}")
async def update_track(
    track_id: uuid.UUID,
    data: TrackUpdate,
    session: SessionDep,
    principal: PrincipalDep,
    timelines: TimelinesDep,
    response: Response,
    if_match: IfMatch = None,
) -> TimelinePublic:
    """Rename, mute, lock or unlock a track, or set its volume."""
    timeline = await timelines.update_track(
        session,
        principal=principal,
        track_id=track_id,
        data=data,
        expected_version=expected_version(data.version, if_match),
    )
    return _tagged(response, timeline)


@router.delete("/tracks/{track_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_track(
    track_id: uuid.UUID,
    session: SessionDep,
    principal: PrincipalDep,
    timelines: TimelinesDep,
    if_match: IfMatch = None,
) -> Response:
    """Delete a track and its clips (the ETag is the timeline's new version)."""
    version = await timelines.delete_track(
        session,
        principal=principal,
        track_id=track_id,
        expected_version=expected_version(None, if_match),
    )
    return _deleted(version)


@router.post("/projects/{timeline_id}/tracks/reorder")
async def reorder_tracks(
    timeline_id: uuid.UUID,
    data: TrackReorder,
    session: SessionDep,
    principal: PrincipalDep,
    timelines: TimelinesDep,
    response: Response,
    if_match: IfMatch = None,
) -> TimelinePublic:
    """Put every track in the order given, bottom first."""
    timeline = await timelines.reorder_tracks(
        session,
        principal=principal,
        timeline_id=timeline_id,
        data=data,
        expected_version=expected_version(data.version, if_match),
    )
    return _tagged(response, timeline)


@router.post("/tracks/{track_id}/fill-gaps")
async def fill_gaps(
    track_id: uuid.UUID,
    session: SessionDep,
    principal: PrincipalDep,
    timelines: TimelinesDep,
    response: Response,
    data: FillGapsRequest | None = None,
    if_match: IfMatch = None,
) -> TimelinePublic:
    """Slide the track's clips left so that no gap is left between them."""
    timeline = await timelines.fill_gaps(
        session,
        principal=principal,
        track_id=track_id,
        expected_version=expected_version(data.version if data else None, if_match),
    )
    return _tagged(response, timeline)


# -- clips -------------------------------------------------------------------------------------


@router.post("/tracks/{track_id}/clips", status_code=status.HTTP_201_CREATED)
async def create_clip(
    track_id: uuid.UUID,
    data: ClipCreate,
    session: SessionDep,
    principal: PrincipalDep,
    timelines: TimelinesDep,
    response: Response,
    if_match: IfMatch = None,
) -> TimelinePublic:
    """Add a clip of the timeline's media, or a title on a text track; 409 when it overlaps."""
    made = await timelines.add_clip(
        session,
        principal=principal,
        track_id=track_id,
        data=data,
        expected_version=expected_version(data.version, if_match),
    )
    return _located(response, f"/clips/{made.id}", made.timeline)


@router.put("/clips/{clip_id}")
async def update_clip(
    clip_id: uuid.UUID,
    data: ClipUpdate,
    session: SessionDep,
    principal: PrincipalDep,
    timelines: TimelinesDep,
    response: Response,
    if_match: IfMatch = None,
) -> TimelinePublic:
    """Change a clip: trim (in, out, start), transition, pan and zoom, levels, fades."""
    timeline = await timelines.update_clip(
        session,
        principal=principal,
        clip_id=clip_id,
        data=data,
        expected_version=expected_version(data.version, if_match),
    )
    return _tagged(response, timeline)


@router.delete("/clips/{clip_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_clip(
    clip_id: uuid.UUID,
    session: SessionDep,
    principal: PrincipalDep,
    timelines: TimelinesDep,
    if_match: IfMatch = None,
) -> Response:
    """Delete a clip (the ETag is the timeline's new version)."""
    version = await timelines.delete_clip(
        session,
        principal=principal,
        clip_id=clip_id,
        expected_version=expected_version(None, if_match),
    )
    return _deleted(version)


@router.post("/clips/{clip_id}/split")
async def split_clip(
    clip_id: uuid.UUID,
    data: SplitRequest,
    session: SessionDep,
    principal: PrincipalDep,
    timelines: TimelinesDep,
    response: Response,
    if_match: IfMatch = None,
) -> TimelinePublic:
    """Cut a clip in two at a time strictly inside it."""
    timeline = await timelines.split_clip(
        session,
        principal=principal,
        clip_id=clip_id,
        data=data,
        expected_version=expected_version(data.version, if_match),
    )
    return _tagged(response, timeline)


@router.post("/clips/{clip_id}/move")
async def move_clip(
    clip_id: uuid.UUID,
    data: MoveRequest,
    session: SessionDep,
    principal: PrincipalDep,
    timelines: TimelinesDep,
    response: Response,
    if_match: IfMatch = None,
) -> TimelinePublic:
    """Move a clip in time or to another track; `ripple` moves the clips after it along."""
    timeline = await timelines.move_clip(
        session,
        principal=principal,
        clip_id=clip_id,
        data=data,
        expected_version=expected_version(data.version, if_match),
    )
    return _tagged(response, timeline)


# -- OpenTimelineIO ----------------------------------------------------------------------------


@router.get(
    "/projects/{timeline_id}/otio",
    response_class=Response,
    responses={200: {"content": {"application/json": {}}}},
)
async def export_otio(
    timeline_id: uuid.UUID, session: SessionDep, principal: PrincipalDep, timelines: TimelinesDep
) -> Response:
    """The timeline as an OpenTimelineIO (otio_json) document."""
    document = await timelines.export_otio(session, principal=principal, timeline_id=timeline_id)
    return Response(content=document, media_type="application/json")


@router.post("/projects/{timeline_id}/otio")
async def import_otio(
    timeline_id: uuid.UUID,
    document: OtioDocument,
    session: SessionDep,
    principal: PrincipalDep,
    timelines: TimelinesDep,
    response: Response,
    if_match: IfMatch = None,
) -> TimelinePublic:
    """Replace the tracks and clips by an OpenTimelineIO document's (this timeline's media)."""
    timeline = await timelines.import_otio(
        session,
        principal=principal,
        timeline_id=timeline_id,
        document=document,
        expected_version=expected_version(None, if_match),
    )
    return _tagged(response, timeline)


# -- reference ---------------------------------------------------------------------------------


@router.get("/presets")
async def list_presets() -> PresetsPublic:
    """Export presets and their sizes (custom: any size)."""
    return presets()


@router.get("/aspect-ratios")
async def list_aspect_ratios() -> AspectRatiosPublic:
    """Timeline aspect ratios and the size each gives by default."""
    return aspect_ratios()
