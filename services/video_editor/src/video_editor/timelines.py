"""Use cases of timelines, their tracks and clips. Functions flush, never commit.

Every edit holds the timeline's row (``SELECT ... FOR UPDATE``) for the rest of the transaction,
checks the version the caller read (409 ``version_conflict`` when stale), applies the change,
and bumps the timeline's ``version`` and ``updated_at``; it answers the whole tree, read in one
query per table.

Placement rules of a track (checked on the whole track after every change):

* two clips do not overlap, except that a clip whose ``transition_in`` is not a cut may start
  up to the transition's duration before the previous clip ends; it must still start after
  that clip starts and end no earlier, and never overlap a third clip;
* a clip plays a medium of its own timeline: video/overlay tracks take video and image media,
  audio tracks audio and video media (its sound), text tracks only text clips; ``out_point``
  stays within a video or audio medium's duration.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from typing import Any, Final, NamedTuple, NoReturn, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from storycore_shared.auth import Principal
from storycore_shared.http import check_version
from storycore_shared.replicas.projects import ProjectDirectory
from video_editor import timeline_repository as repository
from video_editor.errors import (
    ClipNotFound,
    ClipOverlap,
    InvalidEdit,
    MediaNotFound,
    TimelineNotFound,
    TrackLocked,
    TrackNotFound,
)
from video_editor.render.presets import PRESETS
from video_editor.timeline_schemas import (
    DIMENSIONS,
    AspectRatioPublic,
    AspectRatiosPublic,
    ClipCreate,
    ClipPublic,
    ClipUpdate,
    KenBurns,
    MoveRequest,
    PresetPublic,
    PresetsPublic,
    SplitRequest,
    TimelineCreate,
    TimelinePublic,
    TimelinesPublic,
    TimelineUpdate,
    TrackCreate,
    TrackPublic,
    TrackReorder,
    TrackUpdate,
    Transition,
)

__all__ = ["Created", "TimelineCleanup", "Timelines", "aspect_ratios", "check_track", "presets"]

# Seconds within which two times are the same (OTIO round trips round to microseconds).
EPS: Final = 1e-5
MAX_TRACKS: Final = 50
MAX_CLIPS: Final = 2000
# What each track kind plays.
TAKES: Final[dict[str, frozenset[str]]] = {
    "video": frozenset({"video", "image"}),
    "overlay": frozenset({"video", "image"}),
    "audio": frozenset({"audio", "video"}),
    "text": frozenset(),
}
ModelT = TypeVar("ModelT", bound=BaseModel)
Record = Mapping[Any, Any]  # a row (RowMapping) or a dict of one
TimelineCleanup = Callable[[AsyncSession, RowMapping], Awaitable[None]]
"""Run with the timeline's row just before a timeline is deleted (same transaction)."""


class Created(NamedTuple):
    """An edit that made something: the timeline's new tree and the new item's id."""

    timeline: TimelinePublic
    id: uuid.UUID


# -- static answers ----------------------------------------------------------------------------


def presets() -> PresetsPublic:
    return PresetsPublic(
        presets=[
            PresetPublic(
                name=name, width=size[0] if size else None, height=size[1] if size else None
            )
            for name, size in PRESETS.items()
        ]
    )


def aspect_ratios() -> AspectRatiosPublic:
    return AspectRatiosPublic(
        aspect_ratios=[
            AspectRatioPublic.model_validate({"name": name, "width": w, "height": h})
            for name, (w, h) in DIMENSIONS.items()
        ]
    )


# -- clip geometry (pure) ----------------------------------------------------------------------


def _length(c: Record) -> float:
    return float(c["out_point"]) - float(c["in_point"])


def _end(c: Record) -> float:
    return float(c["start"]) + _length(c)


def _allowance(c: Record) -> float:
    """How long before the previous clip's end this clip may start: its transition's length."""
    kind, duration = c.get("transition_type"), c.get("transition_duration")
    return float(duration) if kind and kind != "cut" and duration else 0.0


def _overlap(a: Record, b: Record, edited: Collection[uuid.UUID]) -> NoReturn:
    mine, other = (b, a) if b["id"] in edited and a["id"] not in edited else (a, b)
    raise ClipOverlap(
        f"Clip {mine['id']} would overlap clip {other['id']} ({other['start']:g}s to "
        f"{_end(other):g}s) on its track; a clip may start before the previous one ends only "
        "by its transition_in's duration.",
        extra={"clip_id": str(mine["id"]), "other_clip_id": str(other["id"])},
    )


def _in_order(clips: Iterable[Record]) -> list[Record]:
    return sorted(clips, key=lambda c: (float(c["start"]), _end(c), str(c["id"])))


def check_track(clips: Iterable[Record], edited: Collection[uuid.UUID] = ()) -> None:
    """Raise ``ClipOverlap`` when the clips of one track break the placement rules."""
    previous: Record | None = None
    before: Record | None = None  # of the clips before ``previous``, the last to end
    for c in _in_order(clips):
        if previous is not None:
            start = float(c["start"])
            if before is not None and start < _end(before) - EPS:
                _overlap(c, before, edited)
            if start < _end(previous) - EPS and (
                _end(previous) - start > _allowance(c) + EPS
                or start <= float(previous["start"]) + EPS
                or _end(c) < _end(previous) - EPS
            ):
                _overlap(c, previous, edited)
            if before is None or _end(previous) > _end(before):
                before = previous
        previous = c


def _check_content(kind: str, medium: Record | None, text: str | None) -> None:
    """InvalidEdit when a clip of ``medium`` or ``text`` cannot go on a ``kind`` track."""
    if kind == "text":
        if medium is not None or text is None:
            raise InvalidEdit("A text track takes text clips only (text, no media_id).")
        return
    if text is not None:
        raise InvalidEdit(f"A {kind} track takes media clips; text clips go on a text track.")
    if medium is None:
        raise InvalidEdit("A clip needs a media_id (or text, on a text track).")
    if medium["kind"] not in TAKES[kind]:
        allowed = " and ".join(sorted(TAKES[kind]))
        raise InvalidEdit(f"A {kind} track plays {allowed} media, not {medium['kind']}.")
    if kind == "audio" and medium["kind"] == "video" and not medium["has_audio"]:
        raise InvalidEdit(f"Media {medium['id']} has no sound to play on an audio track.")


def _dynamic(medium: Record | None) -> bool:
    """Whether the medium changes over time (video, audio): its in/out points matter."""
    return medium is not None and medium["kind"] in ("video", "audio")


def _check_points(medium: Record | None, in_point: float, out_point: float) -> None:
    if not out_point > in_point:
        raise InvalidEdit("out_point must be after in_point.")
    if _dynamic(medium):
        assert medium is not None
        total = medium["duration_seconds"]
        if total is not None and out_point > float(total) + EPS:
            raise InvalidEdit(
                f"out_point {out_point:g}s passes the end of media {medium['id']} ({total:g}s)."
            )


def _audio_id(medium: Record | None) -> uuid.UUID | None:
    """The audio record an imported medium came from (to find its clips on audio.deleted)."""
    ref = medium["source_ref"] if medium is not None else None
    if isinstance(ref, Mapping) and ref.get("audio_id") is not None:
        try:
            return uuid.UUID(str(ref["audio_id"]))
        except ValueError:
            return None
    return None


def _lerp_rect(a: Record, b: Record, f: float) -> dict[str, float]:
    return {k: float(a[k]) + (float(b[k]) - float(a[k])) * f for k in ("x", "y", "w", "h")}


def _ken_burns_part(ken_burns: Any, start: float, stop: float) -> Any:
    """The pan and zoom of the part ``start``..``stop`` (fractions) of a clip, so a split clip
    moves as the whole one did."""
    if not isinstance(ken_burns, Mapping):
        return ken_burns
    try:
        a, b = ken_burns["from_rect"], ken_burns["to_rect"]
        return {"from_rect": _lerp_rect(a, b, start), "to_rect": _lerp_rect(a, b, stop)}
    except (KeyError, TypeError, ValueError):
        return ken_burns


def _transition_columns(value: Transition | None) -> dict[str, Any]:
    return {
        "transition_type": value.type if value else None,
        "transition_duration": value.duration if value else None,
    }


def _unlocked(track_row: Record) -> None:
    if track_row["locked"]:
        raise TrackLocked(f"Track {track_row['id']} is locked; unlock it to edit its clips.")


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"{where}: {err['msg']}" if where else str(err["msg"])


# -- answers -----------------------------------------------------------------------------------


def _clip_public(r: Record) -> ClipPublic:
    transition = (
        Transition.model_validate(
            {"type": r["transition_type"], "duration": r["transition_duration"] or 0.0}
        )
        if r["transition_type"]
        else None
    )
    return ClipPublic(
        id=r["id"],
        track_id=r["track_id"],
        media_id=r["media_id"],
        text=r["text"],
        start=r["start"],
        in_point=r["in_point"],
        out_point=r["out_point"],
        duration=round(_length(r), 9),
        transition_in=transition,
        ken_burns=KenBurns.model_validate(r["ken_burns"]) if r["ken_burns"] else None,
        opacity=r["opacity"],
        volume=r["volume"],
        fade_in=r["fade_in"],
        fade_out=r["fade_out"],
        missing_media=r["missing_media"],
    )


def _public(row: Record, tracks: Sequence[Record], clips: Sequence[Record]) -> TimelinePublic:
    by_track: dict[uuid.UUID, list[ClipPublic]] = defaultdict(list)
    for c in clips:
        by_track[c["track_id"]].append(_clip_public(c))
    return TimelinePublic(
        id=row["id"],
        project_id=row["project_id"],
        name=row["name"],
        description=row["description"],
        aspect_ratio=row["aspect_ratio"],
        width=row["width"],
        height=row["height"],
        fps=row["fps"],
        duration_seconds=round(max((_end(c) for c in clips), default=0.0), 9),
        version=row["version"],
        tracks=[
            TrackPublic(
                id=t["id"],
                kind=t["kind"],
                name=t["name"],
                order=t["order"],
                muted=t["muted"],
                locked=t["locked"],
                volume=t["volume"],
                clips=by_track.get(t["id"], []),
            )
            for t in tracks
        ],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _default_name(kind: str, tracks: Sequence[Record]) -> str:
    return f"{kind.capitalize()} {sum(1 for t in tracks if t['kind'] == kind) + 1}"


# -- OpenTimelineIO: our overlapping transitions <-> OTIO transitions centred on a cut ---------


def _centre_transitions(clips: list[dict[str, Any]], statics: Collection[str]) -> None:
    """OTIO puts clips end to end with a transition centred on their cut; here a clip with a
    transition overlaps the previous one. Cut each overlap in its middle (the outgoing clip
    ends there, the incoming one starts there) and note the overlap, so it comes back whole."""
    ordered = sorted(clips, key=lambda c: (c["start"], _end(c)))
    overlaps = [
        (p, c, max(_end(p) - c["start"], 0.0))
        for p, c in itertools.pairwise(ordered)
        if c["transition_in"]
    ]
    for p, c, overlap in overlaps:
        c["transition_overlap"] = overlap
        if overlap <= EPS:
            continue
        half = overlap / 2
        p["out_point"] -= half
        c["start"] += half
        if str(c["id"]) in statics:
            c["out_point"] -= half
        else:
            c["in_point"] += half
    for c in clips:
        c["duration"] = _length(c)


def _restore_overlaps(clips: list[dict[str, Any]], media: Mapping[uuid.UUID, RowMapping]) -> None:
    """The inverse of :func:`_centre_transitions` for imported clips (in timeline order): a
    clip with a transition that meets the previous clip overlaps it again, by the noted
    overlap, else (another tool's file) by the whole transition, as far as the media and the
    clips' lengths allow."""
    before: Record | None = None  # the clip before ``p``, as restored
    for p, c in itertools.pairwise(clips):
        floor = float(p["start"]) if before is None else max(float(p["start"]), _end(before))
        room = _end(p) - floor  # the part of p that c may overlap
        before = p
        allowance = _allowance(c)
        if allowance <= 0 or abs(_end(p) - c["start"]) > EPS:
            continue
        noted = c.get("transition_overlap")
        overlap = allowance
        if isinstance(noted, int | float) and not isinstance(noted, bool) and noted >= 0:
            overlap = min(float(noted), allowance)
        half = min(overlap / 2, room - 2 * EPS, _length(c))
        c_medium, p_medium = _lookup(media, c["media_id"]), _lookup(media, p["media_id"])
        if _dynamic(c_medium):
            half = min(half, c["in_point"])
        if _dynamic(p_medium):
            assert p_medium is not None
            total = p_medium["duration_seconds"]
            if total is not None:
                half = min(half, float(total) - p["out_point"])
        if half <= EPS:
            continue
        p["out_point"] += half
        c["start"] -= half
        if _dynamic(c_medium):
            c["in_point"] -= half
        else:
            c["out_point"] += half


def _lookup(media: Mapping[uuid.UUID, RowMapping], media_id: uuid.UUID | None) -> RowMapping | None:
    return media.get(media_id) if media_id is not None else None


def _media_key(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value is not None else None
    except ValueError:
        return None


class Timelines:
    def __init__(
        self, directory: ProjectDirectory, *, on_delete: TimelineCleanup | None = None
    ) -> None:
        self.directory = directory
        self.on_delete = on_delete

    # -- reading -------------------------------------------------------------------------------

    async def owned_timeline(
        self,
        session: AsyncSession,
        principal: Principal,
        timeline_id: uuid.UUID,
        *,
        lock: bool,
    ) -> RowMapping:
        """The caller's timeline row (held for the transaction with ``lock``); 404 otherwise."""
        row = await repository.get_timeline(session, timeline_id, lock=lock)
        if row is None or row["owner_id"] != principal.user_id:
            raise TimelineNotFound(f"No timeline {timeline_id}.")
        return row

    async def tree(self, session: AsyncSession, timeline_id: uuid.UUID) -> TimelinePublic:
        """The whole timeline (tracks, clips), whoever owns it: three queries."""
        row = await repository.get_timeline(session, timeline_id)
        if row is None:
            raise TimelineNotFound(f"No timeline {timeline_id}.")
        return await self._tree_of(session, row)

    async def _tree_of(self, session: AsyncSession, row: RowMapping) -> TimelinePublic:
        tracks = await repository.tracks_of(session, [row["id"]])
        clips = await repository.clips_of(session, [row["id"]])
        return _public(row, tracks, clips)

    async def get_timeline(
        self, session: AsyncSession, *, principal: Principal, timeline_id: uuid.UUID
    ) -> TimelinePublic:
        row = await self.owned_timeline(session, principal, timeline_id, lock=False)
        return await self._tree_of(session, row)

    async def list_timelines(
        self,
        session: AsyncSession,
        *,
        principal: Principal,
        project_id: uuid.UUID | None,
        page: int,
        page_size: int,
    ) -> TimelinesPublic:
        """The caller's timelines (of one project when given), most recently edited first."""
        rows, total = await repository.list_timelines(
            session,
            owner_id=principal.user_id,
            project_id=project_id,
            offset=(page - 1) * page_size,
            limit=page_size,
        )
        ids = [r["id"] for r in rows]
        tracks = await repository.tracks_of(session, ids) if ids else []
        clips = await repository.clips_of(session, ids) if ids else []
        tracks_of: dict[uuid.UUID, list[RowMapping]] = defaultdict(list)
        clips_of: dict[uuid.UUID, list[RowMapping]] = defaultdict(list)
        for t in tracks:
            tracks_of[t["timeline_id"]].append(t)
        for c in clips:
            clips_of[c["timeline_id"]].append(c)
        return TimelinesPublic(
            timelines=[_public(r, tracks_of[r["id"]], clips_of[r["id"]]) for r in rows],
            total=total,
            page=page,
            page_size=page_size,
        )

    # -- editing: the frame of every edit ------------------------------------------------------

    async def _edit(
        self,
        session: AsyncSession,
        principal: Principal,
        timeline_id: uuid.UUID,
        expected_version: int | None,
    ) -> RowMapping:
        row = await self.owned_timeline(session, principal, timeline_id, lock=True)
        check_version("timeline", row["version"], expected_version)
        return row

    async def _track_edit(
        self,
        session: AsyncSession,
        principal: Principal,
        track_id: uuid.UUID,
        expected_version: int | None,
    ) -> RowMapping:
        timeline_id = await repository.timeline_of_track(session, track_id)
        if timeline_id is None:
            raise TrackNotFound(f"No track {track_id}.")
        await self._edit(session, principal, timeline_id, expected_version)
        found = await repository.get_track(session, track_id)  # as of now that the timeline is held
        if found is None:
            raise TrackNotFound(f"No track {track_id}.")
        return found

    async def _clip_edit(
        self,
        session: AsyncSession,
        principal: Principal,
        clip_id: uuid.UUID,
        expected_version: int | None,
    ) -> tuple[RowMapping, RowMapping]:
        timeline_id = await repository.timeline_of_clip(session, clip_id)
        if timeline_id is None:
            raise ClipNotFound(f"No clip {clip_id}.")
        await self._edit(session, principal, timeline_id, expected_version)
        found = await repository.get_clip(session, clip_id)
        if found is None:
            raise ClipNotFound(f"No clip {clip_id}.")
        track_row = await repository.get_track(session, found["track_id"])
        assert track_row is not None  # a clip goes with its track (foreign key, cascade)
        return found, track_row

    async def _done(self, session: AsyncSession, timeline_id: uuid.UUID) -> TimelinePublic:
        await repository.touch(session, timeline_id)
        await session.flush()
        return await self.tree(session, timeline_id)

    async def _medium(
        self, session: AsyncSession, timeline_id: uuid.UUID, media_id: uuid.UUID | None
    ) -> RowMapping | None:
        if media_id is None:
            return None
        found = await repository.get_media(session, media_id, lock=True)
        if found is None or found["timeline_id"] != timeline_id:
            raise MediaNotFound(f"No media {media_id} in this timeline.")
        return found

    # -- timelines -----------------------------------------------------------------------------

    async def create_timeline(
        self, session: AsyncSession, *, principal: Principal, data: TimelineCreate
    ) -> TimelinePublic:
        await self.directory.require(session, data.project_id, principal, write=True)
        return await self.insert_timeline(
            session, timeline_id=uuid.uuid4(), owner_id=principal.user_id, data=data
        )

    async def insert_timeline(
        self,
        session: AsyncSession,
        *,
        timeline_id: uuid.UUID,
        owner_id: uuid.UUID,
        data: TimelineCreate,
    ) -> TimelinePublic:
        """Write a timeline whose project and owner the caller vouches for: the project
        directory is not asked (a production's command comes from projects, the authority on
        both, and carries no token for the directory's HTTP fallback)."""
        width, height = data.size()
        await repository.add_timeline(
            session,
            {
                "id": timeline_id,
                "project_id": data.project_id,
                "owner_id": owner_id,
                "name": data.name,
                "description": data.description,
                "aspect_ratio": data.aspect_ratio,
                "width": width,
                "height": height,
                "fps": data.fps,
            },
        )
        await session.flush()
        return await self.tree(session, timeline_id)

    async def update_timeline(
        self,
        session: AsyncSession,
        *,
        principal: Principal,
        timeline_id: uuid.UUID,
        data: TimelineUpdate,
        expected_version: int | None,
    ) -> TimelinePublic:
        row = await self._edit(session, principal, timeline_id, expected_version)
        changes = data.changes()
        if not changes:  # nothing to write: no new version
            return await self._tree_of(session, row)
        await repository.touch(session, timeline_id, changes)
        await session.flush()
        return await self.tree(session, timeline_id)

    async def delete_timeline(
        self,
        session: AsyncSession,
        *,
        principal: Principal,
        timeline_id: uuid.UUID,
        expected_version: int | None,
    ) -> None:
        """The timeline goes with its tracks, clips and media rows."""
        row = await self._edit(session, principal, timeline_id, expected_version)
        if self.on_delete is not None:
            await self.on_delete(session, row)
        await repository.remove_timeline(session, timeline_id)
        await session.flush()

    # -- tracks --------------------------------------------------------------------------------

    async def add_track(
        self,
        session: AsyncSession,
        *,
        principal: Principal,
        timeline_id: uuid.UUID,
        data: TrackCreate,
        expected_version: int | None,
    ) -> Created:
        """A new track, on top of the others."""
        await self._edit(session, principal, timeline_id, expected_version)
        tracks = await repository.tracks_of(session, [timeline_id])
        if len(tracks) >= MAX_TRACKS:
            raise InvalidEdit(f"A timeline has at most {MAX_TRACKS} tracks.")
        track_id = uuid.uuid4()
        await repository.add_tracks(
            session,
            [
                {
                    "id": track_id,
                    "timeline_id": timeline_id,
                    "kind": data.kind,
                    "name": data.name or _default_name(data.kind, tracks),
                    "order": max((t["order"] for t in tracks), default=-1) + 1,
                    "muted": data.muted,
                    "locked": data.locked,
                    "volume": data.volume,
                }
            ],
        )
        return Created(await self._done(session, timeline_id), track_id)

    async def update_track(
        self,
        session: AsyncSession,
        *,
        principal: Principal,
        track_id: uuid.UUID,
        data: TrackUpdate,
        expected_version: int | None,
    ) -> TimelinePublic:
        """Rename, mute, lock or unlock a track, or set its volume (allowed while locked)."""
        found = await self._track_edit(session, principal, track_id, expected_version)
        changes = data.changes()
        if not changes:
            return await self.tree(session, found["timeline_id"])
        await repository.update_track(session, track_id, changes)
        return await self._done(session, found["timeline_id"])

    async def delete_track(
        self,
        session: AsyncSession,
        *,
        principal: Principal,
        track_id: uuid.UUID,
        expected_version: int | None,
    ) -> int:
        """The track goes with its clips; the others are renumbered. The new version."""
        found = await self._track_edit(session, principal, track_id, expected_version)
        _unlocked(found)
        timeline_id = found["timeline_id"]
        await repository.remove_track(session, track_id)
        rest = await repository.tracks_of(session, [timeline_id])
        await repository.set_orders(
            session, {t["id"]: i for i, t in enumerate(rest) if t["order"] != i}
        )
        return (await self._done(session, timeline_id)).version

    async def reorder_tracks(
        self,
        session: AsyncSession,
        *,
        principal: Principal,
        timeline_id: uuid.UUID,
        data: TrackReorder,
        expected_version: int | None,
    ) -> TimelinePublic:
        """Renumber every track at once, in the order given (bottom first)."""
        await self._edit(session, principal, timeline_id, expected_version)
        tracks = await repository.tracks_of(session, [timeline_id])
        have, given = {t["id"] for t in tracks}, data.track_ids
        if len(given) != len(set(given)) or set(given) != have:
            raise InvalidEdit(
                f"track_ids must list the timeline's {len(have)} tracks once each "
                f"({len(have - set(given))} missing, {len(set(given) - have)} not in this "
                f"timeline, {len(given) - len(set(given))} repeated)."
            )
        current = {t["id"]: t["order"] for t in tracks}
        await repository.set_orders(session, {t: i for i, t in enumerate(given) if current[t] != i})
        return await self._done(session, timeline_id)

    # -- clips ---------------------------------------------------------------------------------

    async def add_clip(
        self,
        session: AsyncSession,
        *,
        principal: Principal,
        track_id: uuid.UUID,
        data: ClipCreate,
        expected_version: int | None,
    ) -> Created:
        found = await self._track_edit(session, principal, track_id, expected_version)
        _unlocked(found)
        timeline_id = found["timeline_id"]
        if await repository.count_clips(session, timeline_id) >= MAX_CLIPS:
            raise InvalidEdit(f"A timeline has at most {MAX_CLIPS} clips.")
        medium = await self._medium(session, timeline_id, data.media_id)
        _check_content(found["kind"], medium, data.text)
        in_point = data.in_point
        if data.out_point is not None:
            out_point = data.out_point
        elif data.duration is not None:
            out_point = in_point + data.duration
        elif _dynamic(medium) and medium is not None and medium["duration_seconds"] is not None:
            out_point = float(medium["duration_seconds"])
        else:
            what = "a title" if medium is None else f"an {medium['kind']}"
            raise InvalidEdit(f"A clip of {what} needs its duration (or out_point).")
        _check_points(medium, in_point, out_point)
        new = {
            "id": uuid.uuid4(),
            "track_id": track_id,
            "timeline_id": timeline_id,
            "media_id": data.media_id,
            "text": data.text,
            "start": data.start,
            "in_point": in_point,
            "out_point": out_point,
            **_transition_columns(data.transition_in),
            "ken_burns": data.ken_burns.model_dump() if data.ken_burns else None,
            "opacity": data.opacity,
            "volume": data.volume,
            "fade_in": data.fade_in,
            "fade_out": data.fade_out,
            "missing_media": False,
            "audio_id": _audio_id(medium),
        }
        check_track([*await repository.clips_of_track(session, track_id), new], {new["id"]})
        await repository.add_clips(session, [new])
        return Created(await self._done(session, timeline_id), new["id"])

    async def update_clip(
        self,
        session: AsyncSession,
        *,
        principal: Principal,
        clip_id: uuid.UUID,
        data: ClipUpdate,
        expected_version: int | None,
    ) -> TimelinePublic:
        """Change some of a clip's fields; a trim changes its in/out points and start."""
        found, track_row = await self._clip_edit(session, principal, clip_id, expected_version)
        _unlocked(track_row)
        sent = data.model_fields_set - {"version"}
        if not sent:
            return await self.tree(session, found["timeline_id"])
        timeline_id = found["timeline_id"]
        media_id = data.media_id if "media_id" in sent else found["media_id"]
        text = data.text if "text" in sent else found["text"]
        medium = await self._medium(session, timeline_id, media_id)
        values: dict[str, Any] = {}
        if sent & {"media_id", "text"}:
            _check_content(track_row["kind"], medium, text)
            values |= {"media_id": media_id, "text": text}
            if media_id != found["media_id"]:
                values |= {"missing_media": False, "audio_id": _audio_id(medium)}
        in_point = data.in_point if data.in_point is not None else float(found["in_point"])
        if data.out_point is not None:
            out_point = data.out_point
        elif data.duration is not None:
            out_point = in_point + data.duration
        else:
            out_point = float(found["out_point"])
        if data.duration is not None and abs(out_point - in_point - data.duration) > 1e-6:
            raise InvalidEdit("duration must equal out_point - in_point (or give only one).")
        _check_points(medium, in_point, out_point)
        values |= {"in_point": in_point, "out_point": out_point}
        if "transition_in" in sent:
            values |= _transition_columns(data.transition_in)
        if "ken_burns" in sent:
            values["ken_burns"] = data.ken_burns.model_dump() if data.ken_burns else None
        for name in ("start", "opacity", "volume", "fade_in", "fade_out"):
            if name in sent:
                values[name] = getattr(data, name)
        changed = dict(found) | values
        others = await repository.clips_of_track(session, track_row["id"])
        check_track([c for c in others if c["id"] != clip_id] + [changed], {clip_id})
        await repository.update_clip(session, clip_id, values)
        return await self._done(session, timeline_id)

    async def delete_clip(
        self,
        session: AsyncSession,
        *,
        principal: Principal,
        clip_id: uuid.UUID,
        expected_version: int | None,
    ) -> int:
        """The clip goes; the new version."""
        found, track_row = await self._clip_edit(session, principal, clip_id, expected_version)
        _unlocked(track_row)
        await repository.remove_clip(session, clip_id)
        return (await self._done(session, found["timeline_id"])).version

    async def split_clip(
        self,
        session: AsyncSession,
        *,
        principal: Principal,
        clip_id: uuid.UUID,
        data: SplitRequest,
        expected_version: int | None,
    ) -> TimelinePublic:
        """Cut a clip in two at ``at``: the first part keeps its transition and fade in, the
        second (a new clip) its fade out; a pan and zoom goes on across both."""
        found, track_row = await self._clip_edit(session, principal, clip_id, expected_version)
        _unlocked(track_row)
        start, end, at = float(found["start"]), _end(found), data.at
        if not start + EPS < at < end - EPS:
            raise InvalidEdit(
                f"Split at {at:g}s: it must be strictly inside the clip ({start:g}s to {end:g}s)."
            )
        cut = float(found["in_point"]) + (at - start)
        share = (at - start) / (end - start)
        first = {
            "out_point": cut,
            "fade_out": 0.0,
            "ken_burns": _ken_burns_part(found["ken_burns"], 0.0, share),
        }
        second = dict(found) | {
            "id": uuid.uuid4(),
            "start": at,
            "in_point": cut,
            "transition_type": None,
            "transition_duration": None,
            "fade_in": 0.0,
            "ken_burns": _ken_burns_part(found["ken_burns"], share, 1.0),
        }
        others = await repository.clips_of_track(session, track_row["id"])
        check_track(
            [c for c in others if c["id"] != clip_id] + [dict(found) | first, second],
            {clip_id, second["id"]},
        )
        await repository.update_clip(session, clip_id, first)
        await repository.add_clips(session, [second])
        return await self._done(session, found["timeline_id"])

    async def move_clip(
        self,
        session: AsyncSession,
        *,
        principal: Principal,
        clip_id: uuid.UUID,
        data: MoveRequest,
        expected_version: int | None,
    ) -> TimelinePublic:
        """Move a clip to ``start``, on ``track_id`` when given. With ``ripple`` the clips after
        it on its track move by as much (later or earlier); on another track the clips from
        ``start`` on are pushed later to make room. Without it, an occupied place is a 409."""
        found, source = await self._clip_edit(session, principal, clip_id, expected_version)
        _unlocked(source)
        timeline_id = found["timeline_id"]
        target = source
        if data.track_id is not None and data.track_id != source["id"]:
            other = await repository.get_track(session, data.track_id)
            if other is None or other["timeline_id"] != timeline_id:
                raise TrackNotFound(f"No track {data.track_id} in this timeline.")
            _unlocked(other)
            medium = await self._medium(session, timeline_id, found["media_id"])
            if medium is not None or found["text"] is not None:  # a clip whose media went: any
                _check_content(other["kind"], medium, found["text"])
            elif other["kind"] == "text":
                raise InvalidEdit("A text track takes text clips only.")
            target = other
        clips = [
            dict(c)
            for c in await repository.clips_of_track(session, target["id"])
            if c["id"] != clip_id
        ]
        moved = dict(found) | {"start": data.start, "track_id": target["id"]}
        pushed: list[dict[str, Any]] = []
        delta = 0.0
        if data.ripple and target is source:
            delta = data.start - float(found["start"])
            pushed = [c for c in clips if c["start"] > found["start"]]
        elif data.ripple:
            pushed = [c for c in clips if c["start"] >= data.start - EPS]
            first = min((c["start"] for c in pushed), default=None)
            delta = max(_end(moved) - first, 0.0) if first is not None else 0.0
        for c in pushed:
            c["start"] = float(c["start"]) + delta
        check_track([*clips, moved], {clip_id})
        await repository.place_clips(
            session,
            [(clip_id, target["id"], data.start)]
            + [(c["id"], c["track_id"], c["start"]) for c in pushed],
        )
        return await self._done(session, timeline_id)

    async def fill_gaps(
        self,
        session: AsyncSession,
        *,
        principal: Principal,
        track_id: uuid.UUID,
        expected_version: int | None,
    ) -> TimelinePublic:
        """Slide the track's clips left: the first to 0, each next one to where the previous
        ends (less its transition's overlap). No clip moves later."""
        found = await self._track_edit(session, principal, track_id, expected_version)
        _unlocked(found)
        placed: list[dict[str, Any]] = []
        before_end: float | None = None  # of the clips before the previous one, the last end
        for c in _in_order(await repository.clips_of_track(session, track_id)):
            current = dict(c)
            if not placed:
                target = 0.0
            else:
                p = placed[-1]
                target = _end(p) - min(_allowance(current), _length(current))
                if target <= p["start"] + EPS:  # the transition is longer than the previous clip
                    target = _end(p)
                if before_end is not None:
                    target = max(target, before_end)
                before_end = max(before_end or 0.0, _end(p))
            current["start"] = max(0.0, min(target, float(c["start"])))
            placed.append(current)
        check_track(placed)
        await repository.place_clips(
            session,
            [(c["id"], track_id, c["start"]) for c in placed],
        )
        return await self._done(session, found["timeline_id"])

    # -- OpenTimelineIO ------------------------------------------------------------------------

    async def export_otio(
        self, session: AsyncSession, *, principal: Principal, timeline_id: uuid.UUID
    ) -> str:
        """The timeline as OpenTimelineIO JSON (``otio_json``)."""
        row = await self.owned_timeline(session, principal, timeline_id, lock=False)
        document = (await self._tree_of(session, row)).model_dump(mode="json")
        media = {str(m["id"]): m for m in await repository.media_of(session, timeline_id)}
        statics = set()
        for track_doc in document["tracks"]:
            for c in track_doc["clips"]:
                medium = media.get(str(c["media_id"]))
                c["media_name"] = medium["name"] if medium is not None else None
                if not _dynamic(medium):
                    statics.add(str(c["id"]))
            _centre_transitions(track_doc["clips"], statics)
        from video_editor.otio_io import to_otio  # OpenTimelineIO: loaded when first used

        try:
            return to_otio(document)
        except ValueError as exc:  # a timeline these rules allow always converts
            raise InvalidEdit(f"The timeline cannot be written as OpenTimelineIO: {exc}") from exc

    async def import_otio(
        self,
        session: AsyncSession,
        *,
        principal: Principal,
        timeline_id: uuid.UUID,
        document: Record,
        expected_version: int | None,
    ) -> TimelinePublic:
        """Replace the timeline's tracks and clips by an OpenTimelineIO document's (new ids).
        Only clips of this timeline's media (fitting their track) and titles are kept."""
        await self._edit(session, principal, timeline_id, expected_version)
        from video_editor.otio_io import from_otio  # OpenTimelineIO: loaded when first used

        try:
            parsed = from_otio(json.dumps(document, allow_nan=False))
        except Exception as exc:  # the reader and the schema raise errors of many types
            raise InvalidEdit(f"Not an OpenTimelineIO timeline: {str(exc)[:300]}") from exc
        media = {m["id"]: m for m in await repository.media_of(session, timeline_id, lock=True)}
        tracks, clips = _imported(timeline_id, parsed.get("tracks") or [], media)
        await repository.remove_tracks_of(session, timeline_id)
        await repository.add_tracks(session, tracks)
        await repository.add_clips(session, clips)
        return await self._done(session, timeline_id)


def _checked(model: type[ModelT], values: Record, where: str) -> ModelT:
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise InvalidEdit(f"The OpenTimelineIO {where} is invalid: {_first_error(exc)}") from exc


def _imported(
    timeline_id: uuid.UUID,
    tracks_in: Sequence[Record],
    media: Mapping[uuid.UUID, RowMapping],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The rows of the imported tracks and clips; InvalidEdit for what breaks the rules."""
    if len(tracks_in) > MAX_TRACKS:
        raise InvalidEdit(f"A timeline has at most {MAX_TRACKS} tracks.")

    def rank(item: tuple[int, Record]) -> tuple[int, int]:
        order = item[1].get("order")
        return (order if isinstance(order, int) and not isinstance(order, bool) else 0, item[0])

    tracks: list[dict[str, Any]] = []
    clips: list[dict[str, Any]] = []
    for order, (index, spec) in enumerate(sorted(enumerate(tracks_in), key=rank)):
        name = str(spec.get("name") or "").strip()[:255]
        track_data = _checked(
            TrackCreate,
            {
                "kind": spec.get("kind"),
                "name": name or None,
                "muted": spec.get("muted", False),
                "locked": spec.get("locked", False),
                "volume": spec.get("volume", 1.0),
            },
            f"track {index}",
        )
        track_id = uuid.uuid4()
        tracks.append(
            {
                "id": track_id,
                "timeline_id": timeline_id,
                "kind": track_data.kind,
                "name": track_data.name or _default_name(track_data.kind, tracks),
                "order": order,
                "muted": track_data.muted,
                "locked": track_data.locked,
                "volume": track_data.volume,
            }
        )
        kept = _imported_clips(
            timeline_id, track_id, track_data.kind, spec.get("clips") or [], media, index
        )
        clips.extend(kept)
        if len(clips) > MAX_CLIPS:
            raise InvalidEdit(f"A timeline has at most {MAX_CLIPS} clips.")
    return tracks, clips


def _imported_clips(
    timeline_id: uuid.UUID,
    track_id: uuid.UUID,
    kind: str,
    clips_in: Sequence[Record],
    media: Mapping[uuid.UUID, RowMapping],
    index: int,
) -> list[dict[str, Any]]:
    kept: list[dict[str, Any]] = []
    for position, spec in enumerate(clips_in):
        medium = _lookup(media, _media_key(spec.get("media_id")))
        text = spec.get("text")
        if medium is not None:
            text = None
        elif not isinstance(text, str):
            continue  # neither a medium of this timeline nor a title
        try:
            _check_content(kind, medium, text)
        except InvalidEdit:
            continue  # does not fit its track
        data = _checked(
            ClipCreate,
            {
                "media_id": medium["id"] if medium is not None else None,
                "text": text,
                **{
                    k: spec.get(k)
                    for k in ("start", "in_point", "out_point", "transition_in", "ken_burns")
                },
                **{
                    k: spec[k]
                    for k in ("opacity", "volume", "fade_in", "fade_out")
                    if spec.get(k) is not None
                },
            },
            f"track {index}, clip {position}",
        )
        if data.out_point is None:  # from_otio always gives one
            raise InvalidEdit(f"The OpenTimelineIO track {index}, clip {position} has no range.")
        kept.append(
            {
                "id": uuid.uuid4(),
                "track_id": track_id,
                "timeline_id": timeline_id,
                "media_id": data.media_id,
                "text": data.text,
                "start": data.start,
                "in_point": data.in_point,
                "out_point": data.out_point,
                **_transition_columns(data.transition_in),
                "ken_burns": data.ken_burns.model_dump() if data.ken_burns else None,
                "opacity": data.opacity,
                "volume": data.volume,
                "fade_in": data.fade_in,
                "fade_out": data.fade_out,
                "missing_media": False,
                "audio_id": _audio_id(medium),
                "transition_overlap": spec.get("transition_overlap"),
            }
        )
    kept.sort(key=lambda c: (c["start"], _end(c)))
    _restore_overlaps(kept, media)
    for c in kept:
        c.pop("transition_overlap")
        try:
            _check_points(_lookup(media, c["media_id"]), c["in_point"], c["out_point"])
        except InvalidEdit as exc:
            raise InvalidEdit(f"Track {index}: {exc.detail}") from exc
    try:
        check_track(kept)
    except ClipOverlap as exc:
        raise InvalidEdit(f"Track {index}: {exc.detail}") from exc
    return kept
