"""Storyboards: the generated sequences a project has (recorded from ``sequence.generated``), and
``from-sequence``, which lays one out on a timeline (a production's film lays several out one
after the other, by the same rule: :func:`shot_clips`).

The layout keeps each shot's own time whole: shot i owns ``[S_i, S_i + d_i)`` where ``S_i`` is
the sum of the planned durations before it, and from the second shot on a clip starts
``DISSOLVE`` seconds early with a dissolve over the end of the previous one. The timeline lasts
exactly the sum of the planned shot durations. Each still gets a gentle Ken Burns (a 10 % push
in, or out, alternately)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storycore_shared.auth import Principal
from storycore_shared.errors import NotFound, Unprocessable
from video_editor.media_service import Media
from video_editor.models import storyboard
from video_editor.schemas import (
    AudioImport,
    FromSequenceRequest,
    KeyframeImport,
    MediaPublic,
    StoryboardPublic,
    StoryboardsPublic,
)
from video_editor.timeline_schemas import (
    ClipCreate,
    KenBurns,
    Rect,
    TimelinePublic,
    TrackCreate,
    Transition,
)
from video_editor.timelines import Timelines

DISSOLVE = 0.5
FULL = Rect(x=0.0, y=0.0, w=1.0, h=1.0)
CLOSE = Rect(x=0.05, y=0.05, w=0.9, h=0.9)


class Still(NamedTuple):
    """A keyframe medium of the timeline and how long its shot lasts."""

    media_id: uuid.UUID
    seconds: float


def shot_clips(stills: Iterable[Still]) -> list[ClipCreate]:
    """The clips of shots laid end to end: shot i owns ``[S_i, S_i + d_i)``; from the second
    on a clip starts ``DISSOLVE`` early, dissolving over the previous one, so the clips end
    where the shots' durations add up to; the Ken Burns pushes in and out alternately."""
    clips: list[ClipCreate] = []
    begin = 0.0
    for index, still in enumerate(stills):
        lead = DISSOLVE if index > 0 else 0.0
        push = (FULL, CLOSE) if index % 2 == 0 else (CLOSE, FULL)
        clips.append(
            ClipCreate(
                media_id=still.media_id,
                start=round(begin - lead, 6),
                duration=round(still.seconds + lead, 6),
                transition_in=Transition(type="dissolve", duration=DISSOLVE) if lead else None,
                ken_burns=KenBurns(from_rect=push[0], to_rect=push[1]),
            )
        )
        begin += still.seconds
    return clips


class Storyboards:
    def __init__(self, timelines: Timelines, media: Media) -> None:
        self.timelines = timelines
        self.media = media

    async def available(
        self, session: AsyncSession, *, principal: Principal, timeline_id: uuid.UUID
    ) -> StoryboardsPublic:
        timeline = await self.timelines.owned_timeline(session, principal, timeline_id, lock=False)
        rows = await session.execute(
            select(storyboard)
            .where(
                storyboard.c.project_id == timeline["project_id"],
                storyboard.c.owner_id == principal.user_id,
            )
            .order_by(storyboard.c.created_at.desc())
        )
        return StoryboardsPublic(
            storyboards=[StoryboardPublic.model_validate(dict(r)) for r in rows.mappings()]
        )

    async def from_sequence(
        self,
        session: AsyncSession,
        *,
        principal: Principal,
        timeline_id: uuid.UUID,
        data: FromSequenceRequest,
    ) -> TimelinePublic:
        timeline = await self.timelines.owned_timeline(session, principal, timeline_id, lock=True)
        result = await self.media.sequence_result(principal, data.sequence_job_id)
        if result.get("project_id") != str(timeline["project_id"]):
            raise NotFound(f"No storyboard {data.sequence_job_id} in this timeline's project.")
        shots = result.get("shots") or []
        if not shots:
            raise Unprocessable("The storyboard has no shots.")
        stills: list[Still] = []
        for index, shot in enumerate(shots):
            medium = await self.media.import_media(
                session,
                principal=principal,
                timeline=timeline,
                source=KeyframeImport(
                    source="keyframe", sequence_job_id=data.sequence_job_id, index=index
                ),
            )
            stills.append(Still(medium.id, float(shot["duration_seconds"])))
        sound = None
        if data.audio_id is not None:
            sound = await self.media.import_media(
                session,
                principal=principal,
                timeline=timeline,
                source=AudioImport(source="audio", audio_id=data.audio_id),
            )
        return await self.lay_out(
            session, principal=principal, timeline_id=timeline_id, stills=stills, sound=sound
        )

    async def lay_out(
        self,
        session: AsyncSession,
        *,
        principal: Principal,
        timeline_id: uuid.UUID,
        stills: Sequence[Still],
        sound: MediaPublic | None,
    ) -> TimelinePublic:
        """Add a video track with one clip per still (see :func:`shot_clips`) and, with
        ``sound``, an audio track playing it from 0 for as long as both last. The stills and
        the sound are media of the timeline already."""
        track = await self.timelines.add_track(
            session,
            principal=principal,
            timeline_id=timeline_id,
            data=TrackCreate(kind="video", name="Storyboard"),
            expected_version=None,
        )
        for placed in shot_clips(stills):
            await self.timelines.add_clip(
                session,
                principal=principal,
                track_id=track.id,
                data=placed,
                expected_version=None,
            )
        if sound is not None:
            total = sum(still.seconds for still in stills)
            audio_track = await self.timelines.add_track(
                session,
                principal=principal,
                timeline_id=timeline_id,
                data=TrackCreate(kind="audio", name="Soundtrack"),
                expected_version=None,
            )
            length = min(total, float(sound.duration_seconds or total))
            await self.timelines.add_clip(
                session,
                principal=principal,
                track_id=audio_track.id,
                data=ClipCreate(media_id=sound.id, start=0.0, duration=round(length, 6)),
                expected_version=None,
            )
        return await self.timelines.tree(session, timeline_id)
