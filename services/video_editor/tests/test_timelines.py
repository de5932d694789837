"""Timelines, tracks and clips: the use cases on real Postgres (each test rolled back)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import opentimelineio as otio
import pytest
from fastapi import FastAPI
from opentimelineio import opentime, schema
from pydantic import ValidationError
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession

from storycore_shared.auth import Principal, get_principal
from storycore_shared.db import get_session
from storycore_shared.errors import (
    ProjectNotFound,
    ProjectReadOnly,
    VersionConflict,
    install_error_handlers,
)
from storycore_shared.replicas.projects import ProjectDirectory
from storycore_testkit.service_db import add_project
from video_editor import timeline_repository as repository
from video_editor.errors import (
    ClipNotFound,
    ClipOverlap,
    InvalidEdit,
    MediaNotFound,
    TimelineNotFound,
    TrackLocked,
)
from video_editor.models import project_replica, timeline
from video_editor.timeline_routes import get_timelines, router
from video_editor.timeline_schemas import (
    ClipCreate,
    ClipPublic,
    ClipUpdate,
    MoveRequest,
    SplitRequest,
    TimelineCreate,
    TimelinePublic,
    TimelineUpdate,
    TrackCreate,
    TrackReorder,
    TrackUpdate,
)
from video_editor.timelines import Timelines, aspect_ratios, check_track, presets

OWNER = Principal(user_id=uuid.uuid4())
STRANGER = Principal(user_id=uuid.uuid4())
DISSOLVE = {"type": "dissolve", "duration": 0.5}
KEN_BURNS = {
    "from_rect": {"x": 0.0, "y": 0.0, "w": 1.0, "h": 1.0},
    "to_rect": {"x": 0.2, "y": 0.1, "w": 0.6, "h": 0.6},
}


@pytest.fixture
def timelines() -> Timelines:
    return Timelines(ProjectDirectory(project_replica, "http://127.0.0.1:9"))


async def _timeline(session: AsyncSession, timelines: Timelines, **fields: Any) -> TimelinePublic:
    project_id = await add_project(session, timelines.directory, OWNER.user_id)
    data = TimelineCreate.model_validate({"project_id": project_id, "name": "Cut", **fields})
    return await timelines.create_timeline(session, principal=OWNER, data=data)


async def _media(
    session: AsyncSession,
    tl: TimelinePublic,
    kind: str = "video",
    *,
    duration: float | None = 30.0,
    has_audio: bool = True,
    source_ref: dict[str, Any] | None = None,
) -> uuid.UUID:
    media_id = uuid.uuid4()
    await repository.add_media(
        session,
        {
            "id": media_id,
            "timeline_id": tl.id,
            "project_id": tl.project_id,
            "owner_id": OWNER.user_id,
            "kind": kind,
            "name": f"{kind}-{media_id.hex[:6]}",
            "content_type": {"video": "video/mp4", "audio": "audio/wav", "image": "image/png"}[
                kind
            ],
            "size": 1000,
            "sha256": "0" * 64,
            "duration_seconds": None if kind == "image" else duration,
            "width": None if kind == "audio" else 640,
            "height": None if kind == "audio" else 360,
            "fps": 25.0 if kind == "video" else None,
            "has_audio": kind != "image" and has_audio,
            "asset_key": f"media/{media_id}",
            "thumbnail_key": f"media/{media_id}.thumbnail.png",
            "source": "audio" if source_ref else "upload",
            "source_ref": source_ref,
        },
    )
    return media_id


async def _track(
    session: AsyncSession,
    timelines: Timelines,
    tl: TimelinePublic,
    kind: str = "video",
    **extra: Any,
) -> uuid.UUID:
    made = await timelines.add_track(
        session,
        principal=OWNER,
        timeline_id=tl.id,
        data=TrackCreate.model_validate({"kind": kind, **extra}),
        expected_version=None,
    )
    return made.id


async def _clip(
    session: AsyncSession,
    timelines: Timelines,
    track_id: uuid.UUID,
    media_id: uuid.UUID | None,
    start: float,
    duration: float,
    **extra: Any,
) -> uuid.UUID:
    values = {"start": start, "duration": duration, **extra}
    if media_id is not None:
        values["media_id"] = media_id
    made = await timelines.add_clip(
        session,
        principal=OWNER,
        track_id=track_id,
        data=ClipCreate.model_validate(values),
        expected_version=None,
    )
    return made.id


def _clips(tl: TimelinePublic, track_id: uuid.UUID) -> list[ClipPublic]:
    track = next(t for t in tl.tracks if t.id == track_id)
    return sorted(track.clips, key=lambda c: c.start)


def _spans(tl: TimelinePublic, track_id: uuid.UUID) -> list[tuple[float, float]]:
    return [(round(c.start, 6), round(c.start + c.duration, 6)) for c in _clips(tl, track_id)]


async def _row_version(session: AsyncSession, timeline_id: uuid.UUID) -> int:
    found = await session.scalar(select(timeline.c.version).where(timeline.c.id == timeline_id))
    assert isinstance(found, int)
    return found


# -- timelines -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ratio", "size"),
    [
        ("16:9", (1920, 1080)),
        ("9:16", (1080, 1920)),
        ("1:1", (1080, 1080)),
        ("4:5", (1080, 1350)),
        ("4:3", (1440, 1080)),
        ("21:9", (2560, 1080)),
    ],
)
async def test_a_new_timeline_takes_its_size_from_the_aspect_ratio(
    session: AsyncSession, timelines: Timelines, ratio: str, size: tuple[int, int]
) -> None:
    tl = await _timeline(session, timelines, aspect_ratio=ratio)

    assert (tl.aspect_ratio, (tl.width, tl.height), tl.fps) == (ratio, size, 24.0)
    assert (tl.version, tl.duration_seconds, tl.tracks, tl.name) == (1, 0.0, [], "Cut")


async def test_timeline_defaults_sizes_and_bounds(
    session: AsyncSession, timelines: Timelines
) -> None:
    plain = await _timeline(session, timelines)
    assert (plain.aspect_ratio, plain.width, plain.height) == ("16:9", 1920, 1080)
    derived = await _timeline(session, timelines, aspect_ratio="9:16", width=720, fps=30)
    assert (derived.width, derived.height, derived.fps) == (720, 1280, 30.0)
    explicit = await _timeline(session, timelines, width=1000, height=500)
    assert (explicit.width, explicit.height) == (1000, 500)

    project_id = uuid.uuid4()
    for bad in (
        {"fps": 0},
        {"fps": 121},
        {"aspect_ratio": "2:1"},
        {"width": 10},
        {"aspect_ratio": "9:16", "width": 7000},  # the derived height is out of bounds
        {"name": ""},
        {"fps": "24"},
        {"colour": "red"},
    ):
        with pytest.raises(ValidationError):
            TimelineCreate.model_validate({"project_id": project_id, "name": "x", **bad})

    assert [r.name for r in aspect_ratios().aspect_ratios] == [
        "16:9",
        "9:16",
        "1:1",
        "4:5",
        "4:3",
        "21:9",
    ]
    sizes = {p.name: (p.width, p.height) for p in presets().presets}
    assert sizes == {
        "youtube_1080p": (1920, 1080),
        "youtube_4k": (3840, 2160),
        "tiktok": (1080, 1920),
        "instagram_feed": (1080, 1080),
        "twitter": (1280, 720),
        "custom": (None, None),
    }


async def test_a_timeline_needs_a_project_the_caller_may_change(
    session: AsyncSession, timelines: Timelines
) -> None:
    theirs = await add_project(session, timelines.directory, STRANGER.user_id)
    public = await add_project(session, timelines.directory, STRANGER.user_id, public=True)

    with pytest.raises(ProjectNotFound):
        await timelines.create_timeline(
            session, principal=OWNER, data=TimelineCreate(project_id=theirs, name="x")
        )
    with pytest.raises(ProjectReadOnly):
        await timelines.create_timeline(
            session, principal=OWNER, data=TimelineCreate(project_id=public, name="x")
        )


async def test_update_list_and_delete_timelines(
    session: AsyncSession, timelines: Timelines
) -> None:
    tl = await _timeline(session, timelines)
    other = await _timeline(session, timelines, name="Second")

    changed = await timelines.update_timeline(
        session,
        principal=OWNER,
        timeline_id=tl.id,
        data=TimelineUpdate(aspect_ratio="1:1", description="square", version=1),
        expected_version=1,
    )
    assert (changed.aspect_ratio, changed.width, changed.height) == ("1:1", 1080, 1080)
    assert (changed.description, changed.version) == ("square", 2)
    assert changed.updated_at >= tl.updated_at
    same = await timelines.update_timeline(
        session, principal=OWNER, timeline_id=tl.id, data=TimelineUpdate(), expected_version=None
    )
    assert same.version == 2  # nothing sent, nothing written
    with pytest.raises(ValidationError):
        TimelineUpdate.model_validate({"name": None})

    listed = await timelines.list_timelines(
        session, principal=OWNER, project_id=None, page=1, page_size=10
    )
    assert {t.id for t in listed.timelines} == {tl.id, other.id}
    assert listed.total == 2
    one = await timelines.list_timelines(
        session, principal=OWNER, project_id=tl.project_id, page=1, page_size=10
    )
    assert [t.id for t in one.timelines] == [tl.id]
    none = await timelines.list_timelines(
        session, principal=STRANGER, project_id=None, page=1, page_size=10
    )
    assert (none.timelines, none.total) == ([], 0)

    with pytest.raises(VersionConflict):
        await timelines.delete_timeline(
            session, principal=OWNER, timeline_id=tl.id, expected_version=1
        )
    await timelines.delete_timeline(session, principal=OWNER, timeline_id=tl.id, expected_version=2)
    with pytest.raises(TimelineNotFound):
        await timelines.get_timeline(session, principal=OWNER, timeline_id=tl.id)


# -- tracks ----------------------------------------------------------------------------------


async def test_tracks_are_added_on_top_renamed_reordered_and_renumbered(
    session: AsyncSession, timelines: Timelines
) -> None:
    tl = await _timeline(session, timelines)
    video = await _track(session, timelines, tl)
    audio = await _track(session, timelines, tl, "audio", volume=0.5)
    second = await _track(session, timelines, tl)
    titles = await _track(session, timelines, tl, "text", name="Titles")

    tree = await timelines.get_timeline(session, principal=OWNER, timeline_id=tl.id)
    assert [(t.id, t.name, t.order) for t in tree.tracks] == [
        (video, "Video 1", 0),
        (audio, "Audio 1", 1),
        (second, "Video 2", 2),
        (titles, "Titles", 3),
    ]
    assert tree.tracks[1].volume == 0.5
    assert tree.version == 5

    reordered = await timelines.reorder_tracks(
        session,
        principal=OWNER,
        timeline_id=tl.id,
        data=TrackReorder(track_ids=[titles, video, second, audio]),
        expected_version=5,
    )
    assert [t.id for t in reordered.tracks] == [titles, video, second, audio]
    assert [t.order for t in reordered.tracks] == [0, 1, 2, 3]
    for wrong in ([titles, video, second], [titles, video, second, audio, audio]):
        with pytest.raises(InvalidEdit, match="once each"):
            await timelines.reorder_tracks(
                session,
                principal=OWNER,
                timeline_id=tl.id,
                data=TrackReorder(track_ids=wrong),
                expected_version=None,
            )

    renamed = await timelines.update_track(
        session,
        principal=OWNER,
        track_id=video,
        data=TrackUpdate(name="Main", muted=True),
        expected_version=None,
    )
    assert next(t for t in renamed.tracks if t.id == video).name == "Main"
    assert next(t for t in renamed.tracks if t.id == video).muted is True

    version = await timelines.delete_track(
        session, principal=OWNER, track_id=video, expected_version=renamed.version
    )
    after = await timelines.tree(session, tl.id)
    assert version == after.version == renamed.version + 1
    assert [(t.id, t.order) for t in after.tracks] == [(titles, 0), (second, 1), (audio, 2)]


# -- clips: placement ------------------------------------------------------------------------


async def test_overlapping_clips_are_refused_naming_the_other(
    session: AsyncSession, timelines: Timelines
) -> None:
    tl = await _timeline(session, timelines)
    track_id = await _track(session, timelines, tl)
    media_id = await _media(session, tl)
    first = await _clip(session, timelines, track_id, media_id, 0, 4)
    await _clip(session, timelines, track_id, media_id, 4, 2)  # touching is fine

    with pytest.raises(ClipOverlap) as caught:
        await _clip(session, timelines, track_id, media_id, 3.5, 1)
    assert caught.value.extra["other_clip_id"] == str(first)
    assert str(first) in caught.value.detail
    # a cut is no transition: it allows no overlap
    with pytest.raises(ClipOverlap):
        await _clip(
            session,
            timelines,
            track_id,
            media_id,
            5.9,
            2,
            transition_in={"type": "cut", "duration": 1},
        )
    tree = await timelines.tree(session, tl.id)
    assert _spans(tree, track_id) == [(0, 4), (4, 6)]
    assert tree.duration_seconds == 6


async def test_a_transition_overlaps_by_at_most_its_duration(
    session: AsyncSession, timelines: Timelines
) -> None:
    tl = await _timeline(session, timelines)
    track_id = await _track(session, timelines, tl)
    media_id = await _media(session, tl)
    first = await _clip(session, timelines, track_id, media_id, 0, 4)

    with pytest.raises(ClipOverlap) as caught:
        await _clip(session, timelines, track_id, media_id, 3.49, 3, transition_in=DISSOLVE)
    assert caught.value.extra["other_clip_id"] == str(first)
    second = await _clip(session, timelines, track_id, media_id, 3.5, 3, transition_in=DISSOLVE)

    tree = await timelines.tree(session, tl.id)
    assert _spans(tree, track_id) == [(0, 4), (3.5, 6.5)]
    assert _clips(tree, track_id)[1].transition_in is not None
    assert tree.duration_seconds == 6.5
    # a third clip may not reach into the first through the second's overlap
    with pytest.raises(ClipOverlap):
        await _clip(
            session,
            timelines,
            track_id,
            media_id,
            3.9,
            5,
            transition_in={"type": "dissolve", "duration": 5},
        )
    # removing the transition of an overlapping clip is refused too
    with pytest.raises(ClipOverlap):
        await timelines.update_clip(
            session,
            principal=OWNER,
            clip_id=second,
            data=ClipUpdate(transition_in=None),
            expected_version=None,
        )


def test_placement_rules_as_a_pure_function() -> None:
    def clip(start: float, length: float, transition: float | None = None) -> dict[str, Any]:
        return {
            "id": uuid.uuid4(),
            "start": start,
            "in_point": 0.0,
            "out_point": length,
            "transition_type": "dissolve" if transition is not None else None,
            "transition_duration": transition,
        }

    check_track([clip(0, 2), clip(2, 2), clip(10, 1)])
    check_track([clip(0, 2), clip(1.5, 2, 0.5)])
    with pytest.raises(ClipOverlap):  # ends inside the clip it overlaps
        check_track([clip(0, 4), clip(3, 0.5, 1)])
    with pytest.raises(ClipOverlap):  # starts with it
        check_track([clip(0, 1), clip(0, 2, 1)])


async def test_media_must_be_of_the_timeline_and_fit_the_track(
    session: AsyncSession, timelines: Timelines
) -> None:
    tl = await _timeline(session, timelines)
    elsewhere = await _timeline(session, timelines, name="Other")
    video_track = await _track(session, timelines, tl)
    audio_track = await _track(session, timelines, tl, "audio")
    text_track = await _track(session, timelines, tl, "text")
    overlay = await _track(session, timelines, tl, "overlay")
    video = await _media(session, tl, duration=5.0)
    silent = await _media(session, tl, has_audio=False)
    sound = await _media(
        session, tl, "audio", duration=8.0, source_ref={"audio_id": str(uuid.uuid4())}
    )
    image = await _media(session, tl, "image")
    foreign = await _media(session, elsewhere)

    with pytest.raises(MediaNotFound):
        await _clip(session, timelines, video_track, foreign, 0, 1)
    with pytest.raises(MediaNotFound):
        await _clip(session, timelines, video_track, uuid.uuid4(), 0, 1)
    with pytest.raises(InvalidEdit, match="audio"):
        await _clip(session, timelines, video_track, sound, 0, 1)
    with pytest.raises(InvalidEdit, match="image"):
        await _clip(session, timelines, audio_track, image, 0, 1)
    with pytest.raises(InvalidEdit, match="no sound"):
        await _clip(session, timelines, audio_track, silent, 0, 1)
    with pytest.raises(InvalidEdit, match="text"):
        await _clip(session, timelines, text_track, video, 0, 1)
    with pytest.raises(InvalidEdit, match="text track"):
        await _clip(session, timelines, video_track, None, 0, 1, text="Hello")
    with pytest.raises(InvalidEdit, match="duration"):  # an image has no length of its own
        await timelines.add_clip(
            session,
            principal=OWNER,
            track_id=overlay,
            data=ClipCreate(media_id=image, start=0),
            expected_version=None,
        )
    with pytest.raises(InvalidEdit, match="passes the end"):
        await _clip(session, timelines, video_track, video, 0, 5, in_point=1)
    with pytest.raises(ValidationError):
        ClipCreate.model_validate({"media_id": str(video), "text": "both", "start": 0})
    with pytest.raises(ValidationError):
        ClipCreate.model_validate({"start": 0, "duration": 1})

    # the rest of the medium by default; video on an audio track plays its sound
    whole = await timelines.add_clip(
        session,
        principal=OWNER,
        track_id=video_track,
        data=ClipCreate(media_id=video, start=0, in_point=1.5),
        expected_version=None,
    )
    await _clip(session, timelines, audio_track, video, 0, 2)
    await _clip(session, timelines, audio_track, sound, 2, 8)
    await _clip(session, timelines, text_track, None, 0, 3, text="Chapter one")
    await _clip(session, timelines, overlay, image, 1, 2, ken_burns=KEN_BURNS, opacity=0.5)
    tree = await timelines.tree(session, tl.id)
    made = next(c for c in _clips(tree, video_track) if c.id == whole.id)
    assert (made.in_point, made.out_point, made.duration) == (1.5, 5.0, 3.5)
    titled = _clips(tree, text_track)[0]
    assert (titled.text, titled.media_id, titled.duration) == ("Chapter one", None, 3.0)
    laid = _clips(tree, overlay)[0]
    assert laid.ken_burns is not None
    assert laid.ken_burns.to_rect.x == 0.2
    assert laid.opacity == 0.5
    assert tree.duration_seconds == 10.0


async def test_trim_changes_in_out_and_start(session: AsyncSession, timelines: Timelines) -> None:
    tl = await _timeline(session, timelines)
    track_id = await _track(session, timelines, tl)
    media_id = await _media(session, tl, duration=10.0)
    clip_id = await _clip(session, timelines, track_id, media_id, 2, 4)

    trimmed = await timelines.update_clip(
        session,
        principal=OWNER,
        clip_id=clip_id,
        data=ClipUpdate(in_point=1, start=3, duration=2, fade_in=0.5, transition_in=DISSOLVE),
        expected_version=None,
    )
    clip = _clips(trimmed, track_id)[0]
    assert (clip.start, clip.in_point, clip.out_point, clip.duration) == (3, 1, 3, 2)
    assert clip.fade_in == 0.5
    assert clip.transition_in is not None
    assert clip.transition_in.type == "dissolve"
    for bad in (ClipUpdate(out_point=11), ClipUpdate(in_point=3), ClipUpdate(text="words")):
        with pytest.raises(InvalidEdit):
            await timelines.update_clip(
                session, principal=OWNER, clip_id=clip_id, data=bad, expected_version=None
            )


# -- clips: move, split, fill gaps -----------------------------------------------------------


async def _three(
    session: AsyncSession, timelines: Timelines
) -> tuple[TimelinePublic, uuid.UUID, list[uuid.UUID]]:
    """A track with clips at 0-2, 3-5 and 6-8."""
    tl = await _timeline(session, timelines)
    track_id = await _track(session, timelines, tl)
    media_id = await _media(session, tl)
    ids = [await _clip(session, timelines, track_id, media_id, s, 2) for s in (0, 3, 6)]
    return tl, track_id, ids


async def test_a_ripple_move_later_pushes_the_later_clips(
    session: AsyncSession, timelines: Timelines
) -> None:
    _, track_id, (a, _b, _c) = await _three(session, timelines)

    moved = await timelines.move_clip(
        session,
        principal=OWNER,
        clip_id=a,
        data=MoveRequest(start=2, ripple=True),
        expected_version=None,
    )
    assert _spans(moved, track_id) == [(2, 4), (5, 7), (8, 10)]
    back = await timelines.move_clip(
        session,
        principal=OWNER,
        clip_id=a,
        data=MoveRequest(start=0.5, ripple=True),
        expected_version=None,
    )
    assert _spans(back, track_id) == [(0.5, 2.5), (3.5, 5.5), (6.5, 8.5)]


async def test_a_plain_move_leaves_the_others_and_refuses_an_occupied_place(
    session: AsyncSession, timelines: Timelines
) -> None:
    _, track_id, (a, b, c) = await _three(session, timelines)

    with pytest.raises(ClipOverlap) as caught:
        await timelines.move_clip(
            session,
            principal=OWNER,
            clip_id=a,
            data=MoveRequest(start=2),
            expected_version=None,
        )
    assert caught.value.extra["other_clip_id"] == str(b)
    earlier = await timelines.move_clip(
        session, principal=OWNER, clip_id=c, data=MoveRequest(start=5), expected_version=None
    )
    assert _spans(earlier, track_id) == [(0, 2), (3, 5), (5, 7)]
    # earlier with ripple pulls the clips after it
    pulled = await timelines.move_clip(
        session,
        principal=OWNER,
        clip_id=b,
        data=MoveRequest(start=2, ripple=True),
        expected_version=None,
    )
    assert _spans(pulled, track_id) == [(0, 2), (2, 4), (4, 6)]
    with pytest.raises(ClipOverlap):  # pulling into the previous clip
        await timelines.move_clip(
            session,
            principal=OWNER,
            clip_id=b,
            data=MoveRequest(start=1, ripple=True),
            expected_version=None,
        )


async def test_a_move_to_another_track(session: AsyncSession, timelines: Timelines) -> None:
    tl, track_id, (a, b, c) = await _three(session, timelines)
    upper = await _track(session, timelines, tl, "overlay")
    titles = await _track(session, timelines, tl, "text")
    media_id = (await timelines.tree(session, tl.id)).tracks[0].clips[0].media_id
    assert media_id is not None
    resident = await _clip(session, timelines, upper, media_id, 1, 2)

    with pytest.raises(ClipOverlap):
        await timelines.move_clip(
            session,
            principal=OWNER,
            clip_id=a,
            data=MoveRequest(start=0, track_id=upper),
            expected_version=None,
        )
    pushed = await timelines.move_clip(
        session,
        principal=OWNER,
        clip_id=b,
        data=MoveRequest(start=0.5, track_id=upper, ripple=True),
        expected_version=None,
    )
    assert _spans(pushed, track_id) == [(0, 2), (6, 8)]
    assert [(c.id, round(c.start, 6)) for c in _clips(pushed, upper)] == [(b, 0.5), (resident, 2.5)]
    with pytest.raises(InvalidEdit):
        await timelines.move_clip(
            session,
            principal=OWNER,
            clip_id=c,
            data=MoveRequest(start=0, track_id=titles),
            expected_version=None,
        )


async def test_split_keeps_times_and_points(session: AsyncSession, timelines: Timelines) -> None:
    tl = await _timeline(session, timelines)
    track_id = await _track(session, timelines, tl)
    media_id = await _media(session, tl)
    image = await _media(session, tl, "image")
    await _clip(session, timelines, track_id, image, 0, 2)
    clip_id = await _clip(
        session,
        timelines,
        track_id,
        media_id,
        1.5,
        4,
        in_point=10,
        transition_in=DISSOLVE,
        fade_in=0.3,
        fade_out=0.7,
        ken_burns=KEN_BURNS,
    )

    split = await timelines.split_clip(
        session,
        principal=OWNER,
        clip_id=clip_id,
        data=SplitRequest(at=2.5),
        expected_version=None,
    )
    _, first, second = _clips(split, track_id)
    assert first.id == clip_id
    assert second.id != clip_id
    assert (first.start, first.in_point, first.out_point) == (1.5, 10, 11)
    assert (second.start, second.in_point, second.out_point) == (2.5, 11, 14)
    assert first.transition_in is not None
    assert second.transition_in is None
    assert (first.fade_in, first.fade_out, second.fade_in, second.fade_out) == (0.3, 0, 0, 0.7)
    assert first.ken_burns is not None
    assert second.ken_burns is not None
    assert first.ken_burns.from_rect.x == 0.0
    assert first.ken_burns.to_rect.x == pytest.approx(0.05)  # a quarter of the way
    assert second.ken_burns.from_rect.x == pytest.approx(0.05)
    assert second.ken_burns.to_rect.x == pytest.approx(0.2)
    assert split.duration_seconds == 5.5

    for at in (2.5, 5.5, 9.0, 1.5):  # on a cut, at the end, outside, at the start
        with pytest.raises(InvalidEdit, match="strictly inside"):
            await timelines.split_clip(
                session,
                principal=OWNER,
                clip_id=second.id,
                data=SplitRequest(at=at),
                expected_version=None,
            )
    with pytest.raises(ClipOverlap):  # inside the dissolve with the previous clip
        await timelines.split_clip(
            session,
            principal=OWNER,
            clip_id=clip_id,
            data=SplitRequest(at=1.8),
            expected_version=None,
        )


async def test_fill_gaps_slides_clips_left(session: AsyncSession, timelines: Timelines) -> None:
    tl = await _timeline(session, timelines)
    track_id = await _track(session, timelines, tl)
    other = await _track(session, timelines, tl)
    media_id = await _media(session, tl)
    await _clip(session, timelines, track_id, media_id, 1, 2)
    await _clip(session, timelines, track_id, media_id, 5, 2, transition_in=DISSOLVE)
    await _clip(session, timelines, track_id, media_id, 7, 1)  # already touching
    await _clip(session, timelines, track_id, media_id, 10, 3)
    await _clip(session, timelines, other, media_id, 4, 1)

    filled = await timelines.fill_gaps(
        session, principal=OWNER, track_id=track_id, expected_version=None
    )

    assert _spans(filled, track_id) == [(0, 2), (1.5, 3.5), (3.5, 4.5), (4.5, 7.5)]
    assert _spans(filled, other) == [(4, 5)]  # other tracks stay
    assert filled.duration_seconds == 7.5


# -- versions, owners, locks -----------------------------------------------------------------


async def test_every_edit_bumps_the_version_and_a_stale_one_conflicts(
    session: AsyncSession, timelines: Timelines
) -> None:
    tl = await _timeline(session, timelines)
    track_id = (
        await timelines.add_track(
            session,
            principal=OWNER,
            timeline_id=tl.id,
            data=TrackCreate(kind="video"),
            expected_version=1,
        )
    ).id
    media_id = await _media(session, tl)
    made = await timelines.add_clip(
        session,
        principal=OWNER,
        track_id=track_id,
        data=ClipCreate(media_id=media_id, start=0, duration=2),
        expected_version=2,
    )
    assert made.timeline.version == 3 == await _row_version(session, tl.id)

    stale: list[Callable[[], Awaitable[object]]] = [
        lambda: timelines.update_timeline(
            session,
            principal=OWNER,
            timeline_id=tl.id,
            data=TimelineUpdate(name="x"),
            expected_version=2,
        ),
        lambda: timelines.add_track(
            session,
            principal=OWNER,
            timeline_id=tl.id,
            data=TrackCreate(kind="audio"),
            expected_version=2,
        ),
        lambda: timelines.update_clip(
            session,
            principal=OWNER,
            clip_id=made.id,
            data=ClipUpdate(start=1),
            expected_version=1,
        ),
        lambda: timelines.move_clip(
            session,
            principal=OWNER,
            clip_id=made.id,
            data=MoveRequest(start=1),
            expected_version=2,
        ),
        lambda: timelines.fill_gaps(
            session, principal=OWNER, track_id=track_id, expected_version=2
        ),
        lambda: timelines.delete_clip(
            session, principal=OWNER, clip_id=made.id, expected_version=4
        ),
    ]
    for call in stale:
        with pytest.raises(VersionConflict) as caught:
            await call()
        assert caught.value.extra == {"current_version": 3}
    assert await _row_version(session, tl.id) == 3

    moved = await timelines.move_clip(
        session, principal=OWNER, clip_id=made.id, data=MoveRequest(start=1), expected_version=3
    )
    assert moved.version == 4
    assert moved.updated_at >= made.timeline.updated_at
    version = await timelines.delete_clip(
        session, principal=OWNER, clip_id=made.id, expected_version=4
    )
    assert version == 5 == await _row_version(session, tl.id)
    with pytest.raises(ClipNotFound):
        await timelines.delete_clip(
            session, principal=OWNER, clip_id=made.id, expected_version=None
        )


async def test_another_users_timeline_is_not_found_by_every_use_case(
    session: AsyncSession, timelines: Timelines
) -> None:
    tl, track_id, (a, _b, _c) = await _three(session, timelines)
    me = STRANGER
    otio = await timelines.export_otio(session, principal=OWNER, timeline_id=tl.id)
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: timelines.get_timeline(session, principal=me, timeline_id=tl.id),
        lambda: timelines.owned_timeline(session, me, tl.id, lock=False),
        lambda: timelines.update_timeline(
            session,
            principal=me,
            timeline_id=tl.id,
            data=TimelineUpdate(name="mine"),
            expected_version=None,
        ),
        lambda: timelines.delete_timeline(
            session, principal=me, timeline_id=tl.id, expected_version=None
        ),
        lambda: timelines.add_track(
            session,
            principal=me,
            timeline_id=tl.id,
            data=TrackCreate(kind="video"),
            expected_version=None,
        ),
        lambda: timelines.update_track(
            session,
            principal=me,
            track_id=track_id,
            data=TrackUpdate(name="x"),
            expected_version=None,
        ),
        lambda: timelines.delete_track(
            session, principal=me, track_id=track_id, expected_version=None
        ),
        lambda: timelines.reorder_tracks(
            session,
            principal=me,
            timeline_id=tl.id,
            data=TrackReorder(track_ids=[track_id]),
            expected_version=None,
        ),
        lambda: timelines.add_clip(
            session,
            principal=me,
            track_id=track_id,
            data=ClipCreate(text="x", start=0, duration=1),
            expected_version=None,
        ),
        lambda: timelines.update_clip(
            session,
            principal=me,
            clip_id=a,
            data=ClipUpdate(start=1),
            expected_version=None,
        ),
        lambda: timelines.delete_clip(session, principal=me, clip_id=a, expected_version=None),
        lambda: timelines.split_clip(
            session, principal=me, clip_id=a, data=SplitRequest(at=1), expected_version=None
        ),
        lambda: timelines.move_clip(
            session, principal=me, clip_id=a, data=MoveRequest(start=9), expected_version=None
        ),
        lambda: timelines.fill_gaps(
            session, principal=me, track_id=track_id, expected_version=None
        ),
        lambda: timelines.export_otio(session, principal=me, timeline_id=tl.id),
        lambda: timelines.import_otio(
            session,
            principal=me,
            timeline_id=tl.id,
            document=json.loads(otio),
            expected_version=None,
        ),
    ]
    for call in calls:
        with pytest.raises(TimelineNotFound):
            await call()
    # and nothing changed
    assert (await timelines.tree(session, tl.id)).version == tl.version + 4
    mine = await timelines.list_timelines(
        session, principal=me, project_id=tl.project_id, page=1, page_size=5
    )
    assert mine.total == 0


async def test_a_locked_track_refuses_clip_edits(
    session: AsyncSession, timelines: Timelines
) -> None:
    tl, track_id, (a, b, _c) = await _three(session, timelines)
    free = await _track(session, timelines, tl)
    media_id = (await timelines.tree(session, tl.id)).tracks[0].clips[0].media_id
    await timelines.update_track(
        session,
        principal=OWNER,
        track_id=track_id,
        data=TrackUpdate(locked=True),
        expected_version=None,
    )
    before = (await timelines.tree(session, tl.id)).version

    edits: list[Callable[[], Awaitable[object]]] = [
        lambda: _clip(session, timelines, track_id, media_id, 20, 1),
        lambda: timelines.update_clip(
            session, principal=OWNER, clip_id=a, data=ClipUpdate(opacity=0.5), expected_version=None
        ),
        lambda: timelines.delete_clip(session, principal=OWNER, clip_id=a, expected_version=None),
        lambda: timelines.split_clip(
            session, principal=OWNER, clip_id=a, data=SplitRequest(at=1), expected_version=None
        ),
        lambda: timelines.move_clip(
            session, principal=OWNER, clip_id=b, data=MoveRequest(start=10), expected_version=None
        ),
        lambda: timelines.move_clip(  # out of it
            session,
            principal=OWNER,
            clip_id=b,
            data=MoveRequest(start=10, track_id=free),
            expected_version=None,
        ),
        lambda: timelines.fill_gaps(
            session, principal=OWNER, track_id=track_id, expected_version=None
        ),
        lambda: timelines.delete_track(
            session, principal=OWNER, track_id=track_id, expected_version=None
        ),
    ]
    for edit in edits:
        with pytest.raises(TrackLocked):
            await edit()
    assert (await timelines.tree(session, tl.id)).version == before

    await timelines.update_track(
        session,
        principal=OWNER,
        track_id=free,
        data=TrackUpdate(locked=True),
        expected_version=None,
    )
    with pytest.raises(TrackLocked):  # into it
        await timelines.move_clip(
            session,
            principal=OWNER,
            clip_id=a,
            data=MoveRequest(start=10, track_id=free),
            expected_version=None,
        )
    unlocked = await timelines.update_track(
        session,
        principal=OWNER,
        track_id=track_id,
        data=TrackUpdate(locked=False),
        expected_version=None,
    )
    assert next(t for t in unlocked.tracks if t.id == track_id).locked is False
    await timelines.delete_clip(session, principal=OWNER, clip_id=a, expected_version=None)


# -- reading in a fixed number of statements -------------------------------------------------


async def _statements(session: AsyncSession, read: Callable[[], Awaitable[object]]) -> int:
    connection = await session.connection()
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(connection.sync_connection, "before_cursor_execute", count)
    try:
        await read()
    finally:
        event.remove(connection.sync_connection, "before_cursor_execute", count)
    return len(seen)


async def test_the_tree_loads_in_a_fixed_number_of_statements(
    session: AsyncSession, timelines: Timelines
) -> None:
    small = await _timeline(session, timelines)
    media_small = await _media(session, small)
    await _clip(session, timelines, await _track(session, timelines, small), media_small, 0, 1)

    big = await _timeline(session, timelines)
    media_big = await _media(session, big)
    for kind in ("video", "overlay", "audio"):
        track_id = await _track(session, timelines, big, kind)
        for index in range(5):
            await _clip(session, timelines, track_id, media_big, index * 2, 1)
    tree = await timelines.tree(session, big.id)
    assert [len(t.clips) for t in tree.tracks] == [5, 5, 5]

    small_count = await _statements(session, lambda: timelines.tree(session, small.id))
    big_count = await _statements(session, lambda: timelines.tree(session, big.id))
    assert small_count == big_count == 3
    got_small = await _statements(
        session, lambda: timelines.get_timeline(session, principal=OWNER, timeline_id=small.id)
    )
    got_big = await _statements(
        session, lambda: timelines.get_timeline(session, principal=OWNER, timeline_id=big.id)
    )
    assert got_small == got_big == 3
    listed = await _statements(
        session,
        lambda: timelines.list_timelines(
            session, principal=OWNER, project_id=None, page=1, page_size=10
        ),
    )
    assert listed == 4  # count, page, tracks, clips


# -- OpenTimelineIO --------------------------------------------------------------------------


async def test_otio_round_trip_keeps_tracks_clips_and_times(
    session: AsyncSession, timelines: Timelines
) -> None:
    tl = await _timeline(session, timelines)
    video_track = await _track(session, timelines, tl)
    audio_track = await _track(session, timelines, tl, "audio", volume=0.8)
    text_track = await _track(session, timelines, tl, "text", name="Titles")
    video = await _media(session, tl, duration=20.0)
    image = await _media(session, tl, "image")
    sound = await _media(session, tl, "audio", duration=60.0)
    await _clip(session, timelines, video_track, video, 0, 4, in_point=2)
    await _clip(session, timelines, video_track, video, 3.5, 3, in_point=8, transition_in=DISSOLVE)
    await _clip(
        session,
        timelines,
        video_track,
        image,
        6.25,
        2,
        ken_burns=KEN_BURNS,
        transition_in={"type": "wipe_left", "duration": 0.5},
    )
    await _clip(session, timelines, video_track, image, 10, 1, transition_in=DISSOLVE)
    await _clip(session, timelines, audio_track, sound, 0.5, 9, in_point=1, fade_out=2, volume=0.7)
    await _clip(session, timelines, text_track, None, 1, 2, text="Chapter one", opacity=0.9)
    before = await timelines.tree(session, tl.id)

    document = json.loads(await timelines.export_otio(session, principal=OWNER, timeline_id=tl.id))
    assert document["OTIO_SCHEMA"].startswith("Timeline")
    after = await timelines.import_otio(
        session,
        principal=OWNER,
        timeline_id=tl.id,
        document=document,
        expected_version=before.version,
    )

    assert after.version == before.version + 1
    assert [(t.kind, t.name, t.order, t.volume) for t in after.tracks] == [
        (t.kind, t.name, t.order, t.volume) for t in before.tracks
    ]
    assert {t.id for t in after.tracks}.isdisjoint({t.id for t in before.tracks})
    for old, new in zip(before.tracks, after.tracks, strict=True):
        assert len(new.clips) == len(old.clips)
        for was, now in zip(
            sorted(old.clips, key=lambda c: c.start),
            sorted(new.clips, key=lambda c: c.start),
            strict=True,
        ):
            assert now.id != was.id
            for key in ("start", "in_point", "out_point", "duration"):
                assert getattr(now, key) == pytest.approx(getattr(was, key), abs=1e-5), key
            for key in ("media_id", "text", "transition_in", "ken_burns", "opacity", "volume"):
                assert getattr(now, key) == getattr(was, key), key
            assert (now.fade_in, now.fade_out) == (was.fade_in, was.fade_out)
    assert after.duration_seconds == pytest.approx(before.duration_seconds)

    # the dissolve overlap is one OTIO transition centred on a cut between abutting clips
    main = document["tracks"]["children"][0]["children"]
    assert [item["OTIO_SCHEMA"].split(".")[0] for item in main] == [
        "Clip",
        "Transition",
        "Clip",
        "Transition",
        "Clip",
        "Gap",
        "Transition",
        "Clip",
    ]


async def test_otio_import_keeps_only_this_timelines_media_and_refuses_garbage(
    session: AsyncSession, timelines: Timelines
) -> None:
    tl = await _timeline(session, timelines)
    elsewhere = await _timeline(session, timelines, name="Other")
    track_id = await _track(session, timelines, tl)
    mine = await _media(session, tl)
    theirs = await _media(session, elsewhere)
    await _clip(session, timelines, track_id, mine, 0, 2)
    await _clip(session, timelines, track_id, mine, 2, 2)
    document = json.loads(await timelines.export_otio(session, principal=OWNER, timeline_id=tl.id))
    clips = document["tracks"]["children"][0]["children"]
    clips[1]["media_references"]["DEFAULT_MEDIA"]["target_url"] = f"storycore:media/{theirs}"
    clips[1]["metadata"]["storycore"]["media_id"] = str(theirs)

    imported = await timelines.import_otio(
        session, principal=OWNER, timeline_id=tl.id, document=document, expected_version=None
    )
    assert [(c.media_id, c.start) for c in imported.tracks[0].clips] == [(mine, 0)]

    for garbage in (
        {"OTIO_SCHEMA": "Nonsense.1"},
        {"tracks": 5},
        {"OTIO_SCHEMA": "Clip.2", "name": "a lone clip"},
    ):
        with pytest.raises(InvalidEdit, match="OpenTimelineIO"):
            await timelines.import_otio(
                session, principal=OWNER, timeline_id=tl.id, document=garbage, expected_version=None
            )
    clips[0]["metadata"]["storycore"]["opacity"] = "opaque"
    with pytest.raises(InvalidEdit, match="opacity"):
        await timelines.import_otio(
            session, principal=OWNER, timeline_id=tl.id, document=document, expected_version=None
        )
    with pytest.raises(VersionConflict):
        await timelines.import_otio(
            session, principal=OWNER, timeline_id=tl.id, document=document, expected_version=1
        )
    assert (await timelines.tree(session, tl.id)).version == imported.version


async def test_a_foreign_otio_dissolve_becomes_an_overlap_within_the_media(
    session: AsyncSession, timelines: Timelines
) -> None:
    tl = await _timeline(session, timelines)
    video = await _media(session, tl, duration=30.0)
    image = await _media(session, tl, "image")
    rate = 24

    def span(start: float, seconds: float) -> opentime.TimeRange:
        return opentime.TimeRange(
            opentime.RationalTime(start * rate, rate), opentime.RationalTime(seconds * rate, rate)
        )

    def dissolve() -> schema.Transition:
        half = opentime.RationalTime(0.5 * rate, rate)
        return schema.Transition(
            transition_type=schema.TransitionTypes.SMPTE_Dissolve, in_offset=half, out_offset=half
        )

    def clip(media_id: uuid.UUID, start: float, seconds: float) -> schema.Clip:
        return schema.Clip(
            name="shot",
            media_reference=schema.ExternalReference(target_url=f"storycore:media/{media_id}"),
            source_range=span(start, seconds),
        )

    document = schema.Timeline(name="From another tool")
    track = schema.Track(name="V1", kind=schema.TrackKind.Video)
    document.tracks.append(track)
    track.extend([clip(video, 2, 4), dissolve(), clip(video, 10, 3)])
    # no handle before the video's first second: the dissolve cannot overlap there
    track.extend([dissolve(), clip(video, 0, 2), schema.Gap(source_range=span(0, 1))])
    # images have all the handles they need; a too short clip bounds the overlap
    track.extend([clip(image, 0, 0.2), dissolve(), clip(image, 0, 2)])

    imported = await timelines.import_otio(
        session,
        principal=OWNER,
        timeline_id=tl.id,
        document=json.loads(otio.adapters.write_to_string(document, "otio_json")),
        expected_version=None,
    )

    (only,) = imported.tracks
    assert (only.kind, only.name) == ("video", "V1")
    ordered = sorted(only.clips, key=lambda c: c.start)
    got = [value for c in ordered for value in (c.start, c.in_point, c.out_point)]
    assert got == pytest.approx(
        [
            *(0.0, 2.0, 6.5),  # extended by half the dissolve into its handle
            *(3.5, 9.5, 13.0),  # starts half the dissolve earlier, from its handle
            *(7.0, 0.0, 2.0),  # no handle before 0: it only meets the previous clip
            *(10.0, 0.0, 0.4 - 2e-5),  # a short clip: overlapped by (nearly) all of it
            *(10.0 + 2e-5, 0.0, 2.2 - 2e-5),
        ],
        abs=1e-6,
    )
    assert [c.transition_in is not None for c in ordered] == [
        False,
        True,
        True,
        False,
        True,
    ]


# -- routes (the thin HTTP layer over the use cases) -----------------------------------------


@pytest.fixture
async def client(session: AsyncSession, timelines: Timelines) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(router)

    async def the_session() -> AsyncIterator[AsyncSession]:
        yield session

    async def the_principal() -> Principal:
        return OWNER

    async def the_timelines() -> Timelines:
        return timelines

    app.dependency_overrides[get_session] = the_session
    app.dependency_overrides[get_principal] = the_principal
    app.dependency_overrides[get_timelines] = the_timelines
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


async def test_routes_answer_with_locations_etags_and_problems(
    session: AsyncSession, timelines: Timelines, client: httpx.AsyncClient
) -> None:
    project_id = await add_project(session, timelines.directory, OWNER.user_id)
    made = await client.post(
        "/api/video-editor/projects",
        json={"project_id": str(project_id), "name": "Cut", "aspect_ratio": "4:5"},
    )
    assert made.status_code == 201, made.text
    tid = made.json()["id"]
    assert made.headers["location"] == f"/api/video-editor/projects/{tid}"
    assert made.headers["etag"] == '"1"'
    assert (made.json()["width"], made.json()["height"]) == (1080, 1350)

    got = await client.get(f"/api/video-editor/projects/{tid}")
    assert (got.status_code, got.headers["etag"]) == (200, '"1"')
    cached = await client.get(f"/api/video-editor/projects/{tid}", headers={"If-None-Match": '"1"'})
    assert cached.status_code == 304

    track = await client.post(
        f"/api/video-editor/projects/{tid}/tracks",
        json={"kind": "text"},
        headers={"If-Match": '"1"'},
    )
    assert track.status_code == 201, track.text
    track_id = track.json()["tracks"][0]["id"]
    assert track.headers["location"] == f"/api/video-editor/tracks/{track_id}"
    clip = await client.post(
        f"/api/video-editor/tracks/{track_id}/clips",
        json={"text": "Hello", "start": 0, "duration": 2, "version": 2},
    )
    assert clip.status_code == 201, clip.text
    clip_id = clip.json()["tracks"][0]["clips"][0]["id"]
    assert clip.headers["location"] == f"/api/video-editor/clips/{clip_id}"
    assert clip.json()["duration_seconds"] == 2

    stale = await client.put(f"/api/video-editor/clips/{clip_id}", json={"start": 1, "version": 1})
    assert stale.status_code == 409
    assert stale.json()["code"] == "version_conflict"
    overlap = await client.post(
        f"/api/video-editor/tracks/{track_id}/clips", json={"text": "x", "start": 1, "duration": 2}
    )
    assert (overlap.status_code, overlap.json()["code"]) == (409, "clip_overlap")
    assert overlap.json()["other_clip_id"] == clip_id
    for bad in (
        {"text": "x", "start": -1, "duration": 1},
        {"text": "x", "start": 0, "duration": 1, "opacity": 2},
        {"text": "x", "start": 0, "duration": 1, "transition_in": {"type": "spin", "duration": 1}},
        {"text": "x", "start": 1e300, "duration": 1},
        {"text": "x", "start": 0, "out_point": 1, "duration": 2},
        {"start": 0, "duration": 1},
    ):
        refused = await client.post(f"/api/video-editor/tracks/{track_id}/clips", json=bad)
        assert refused.status_code == 422, bad
    fill = await client.post(f"/api/video-editor/tracks/{track_id}/fill-gaps")
    assert (fill.status_code, fill.headers["etag"]) == (200, '"4"')
    split = await client.post(f"/api/video-editor/clips/{clip_id}/split", json={"at": 5})
    assert (split.status_code, split.json()["code"]) == (422, "invalid_edit")

    otio_doc = await client.get(f"/api/video-editor/projects/{tid}/otio")
    assert otio_doc.status_code == 200
    assert otio_doc.headers["content-type"].startswith("application/json")
    replaced = await client.post(f"/api/video-editor/projects/{tid}/otio", json=otio_doc.json())
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["tracks"][0]["clips"][0]["text"] == "Hello"
    garbage = await client.post(f"/api/video-editor/projects/{tid}/otio", json={"a": 1})
    assert (garbage.status_code, garbage.json()["code"]) == (422, "invalid_edit")

    new_clip = replaced.json()["tracks"][0]["clips"][0]["id"]
    gone = await client.delete(f"/api/video-editor/clips/{new_clip}", headers={"If-Match": '"5"'})
    assert (gone.status_code, gone.headers["etag"], gone.content) == (204, '"6"', b"")
    listed = await client.get("/api/video-editor/projects", params={"project_id": str(project_id)})
    assert [t["id"] for t in listed.json()["timelines"]] == [tid]
    assert (await client.get("/api/video-editor/aspect-ratios")).json()["aspect_ratios"][3] == {
        "name": "4:5",
        "width": 1080,
        "height": 1350,
    }
    assert len((await client.get("/api/video-editor/presets")).json()["presets"]) == 6
    deleted = await client.delete(f"/api/video-editor/projects/{tid}")
    assert deleted.status_code == 204
    missing = await client.get(f"/api/video-editor/projects/{tid}")
    assert (missing.status_code, missing.json()["code"]) == (404, "timeline_not_found")
