"""Productions: the story -> film saga (ARCHITECTURE §6, "long chains across services").

A production is a job of the shared kit (status, progress, job events, cancel, SSE) owned by the
projects service, plus one ``production_step`` row per request it makes. It never calls another
service: it publishes commands (``storycore_shared.events.contracts.productions``) through the
outbox, each carrying the owner id verified when the production was requested, and it advances
on the answers the other services publish anyway::

    POST   -> production.scenario.requested                 (llm)
    scenario.planned -> production.storyboard.requested x S  (sequences)
                        production.audio.requested  x N + 1  (audio: narration per scene, music)
    audio.generated (all) -> production.mix.requested        (audio: narration over the music)
    sequence.generated (all) + audio.mixed -> production.film.requested   (video editor)
    video.exported -> completed, with every artefact linked

Every transition runs in the consumer's transaction (inbox row, step rows, job row, commands),
after locking the production's job row, so two answers arriving together on two consumers are
applied one after the other and the "all done -> next" decision is taken once. Step ids are
``uuid5(production_id, key)``: a re-issued command names the same artefact, and its consumer
creates it at most once. A failure answer fails the production, naming the step and the reason,
and cancels the steps still in flight; a cancel does the same. Answers for a production that is no
longer processing change nothing, so nothing new starts after a cancel or a failure.
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import RowMapping, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from projects.models import event_tables, job_tables, production_step
from projects.production_schemas import ProductionCreate, ProductionPublic, ProductionStep
from storycore_shared.auth import Principal
from storycore_shared.db import transaction, utcnow
from storycore_shared.events.contracts import EventData
from storycore_shared.events.contracts.audio import (
    AudioCancelled,
    AudioFailed,
    AudioGenerated,
    AudioMixed,
)
from storycore_shared.events.contracts.llm import ScenarioPlanFailed, ScenarioPlanned
from storycore_shared.events.contracts.productions import (
    AudioRequested,
    FilmRequested,
    MixRequested,
    MixTrack,
    MusicChoice,
    ProductionCancelled,
    ScenarioRequested,
    StoryboardPart,
    StoryboardRequested,
    StoryboardShot,
    VoiceChoice,
)
from storycore_shared.events.contracts.sequences import (
    SequenceCancelled,
    SequenceFailed,
    SequenceGenerated,
)
from storycore_shared.events.contracts.video import (
    ExportCancelled,
    ExportFailed,
    VideoExported,
)
from storycore_shared.events.outbox import add_event
from storycore_shared.jobs import repository as jobs_repository
from storycore_shared.jobs.errors import JobNotFound
from storycore_shared.jobs.repository import Job
from storycore_shared.jobs.service import Jobs
from storycore_shared.jobs.settings import JobSettings
from storycore_shared.jobs.tables import CANCELLED, COMPLETED, FAILED, PROCESSING
from storycore_shared.media import MediaSigner

logger = logging.getLogger(__name__)

SOURCE = "projects"
KIND = "production"
REQUESTED = "requested"
# The storyboards are rendered at most this wide (or high): the film scales them.
KEYFRAME_MAX_EDGE = 1920
# The soundtrack's levels (linear gains of the mix): espeak-ng's narration is quiet (about
# -23 dBFS RMS), so it is raised 6 dB, which also lifts it over the ducking threshold (-20 dB),
# and the music bed sits 12 dB down; the mix is normalised afterwards. Measured on a film: the
# voice's loudness then drives the mix's (envelope correlation 0.99, against 0.15-0.49 at unity
# gains), and the music drops about 3 dB under each sentence.
NARRATION_VOLUME = 2.0
MUSIC_BED_VOLUME = 0.25
# Steps that run side by side once the scenario is planned.
MIDDLE = ("storyboard", "narration", "music")


def step_ref(production_id: uuid.UUID, key: str) -> uuid.UUID:
    """The id of what step ``key`` makes (a sequence job, an audio record, an export)."""
    return uuid.uuid5(production_id, key)


def _command_id(production_id: uuid.UUID, key: str) -> uuid.UUID:
    return uuid.uuid5(production_id, f"command:{key}")


def download_path(export_id: str) -> str:
    return f"/api/video-editor/exports/{export_id}/download"


def _keyframe_size(width: int, height: int) -> tuple[int, int]:
    scale = min(1.0, KEYFRAME_MAX_EDGE / max(width, height))
    return max(16, round(width * scale / 2) * 2), max(16, round(height * scale / 2) * 2)


def music_intensity(tensions: Sequence[str]) -> str:
    """The music bed's intensity from the sequences' tension: the highest one, "evolving" when
    the story climbs from calm to high tension."""
    rank = {"basse": 0, "moyenne": 1, "elevee": 2, "critique": 3}
    levels = [rank.get(t, 1) for t in tensions] or [1]
    top = max(levels)
    if top >= 2 and min(levels) <= 1:
        return "evolving"
    return ("low", "medium", "high", "high")[top]


class ProductionJobs(Jobs):
    """The kit's jobs, with a cancel that also stops the production's steps in flight."""

    async def cancel(
        self, session: AsyncSession, *, principal: Principal, job_id: uuid.UUID
    ) -> Job:
        job = await super().cancel(session, principal=principal, job_id=job_id)
        await stop_steps(session, job, status=CANCELLED)
        return job


async def stop_steps(session: AsyncSession, job: Job, *, status: str) -> None:
    """Mark the steps still in flight ``status`` and tell their services to cancel them."""
    step = production_step.c
    refs = list(
        (
            await session.execute(
                update(production_step)
                .where(step.production_id == job["id"], step.status == REQUESTED)
                .values(status=status, finished_at=utcnow())
                .returning(step.ref)
            )
        ).scalars()
    )
    if refs:
        await _publish(
            session,
            ProductionCancelled(
                id=_command_id(job["id"], "cancelled"),
                production_id=job["id"],
                project_id=job["project_id"],
                owner_id=job["owner_id"],
                jobs=refs,
            ),
            job,
        )


async def delete_productions(session: AsyncSession, project_id: uuid.UUID) -> None:
    """A deleted project takes its productions (the other services delete the artefacts on
    ``project.deleted``)."""
    job = job_tables.job
    ids = select(job.c.id).where(job.c.project_id == project_id)
    await session.execute(delete(production_step).where(production_step.c.production_id.in_(ids)))
    for table in (job_tables.job_event, job_tables.stream_ticket):
        await session.execute(delete(table).where(table.c.job_id.in_(ids)))
    await session.execute(delete(job).where(job.c.project_id == project_id))


async def _publish(session: AsyncSession, event: EventData, job: Job) -> None:
    await add_event(session, event_tables, event, source=SOURCE, actor=job["owner_id"])


class Productions:
    def __init__(self, settings: JobSettings, signer: MediaSigner) -> None:
        self.signer = signer
        self.jobs = ProductionJobs(
            job_tables,
            event_tables,
            settings,
            service=SOURCE,
            # No process publishes wakes for a saga's progress (its steps advance in consumer
            # transactions), nor does a worker stamp heartbeats: streams poll each second.
            progress_subject=None,
            worker_heartbeats=False,
            present_result=self._signed,
        )

    def _signed(self, result: dict[str, Any], viewer: uuid.UUID) -> dict[str, Any]:
        """The film's download URL signed for ``viewer`` (a ``<video src>`` can load it)."""
        export_id = result.get("export_id")
        if not export_id:
            return result
        return {**result, "film_url": self.signer.sign(download_path(export_id), user_id=viewer)}

    # -- the API -----------------------------------------------------------------------------

    async def start(
        self,
        session: AsyncSession,
        *,
        principal: Principal,
        project_id: uuid.UUID,
        data: ProductionCreate,
    ) -> Job:
        """Record the production, its first step and its first command, in one transaction."""
        production_id = uuid.uuid4()
        width, height = data.size()
        params = {
            **data.model_dump(mode="json", exclude={"width", "height"}),
            "width": width,
            "height": height,
        }
        await jobs_repository.create(
            session,
            job_tables,
            job_id=production_id,
            project_id=project_id,
            owner_id=principal.user_id,
            kind=KIND,
            params=params,
        )
        job = await jobs_repository.advance(
            session,
            job_tables,
            production_id,
            from_statuses={"pending"},
            status=PROCESSING,
            progress=1,
            current_step="scenario",
            started_at=utcnow(),
        )
        assert job is not None  # created just above, in this transaction
        scenario_id = data.scenario_id or step_ref(production_id, "scenario")
        await self._request(
            session, job, "scenario", "scenario", 0, detail={"scenario_id": str(scenario_id)}
        )
        await _publish(
            session,
            ScenarioRequested(
                id=_command_id(production_id, "scenario"),
                production_id=production_id,
                project_id=project_id,
                owner_id=principal.user_id,
                scenario_id=scenario_id,
                story=data.story,
                title=data.title,
                shots_per_scene=data.shots_per_scene,
            ),
            job,
        )
        return job

    async def owned(
        self,
        session: AsyncSession,
        principal: Principal,
        project_id: uuid.UUID,
        production_id: uuid.UUID,
    ) -> Job:
        job = await self.jobs.owned(session, principal, production_id)
        if job["project_id"] != project_id:
            raise JobNotFound(f"No production {production_id} in project {project_id}.")
        return job

    async def public(
        self, session: AsyncSession, job: Job, *, viewer: uuid.UUID
    ) -> ProductionPublic:
        rows = await self._steps(session, job["id"])
        state = self.jobs.public(job, viewer=viewer)
        failed = next((r["key"] for r in rows if r["status"] == FAILED), None)
        return ProductionPublic(
            id=job["id"],
            job_id=job["id"],
            project_id=job["project_id"],
            status=state.status,
            progress=state.progress,
            current_step=state.current_step,
            failed_step=failed,
            error=job["error"],
            steps=[_step_public(r) for r in rows],
            result=state.result,
            request=job["params"],
            job_url=f"/api/productions/{job['id']}",
            stream_url=f"/api/productions/{job['id']}/stream",
            created_at=job["created_at"],
            started_at=job["started_at"],
            completed_at=job["completed_at"],
        )

    async def of_project(
        self,
        session: AsyncSession,
        *,
        principal: Principal,
        project_id: uuid.UUID,
        page: int,
        page_size: int,
    ) -> tuple[list[Job], int]:
        return await jobs_repository.list_owned(
            session,
            job_tables,
            principal.user_id,
            project_id=project_id,
            kind=KIND,
            offset=(page - 1) * page_size,
            limit=page_size,
        )

    async def expire(self, session: AsyncSession, *, older_than: datetime) -> list[uuid.UUID]:
        """Fail every processing production with a step requested before ``older_than`` and
        still unanswered, naming the step; the productions failed."""
        step = production_step.c
        job = job_tables.job.c
        stale = (
            await session.execute(
                select(step.production_id, step.key)
                .join(job_tables.job, job.id == step.production_id)
                .where(
                    job.status == PROCESSING,
                    step.status == REQUESTED,
                    step.requested_at < older_than,
                )
                .order_by(step.production_id, step.requested_at)
            )
        ).all()
        failed: list[uuid.UUID] = []
        for production_id, key in stale:
            if production_id in failed:
                continue
            locked = await self._processing(session, production_id)
            if locked is None:  # ended meanwhile
                continue
            waited = round((utcnow() - older_than).total_seconds() / 60)
            await self._fail(session, locked, key, f"no answer after {waited} min")
            failed.append(production_id)
        return failed

    async def sweep_forever(
        self, sessionmaker: async_sessionmaker[AsyncSession], *, step_timeout: float, every: float
    ) -> None:
        """:meth:`expire` every ``every`` seconds, for steps older than ``step_timeout`` seconds."""
        while True:
            await asyncio.sleep(every)
            try:
                async with transaction(sessionmaker) as session:
                    failed = await self.expire(
                        session, older_than=utcnow() - timedelta(seconds=step_timeout)
                    )
                for production_id in failed:
                    logger.warning(
                        "production.step.timed_out", extra={"production": str(production_id)}
                    )
            except Exception as exc:  # the database is away: the next sweep tries again
                logger.warning("production.sweep.failed", extra={"error": repr(exc)})

    # -- the saga's answers ------------------------------------------------------------------

    async def on_scenario_planned(self, session: AsyncSession, data: ScenarioPlanned) -> None:
        job = await self._processing(session, data.production_id)
        if job is None or not await self._finish(
            session,
            job,
            "scenario",
            detail={"scenario_id": str(data.scenario_id), "title": data.title, "genre": data.genre},
        ):
            return
        if not data.sequences:
            await self._fail(session, job, "scenario", "the scenario has no scenes to film")
            return
        params = job["params"]
        pid = job["id"]
        width, height = _keyframe_size(params["width"], params["height"])
        scenes: list[dict[str, Any]] = []
        clock = 0.0
        for index, sequence in enumerate(data.sequences):
            shots = [shot for scene in sequence.scenes for shot in scene.shots]
            for scene in sequence.scenes:
                length = round(sum(s.duration_seconds for s in scene.shots), 6)
                scenes.append(
                    {"start": round(clock, 6), "duration": length, "text": scene.narration}
                )
                clock += length
            key = f"storyboard:{index}"
            ref = await self._request(session, job, key, "storyboard", index)
            await _publish(
                session,
                StoryboardRequested(
                    id=_command_id(pid, key),
                    production_id=pid,
                    project_id=job["project_id"],
                    owner_id=job["owner_id"],
                    job_id=ref,
                    title=sequence.title[:255],
                    prompt=sequence.prompt,
                    shots=shots,
                    width=width,
                    height=height,
                ),
                job,
            )
        total = round(clock, 6)
        voice = VoiceChoice(**(params.get("voice") or {}))
        if params.get("narration", True):
            for index, placed in enumerate(scenes):
                key = f"narration:{index}"
                ref = await self._request(
                    session,
                    job,
                    key,
                    "narration",
                    index,
                    detail={"start": placed["start"], "duration": placed["duration"]},
                )
                await self._audio(session, job, key, ref, "voice", text=placed["text"], voice=voice)
        chosen = params.get("music") or {
            "genre": data.genre or "drama",
            "intensity": music_intensity([s.tension for s in data.sequences]),
        }
        ref = await self._request(session, job, "music", "music", 0)
        await self._audio(
            session,
            job,
            "music",
            ref,
            "music",
            music=MusicChoice(genre=chosen["genre"][:60], intensity=chosen["intensity"]),
            duration_seconds=float(min(600, max(1, math.ceil(total)))),
        )
        await self._set_checkpoint(
            session,
            job,
            {"title": data.title, "duration_seconds": total, "scenes": scenes},
        )
        await self._advance(session, pid)

    async def on_scenario_plan_failed(
        self, session: AsyncSession, data: ScenarioPlanFailed
    ) -> None:
        job = await self._processing(session, data.production_id)
        if job is not None:
            await self._fail(session, job, "scenario", data.error)

    async def on_sequence_generated(self, session: AsyncSession, data: SequenceGenerated) -> None:
        shots = [
            {"id": str(s.id), "index": s.order_index, "duration_seconds": s.duration_seconds}
            for s in sorted(data.shots, key=lambda s: s.order_index)
        ]
        await self._answered(session, data.job_id, detail={"shots": shots})

    async def on_sequence_failed(self, session: AsyncSession, data: SequenceFailed) -> None:
        await self._answered(session, data.job_id, error=data.error)

    async def on_sequence_cancelled(self, session: AsyncSession, data: SequenceCancelled) -> None:
        await self._answered(session, data.job_id, error="the storyboard job was cancelled")

    async def on_audio_made(self, session: AsyncSession, data: AudioGenerated | AudioMixed) -> None:
        """A narration or the music (``audio.generated``), or the mix (``audio.mixed``)."""
        await self._answered(
            session, data.job_id, detail={"duration_seconds": data.duration_seconds}
        )

    async def on_audio_failed(self, session: AsyncSession, data: AudioFailed) -> None:
        await self._answered(session, data.job_id, error=data.error)

    async def on_audio_cancelled(self, session: AsyncSession, data: AudioCancelled) -> None:
        await self._answered(session, data.job_id, error="the audio job was cancelled")

    async def on_video_exported(self, session: AsyncSession, data: VideoExported) -> None:
        await self._answered(
            session, data.export_id, detail={"duration_seconds": data.duration_seconds}
        )

    async def on_export_failed(self, session: AsyncSession, data: ExportFailed) -> None:
        await self._answered(session, data.export_id, error=data.error)

    async def on_export_cancelled(self, session: AsyncSession, data: ExportCancelled) -> None:
        await self._answered(session, data.export_id, error="the export was cancelled")

    # -- the machine ---------------------------------------------------------------------------

    async def _answered(
        self,
        session: AsyncSession,
        ref: uuid.UUID,
        *,
        detail: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        """An answer about ``ref``: finish its step and move on, or fail the production. An
        answer about anything a production did not ask for is not ours."""
        found = (
            await session.execute(
                select(production_step.c.production_id, production_step.c.key).where(
                    production_step.c.ref == ref
                )
            )
        ).first()
        if found is None:
            return
        production_id, key = found
        job = await self._processing(session, production_id)
        if job is None:
            return
        if error is not None:
            await self._fail(session, job, key, error)
            return
        if await self._finish(session, job, key, detail=detail or {}):
            await self._advance(session, production_id)

    async def _processing(self, session: AsyncSession, production_id: uuid.UUID) -> Job | None:
        """The production's job, locked, while it is processing; None once it has ended."""
        job = await jobs_repository.get(session, job_tables, production_id, lock=True)
        if job is None or job["status"] != PROCESSING:
            return None
        return job

    async def _steps(self, session: AsyncSession, production_id: uuid.UUID) -> list[RowMapping]:
        step = production_step.c
        rows = await session.execute(
            select(production_step)
            .where(step.production_id == production_id)
            .order_by(step.requested_at, step.kind, step.position)
        )
        return list(rows.mappings().all())

    async def _request(
        self,
        session: AsyncSession,
        job: Job,
        key: str,
        kind: str,
        position: int,
        *,
        detail: dict[str, Any] | None = None,
    ) -> uuid.UUID:
        ref = step_ref(job["id"], key)
        await session.execute(
            insert(production_step).values(
                production_id=job["id"],
                key=key,
                kind=kind,
                position=position,
                ref=ref,
                status=REQUESTED,
                detail=detail or {},
                requested_at=utcnow(),
            )
        )
        return ref

    async def _finish(
        self, session: AsyncSession, job: Job, key: str, *, detail: dict[str, Any]
    ) -> bool:
        """Mark a requested step completed, keeping what the answer said; False when it was
        not waiting for an answer (a duplicate answer, or a step already stopped)."""
        step = production_step.c
        current = (
            await session.execute(
                select(step.detail).where(
                    step.production_id == job["id"], step.key == key, step.status == REQUESTED
                )
            )
        ).scalar_one_or_none()
        if current is None:
            return False
        await session.execute(
            update(production_step)
            .where(step.production_id == job["id"], step.key == key)
            .values(status=COMPLETED, detail={**current, **detail}, finished_at=utcnow())
        )
        return True

    async def _fail(self, session: AsyncSession, job: Job, key: str, error: str) -> None:
        step = production_step.c
        await session.execute(
            update(production_step)
            .where(step.production_id == job["id"], step.key == key)
            .values(status=FAILED, error=error[:2000], finished_at=utcnow())
        )
        await jobs_repository.advance(
            session,
            job_tables,
            job["id"],
            from_statuses={PROCESSING},
            status=FAILED,
            current_step=f"failed at {key}"[:255],
            error=f"{key}: {error}"[:4000],
            completed_at=utcnow(),
        )
        await stop_steps(session, job, status=CANCELLED)

    async def _set_checkpoint(
        self, session: AsyncSession, job: Job, values: dict[str, Any]
    ) -> None:
        table = job_tables.job
        await session.execute(
            update(table)
            .where(table.c.id == job["id"])
            .values(checkpoint={**job["checkpoint"], **values})
        )

    async def _audio(
        self,
        session: AsyncSession,
        job: Job,
        key: str,
        ref: uuid.UUID,
        audio_type: Literal["voice", "music"],
        *,
        text: str | None = None,
        voice: VoiceChoice | None = None,
        music: MusicChoice | None = None,
        duration_seconds: float | None = None,
    ) -> None:
        await _publish(
            session,
            AudioRequested(
                id=_command_id(job["id"], key),
                production_id=job["id"],
                project_id=job["project_id"],
                owner_id=job["owner_id"],
                audio_id=ref,
                audio_type=audio_type,
                text=text,
                voice=voice,
                music=music,
                duration_seconds=duration_seconds,
            ),
            job,
        )

    async def _advance(self, session: AsyncSession, production_id: uuid.UUID) -> None:
        """After a step finished: start what has become possible, report progress, or complete."""
        job = await jobs_repository.get(session, job_tables, production_id)
        assert job is not None  # locked by the caller
        rows = await self._steps(session, production_id)
        steps = {r["key"]: r for r in rows}

        def done(*kinds: str) -> bool:
            chosen = [r for r in rows if r["kind"] in kinds]
            return bool(chosen) and all(r["status"] == COMPLETED for r in chosen)

        plan = job["checkpoint"]
        narrations = [r for r in rows if r["kind"] == "narration"]
        sound_ready = False
        if narrations:
            if "mix" not in steps and done("narration", "music"):
                await self._mix(session, job, rows, plan)
            sound_ready = done("mix")
        else:
            sound_ready = done("music")
        if "film" not in steps and sound_ready and done("storyboard"):
            await self._film(session, job, rows, plan)
        if "film" in steps and steps["film"]["status"] == COMPLETED:
            await self._complete(session, job, rows)
            return
        await self._report(session, job)

    async def _mix(
        self, session: AsyncSession, job: Job, rows: list[RowMapping], plan: dict[str, Any]
    ) -> None:
        music = next(r for r in rows if r["kind"] == "music")
        tracks = [
            MixTrack(
                audio_id=music["ref"],
                category="music",
                start_time_seconds=0.0,
                volume=MUSIC_BED_VOLUME,
            )
        ]
        for row in sorted(
            (r for r in rows if r["kind"] == "narration"), key=lambda r: r["position"]
        ):
            tracks.append(
                MixTrack(
                    audio_id=row["ref"],
                    category="dialogue",
                    volume=NARRATION_VOLUME,
                    start_time_seconds=row["detail"]["start"],
                    trim_end_seconds=row["detail"]["duration"],
                )
            )
        ref = await self._request(session, job, "mix", "mix", 0)
        await _publish(
            session,
            MixRequested(
                id=_command_id(job["id"], "mix"),
                production_id=job["id"],
                project_id=job["project_id"],
                owner_id=job["owner_id"],
                audio_id=ref,
                tracks=tracks,
                duration_seconds=plan["duration_seconds"],
            ),
            job,
        )

    async def _film(
        self, session: AsyncSession, job: Job, rows: list[RowMapping], plan: dict[str, Any]
    ) -> None:
        params = job["params"]
        boards = sorted((r for r in rows if r["kind"] == "storyboard"), key=lambda r: r["position"])
        sound_kind = "mix" if any(r["kind"] == "mix" for r in rows) else "music"
        sound = next(r for r in rows if r["kind"] == sound_kind)
        ref = await self._request(session, job, "film", "film", 0)
        custom = params["preset"] == "custom"
        await _publish(
            session,
            FilmRequested(
                id=_command_id(job["id"], "film"),
                production_id=job["id"],
                project_id=job["project_id"],
                owner_id=job["owner_id"],
                timeline_id=step_ref(job["id"], "timeline"),
                export_id=ref,
                name=(plan.get("title") or "Film")[:255],
                storyboards=[
                    StoryboardPart(
                        sequence_job_id=board["ref"],
                        shots=[
                            StoryboardShot(index=s["index"], duration_seconds=s["duration_seconds"])
                            for s in board["detail"]["shots"]
                        ],
                    )
                    for board in boards
                ],
                audio_id=sound["ref"],
                preset=params["preset"],
                quality=params["quality"],
                width=params["width"] if custom else None,
                height=params["height"] if custom else None,
                fps=params.get("fps"),
            ),
            job,
        )

    async def _complete(self, session: AsyncSession, job: Job, rows: list[RowMapping]) -> None:
        def refs(kind: str) -> list[str]:
            chosen = sorted((r for r in rows if r["kind"] == kind), key=lambda r: r["position"])
            return [str(r["ref"]) for r in chosen]

        scenario = next(r for r in rows if r["kind"] == "scenario")
        film = next(r for r in rows if r["kind"] == "film")
        mix = refs("mix")
        result = {
            "scenario_id": scenario["detail"]["scenario_id"],
            "title": scenario["detail"].get("title"),
            "sequence_job_ids": refs("storyboard"),
            "shot_ids": [
                shot["id"]
                for r in sorted(
                    (r for r in rows if r["kind"] == "storyboard"), key=lambda r: r["position"]
                )
                for shot in r["detail"]["shots"]
            ],
            "audio": {
                "narration_ids": refs("narration"),
                "music_id": refs("music")[0],
                "mix_id": mix[0] if mix else None,
            },
            "timeline_id": str(step_ref(job["id"], "timeline")),
            "export_id": str(film["ref"]),
            "duration_seconds": film["detail"].get("duration_seconds"),
            "download_url": download_path(str(film["ref"])),
        }
        await jobs_repository.advance(
            session,
            job_tables,
            job["id"],
            from_statuses={PROCESSING},
            status=COMPLETED,
            progress=100,
            current_step="completed",
            result=result,
            completed_at=utcnow(),
        )

    async def _report(self, session: AsyncSession, job: Job) -> None:
        rows = await self._steps(session, job["id"])
        progress, step = _progress(rows)
        if progress == job["progress"] and step == job["current_step"]:
            return
        await jobs_repository.advance(
            session,
            job_tables,
            job["id"],
            from_statuses={PROCESSING},
            progress=progress,
            current_step=step[:255],
        )


def _progress(rows: list[RowMapping]) -> tuple[int, str]:
    """Percent and a one-line account: the scenario is 10 %, the storyboards, narration and
    music 60 % (by count), the mix 10 % and the film the rest."""
    by_kind: dict[str, list[RowMapping]] = {}
    for row in rows:
        by_kind.setdefault(row["kind"], []).append(row)

    def count(kind: str) -> tuple[int, int]:
        chosen = by_kind.get(kind, [])
        return sum(r["status"] == COMPLETED for r in chosen), len(chosen)

    scenario_done, _ = count("scenario")
    middle = [count(k) for k in MIDDLE]
    finished = sum(d for d, _ in middle)
    total = sum(n for _, n in middle)
    progress = 1 + 9 * scenario_done
    if total:
        progress = 10 + round(60 * finished / total)
    if "mix" in by_kind:
        progress = max(progress, 70 + 10 * count("mix")[0])
    if "film" in by_kind:
        return max(progress, 80), "film"
    if not scenario_done:
        return progress, "scenario"
    parts = [f"{kind} {d}/{n}" for kind, (d, n) in zip(MIDDLE, middle, strict=True) if n]
    if "mix" in by_kind:
        parts.append("mix" if count("mix")[0] == 0 else "mix 1/1")
    return min(progress, 99), ", ".join(parts)


def _step_public(row: RowMapping) -> ProductionStep:
    finished = row["finished_at"]
    seconds = (finished - row["requested_at"]).total_seconds() if finished else None
    return ProductionStep(
        key=row["key"],
        kind=row["kind"],
        ref=row["ref"],
        status=row["status"],
        detail=row["detail"],
        error=row["error"],
        requested_at=row["requested_at"],
        finished_at=finished,
        seconds=round(seconds, 3) if seconds is not None else None,
    )
