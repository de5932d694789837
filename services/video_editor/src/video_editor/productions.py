"""The video editor's part of a production (the story -> film saga of the projects service): the
commands it receives on ``PRODUCTIONS`` (durable ``video-editor-productions``).

``production.film.requested`` builds the timeline ``timeline_id`` from the storyboards, in order
(one video track, one clip per shot laid out as ``from-sequence`` lays one storyboard out), with
the mix ``audio_id`` on an audio track, and queues the export ``export_id`` exactly as the API
does (its job and ``video.export.requested`` through the outbox): the export workers answer
``video.exported`` or ``video.export.failed``. A command that can never be carried out (a
storyboard of another owner or project, a keyframe or mix its service says is not the owner's or
is gone, an invalid size or name) is answered at once by ``video.export.failed`` with the reason,
and nothing of it is kept. Trouble that may pass (a storyboard not recorded here yet, a service
down, slow or failing) is raised: the consumer retries with backoff, then dead-letters.

The keyframes and the mix are fetched inside the consumer's transaction, with media URLs signed
for the owner (the command carries no token). That is a few PNGs and one WAV, each streamed to a
temporary file, never whole in memory, one after the other: seconds of work, within the
consumer's ``ack_wait``. Ids are the saga's: a timeline or export job that exists already means
the command was carried out before, and it changes nothing.

``production.cancelled`` cancels, through the jobs' cancel path (``video.export.cancelled``),
those of the named jobs that are this service's exports of the owner in that project and still
active; it ignores the others.
"""

from __future__ import annotations

import contextlib
import logging
import math

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storycore_shared.auth import Principal
from storycore_shared.errors import ServiceError
from storycore_shared.events.contracts.productions import FilmRequested, ProductionCancelled
from storycore_shared.events.contracts.video import ExportFailed
from storycore_shared.events.outbox import add_event
from storycore_shared.jobs import repository as jobs_repository
from storycore_shared.jobs.errors import JobNotCancellable
from storycore_shared.jobs.tables import ACTIVE
from video_editor import timeline_repository
from video_editor.exports import KIND, SOURCE, Exports
from video_editor.media_service import Media
from video_editor.models import event_tables, job_tables, storyboard
from video_editor.render.presets import ASPECT_RATIOS, PRESETS
from video_editor.schemas import AudioImport, ExportRequest, KeyframeImport
from video_editor.storyboards import Still, Storyboards
from video_editor.timeline_schemas import TimelineCreate
from video_editor.timelines import Timelines

logger = logging.getLogger(__name__)

DEFAULT_FPS = 24


class StoryboardNotRecorded(Exception):
    """A storyboard the command names has not reached this service's own sequences consumer
    yet; raised, so that the command is retried (and dead-lettered if it never arrives)."""


class Refused(Exception):
    """The command can never be carried out; ``str(exc)`` says why."""


def aspect_ratio(width: int, height: int) -> str:
    """The timeline aspect ratio nearest to a ``width`` x ``height`` frame (16:9 for 1080p)."""
    shape = math.log(width / height)
    return min(ASPECT_RATIOS, key=lambda name: abs(math.log(_ratio(name)) - shape))


def _ratio(name: str) -> float:
    w, h = ASPECT_RATIOS[name]
    return w / h


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"{where}: {err['msg']}" if where else str(err["msg"])


def export_request(data: FilmRequested) -> ExportRequest:
    """The export the command asks for: an MP4 of its preset, at its size and frame rate when
    it gives them (the ``custom`` preset needs a size); ValidationError otherwise."""
    return ExportRequest.model_validate(
        {
            "preset": data.preset,
            "format": "mp4",
            "quality": data.quality,
            "width": data.width,
            "height": data.height,
            "fps": data.fps,
        }
    )


def timeline_request(data: FilmRequested, export: ExportRequest) -> TimelineCreate:
    """The film's timeline: the export's frame (its preset's size unless the command gives
    both sides), the aspect ratio nearest to it, ``fps`` or 24; Refused or ValidationError
    when the size, frame rate or name cannot make a timeline."""
    if export.width is not None and export.height is not None:
        width, height = export.width, export.height
    elif (size := PRESETS.get(export.preset)) is not None:
        width, height = size
    else:  # the custom preset without a size: ExportRequest refuses it first
        raise Refused("The custom preset needs width and height.")
    return TimelineCreate.model_validate(
        {
            "project_id": data.project_id,
            "name": data.name[:255],
            "aspect_ratio": aspect_ratio(width, height),
            "width": width,
            "height": height,
            "fps": data.fps or DEFAULT_FPS,
        }
    )


def _check_shots(data: FilmRequested) -> None:
    """Refused unless there is a shot, each lasting a positive, finite time."""
    shots = [shot for part in data.storyboards for shot in part.shots]
    if not shots:
        raise Refused("The storyboards have no shots.")
    for shot in shots:
        if not (math.isfinite(shot.duration_seconds) and shot.duration_seconds > 0):
            raise Refused(f"Shot {shot.index} lasts {shot.duration_seconds}: it must be > 0.")


class Productions:
    def __init__(
        self, timelines: Timelines, media: Media, storyboards: Storyboards, exports: Exports
    ) -> None:
        self.timelines = timelines
        self.media = media
        self.storyboards = storyboards
        self.exports = exports

    # -- production.film.requested -------------------------------------------------------------

    async def on_film_requested(self, session: AsyncSession, data: FilmRequested) -> None:
        if await self._made_before(session, data):
            return
        try:
            await self._check_storyboards(session, data)
            _check_shots(data)
            export = export_request(data)
            timeline = timeline_request(data, export)
            # A refusal found midway (a keyframe that is not the owner's) keeps nothing: the
            # timeline and media rows go back to this savepoint. Bytes already stored stay
            # without a row (waste, not harm: see storycore_shared.assets.records).
            async with session.begin_nested():
                await self._film(session, data, timeline, export)
        except Refused as exc:
            await self._refuse(session, data, str(exc))
        except ValidationError as exc:
            await self._refuse(session, data, f"Invalid film request: {_first_error(exc)}")
        except ServiceError as exc:
            if exc.status >= 500:  # an owning service down, slow or failing: retried
                raise
            await self._refuse(session, data, exc.detail)

    async def _made_before(self, session: AsyncSession, data: FilmRequested) -> bool:
        """Whether the command was carried out already (its timeline or export job exists;
        the job outlives a timeline its owner deleted since)."""
        if await timeline_repository.get_timeline(session, data.timeline_id) is not None:
            return True
        return await jobs_repository.get(session, job_tables, data.export_id) is not None

    async def _check_storyboards(self, session: AsyncSession, data: FilmRequested) -> None:
        """Refused when a storyboard is another owner's or project's, or has no such shot;
        StoryboardNotRecorded when one has not been recorded from ``sequence.generated``."""
        ids = [part.sequence_job_id for part in data.storyboards]
        rows = {
            row["sequence_job_id"]: row
            for row in (
                await session.execute(
                    select(storyboard).where(storyboard.c.sequence_job_id.in_(ids))
                )
            ).mappings()
        }
        for part in data.storyboards:
            row = rows.get(part.sequence_job_id)
            if row is None:
                continue
            if row["owner_id"] != data.owner_id or row["project_id"] != data.project_id:
                raise Refused(
                    f"Storyboard {part.sequence_job_id} is not one of this project's (or not "
                    "the owner's)."
                )
            for shot in part.shots:
                if not 0 <= shot.index < row["shot_count"]:
                    raise Refused(
                        f"Storyboard {part.sequence_job_id} has no shot {shot.index} (it has "
                        f"{row['shot_count']})."
                    )
        if missing := [str(i) for i in ids if i not in rows]:
            raise StoryboardNotRecorded(
                f"Storyboards not recorded yet (sequence.generated): {', '.join(missing)}."
            )

    async def _film(
        self,
        session: AsyncSession,
        data: FilmRequested,
        timeline_data: TimelineCreate,
        export: ExportRequest,
    ) -> None:
        principal = Principal(user_id=data.owner_id)  # no token: media URLs are signed
        await self.timelines.insert_timeline(
            session, timeline_id=data.timeline_id, owner_id=data.owner_id, data=timeline_data
        )
        timeline = await self.timelines.owned_timeline(
            session, principal, data.timeline_id, lock=True
        )
        stills: list[Still] = []
        for part in data.storyboards:
            for shot in part.shots:
                keyframe = KeyframeImport(
                    source="keyframe", sequence_job_id=part.sequence_job_id, index=shot.index
                )
                medium = await self.media.import_media(
                    session, principal=principal, timeline=timeline, source=keyframe
                )
                stills.append(Still(medium.id, shot.duration_seconds))
        sound = None
        if data.audio_id is not None:
            sound = await self.media.import_media(
                session,
                principal=principal,
                timeline=timeline,
                source=AudioImport(source="audio", audio_id=data.audio_id),
            )
        tree = await self.storyboards.lay_out(
            session, principal=principal, timeline_id=data.timeline_id, stills=stills, sound=sound
        )
        await self.exports.create(
            session,
            principal=principal,
            timeline=timeline,
            tree=tree.model_dump(mode="json"),
            data=export,
            export_id=data.export_id,
        )

    async def _refuse(self, session: AsyncSession, data: FilmRequested, reason: str) -> None:
        logger.warning(
            "productions.film.refused",
            extra={
                "production_id": str(data.production_id),
                "export_id": str(data.export_id),
                "error": reason,
            },
        )
        await add_event(
            session,
            event_tables,
            ExportFailed(
                id=data.export_id,
                project_id=data.project_id,
                timeline_id=data.timeline_id,
                export_id=data.export_id,
                error=reason,
            ),
            source=SOURCE,
            actor=data.owner_id,
        )

    # -- production.cancelled ------------------------------------------------------------------

    async def on_cancelled(self, session: AsyncSession, data: ProductionCancelled) -> None:
        principal = Principal(user_id=data.owner_id)
        for job_id in dict.fromkeys(data.jobs):
            job = await jobs_repository.get(session, job_tables, job_id)
            if (
                job is None
                or job["kind"] != KIND
                or job["owner_id"] != data.owner_id
                or job["project_id"] != data.project_id
                or job["status"] not in ACTIVE
            ):
                continue
            # It may finish between the read and the cancel: that outcome stands.
            with contextlib.suppress(JobNotCancellable):
                await self.exports.jobs.cancel(session, principal=principal, job_id=job_id)
