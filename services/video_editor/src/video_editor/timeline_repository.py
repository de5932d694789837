"""Every SQL statement about timelines, their tracks and clips (and the media rows clips use)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import RowMapping, bindparam, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storycore_shared.db import utcnow
from video_editor.models import clip, media, timeline, track


def _rows(result: Any) -> list[RowMapping]:
    return list(result.mappings().all())


# -- timelines ---------------------------------------------------------------------------------


async def get_timeline(
    session: AsyncSession, timeline_id: uuid.UUID, *, lock: bool = False
) -> RowMapping | None:
    statement = select(timeline).where(timeline.c.id == timeline_id)
    if lock:
        statement = statement.with_for_update()
    return (await session.execute(statement)).mappings().first()


async def add_timeline(session: AsyncSession, values: Mapping[str, Any]) -> None:
    await session.execute(insert(timeline).values(**values))


async def list_timelines(
    session: AsyncSession,
    *,
    owner_id: uuid.UUID,
    project_id: uuid.UUID | None,
    offset: int,
    limit: int,
) -> tuple[list[RowMapping], int]:
    where = [timeline.c.owner_id == owner_id]
    if project_id is not None:
        where.append(timeline.c.project_id == project_id)
    total = (
        await session.execute(select(func.count()).select_from(timeline).where(*where))
    ).scalar_one()
    statement = (
        select(timeline)
        .where(*where)
        .order_by(timeline.c.updated_at.desc(), timeline.c.id)
        .offset(offset)
        .limit(limit)
    )
    return _rows(await session.execute(statement)), int(total)


async def touch(
    session: AsyncSession, timeline_id: uuid.UUID, values: Mapping[str, Any] | None = None
) -> None:
    """A new version of the timeline: ``values`` changed, ``version`` + 1, ``updated_at`` now."""
    await session.execute(
        update(timeline)
        .where(timeline.c.id == timeline_id)
        .values(**(values or {}), version=timeline.c.version + 1, updated_at=utcnow())
    )


async def remove_timeline(session: AsyncSession, timeline_id: uuid.UUID) -> None:
    """The timeline with its tracks, clips and media rows (foreign keys cascade)."""
    await session.execute(delete(timeline).where(timeline.c.id == timeline_id))


# -- tracks ------------------------------------------------------------------------------------


async def tracks_of(session: AsyncSession, timeline_ids: Sequence[uuid.UUID]) -> list[RowMapping]:
    statement = (
        select(track)
        .where(track.c.timeline_id.in_(timeline_ids))
        .order_by(track.c.timeline_id, track.c.order, track.c.id)
    )
    return _rows(await session.execute(statement))


async def get_track(session: AsyncSession, track_id: uuid.UUID) -> RowMapping | None:
    return (await session.execute(select(track).where(track.c.id == track_id))).mappings().first()


async def timeline_of_track(session: AsyncSession, track_id: uuid.UUID) -> uuid.UUID | None:
    statement = select(track.c.timeline_id).where(track.c.id == track_id)
    found: uuid.UUID | None = (await session.execute(statement)).scalar_one_or_none()
    return found


async def add_tracks(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    if rows:
        await session.execute(insert(track), [dict(r) for r in rows])


async def update_track(
    session: AsyncSession, track_id: uuid.UUID, values: Mapping[str, Any]
) -> None:
    await session.execute(update(track).where(track.c.id == track_id).values(**values))


async def set_orders(session: AsyncSession, orders: Mapping[uuid.UUID, int]) -> None:
    """Give each track its ``order`` (one statement for all)."""
    if not orders:
        return
    statement = (
        update(track)
        .where(track.c.id == bindparam("track_key"))
        .values(order=bindparam("new_order"))
    )
    await session.execute(statement, [{"track_key": k, "new_order": v} for k, v in orders.items()])


async def remove_track(session: AsyncSession, track_id: uuid.UUID) -> None:
    """The track and its clips (the foreign key cascades)."""
    await session.execute(delete(track).where(track.c.id == track_id))


async def remove_tracks_of(session: AsyncSession, timeline_id: uuid.UUID) -> None:
    await session.execute(delete(track).where(track.c.timeline_id == timeline_id))


# -- clips -------------------------------------------------------------------------------------


async def clips_of(session: AsyncSession, timeline_ids: Sequence[uuid.UUID]) -> list[RowMapping]:
    statement = (
        select(clip)
        .where(clip.c.timeline_id.in_(timeline_ids))
        .order_by(clip.c.track_id, clip.c.start, clip.c.id)
    )
    return _rows(await session.execute(statement))


async def clips_of_track(session: AsyncSession, track_id: uuid.UUID) -> list[RowMapping]:
    statement = select(clip).where(clip.c.track_id == track_id).order_by(clip.c.start, clip.c.id)
    return _rows(await session.execute(statement))


async def count_clips(session: AsyncSession, timeline_id: uuid.UUID) -> int:
    statement = select(func.count()).select_from(clip).where(clip.c.timeline_id == timeline_id)
    return int((await session.execute(statement)).scalar_one())


async def get_clip(session: AsyncSession, clip_id: uuid.UUID) -> RowMapping | None:
    return (await session.execute(select(clip).where(clip.c.id == clip_id))).mappings().first()


async def timeline_of_clip(session: AsyncSession, clip_id: uuid.UUID) -> uuid.UUID | None:
    statement = select(clip.c.timeline_id).where(clip.c.id == clip_id)
    found: uuid.UUID | None = (await session.execute(statement)).scalar_one_or_none()
    return found


async def add_clips(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    if rows:
        await session.execute(insert(clip), [dict(r) for r in rows])


async def update_clip(session: AsyncSession, clip_id: uuid.UUID, values: Mapping[str, Any]) -> None:
    await session.execute(update(clip).where(clip.c.id == clip_id).values(**values))


async def place_clips(
    session: AsyncSession, places: Sequence[tuple[uuid.UUID, uuid.UUID, float]]
) -> None:
    """Put each clip ``(id, track_id, start)`` at its place (one statement for all)."""
    if not places:
        return
    statement = (
        update(clip)
        .where(clip.c.id == bindparam("clip_key"))
        .values(track_id=bindparam("new_track"), start=bindparam("new_start"))
    )
    await session.execute(
        statement,
        [{"clip_key": c, "new_track": t, "new_start": s} for c, t, s in places],
    )


async def remove_clip(session: AsyncSession, clip_id: uuid.UUID) -> None:
    await session.execute(delete(clip).where(clip.c.id == clip_id))


# -- media -------------------------------------------------------------------------------------


async def add_media(session: AsyncSession, values: Mapping[str, Any]) -> None:
    await session.execute(insert(media).values(**values))


async def get_media(
    session: AsyncSession, media_id: uuid.UUID, *, lock: bool = False
) -> RowMapping | None:
    """A media row; with ``lock`` it is held (``FOR KEY SHARE``) so that it cannot be deleted
    before the clip that refers to it is written."""
    statement = select(media).where(media.c.id == media_id)
    if lock:
        statement = statement.with_for_update(read=True, key_share=True)
    return (await session.execute(statement)).mappings().first()


async def media_of(
    session: AsyncSession, timeline_id: uuid.UUID, *, lock: bool = False
) -> list[RowMapping]:
    statement = select(media).where(media.c.timeline_id == timeline_id).order_by(media.c.id)
    if lock:
        statement = statement.with_for_update(read=True, key_share=True)
    return _rows(await session.execute(statement))
