"""API use cases of the audio service. Functions flush, never commit.

Every render is a job on the shared runner (``audio.requested``): a generation (one record,
the job's id), a multitrack (one record per stem; the job's id is the multitrack id) or a mix
(one record, the job's id). The request the worker needs is the job's ``params``.
"""

from __future__ import annotations

import contextlib
import tempfile
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from fastapi import Request, Response
from sqlalchemy import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from audio import profiles, repository
from audio.config import Settings
from audio.dsp import catalogue
from audio.errors import (
    AudioNotFound,
    AudioNotReady,
    ConfigurationNotFound,
    LanguageNotAvailable,
)
from audio.models import event_tables, job_tables
from audio.schemas import (
    AudioPublic,
    AudiosPublic,
    AudiowaveformPublic,
    AutomixPublic,
    AutomixRequest,
    ExportMixRequest,
    GenerateRequest,
    MixRequest,
    MixTrackIn,
    MultitrackPublic,
    MultitrackRequest,
    MusicOptions,
    ProfileRequest,
    RenderingRequest,
    SfxOptions,
    VoiceOptions,
    WaveformPublic,
)
from storycore_shared.assets import Assets, download_to
from storycore_shared.assets.http import asset_response
from storycore_shared.auth import Principal
from storycore_shared.events.contracts.audio import (
    AudioCancelled,
    AudioDeleted,
    AudioRequested,
    progress_subject,
)
from storycore_shared.events.contracts.projects import ProjectDeleted
from storycore_shared.events.outbox import add_event
from storycore_shared.jobs.errors import JobNotCancellable
from storycore_shared.jobs.repository import Job
from storycore_shared.jobs.service import Jobs
from storycore_shared.jobs.tables import ACTIVE, COMPLETED
from storycore_shared.media import MediaSigner
from storycore_shared.replicas.projects import ProjectDirectory

SOURCE = "audio"
SAMPLE_RATE = 48000
DEFAULT_SECONDS = {"music": 30.0, "sfx": 5.0, "ambient": 30.0}
CONTENT_TYPES = {"wav": "audio/wav", "flac": "audio/flac", "mp3": "audio/mpeg", "ogg": "audio/ogg"}


def _cancelled(job: Job) -> AudioCancelled:
    return AudioCancelled(id=job["id"], project_id=job["project_id"], job_id=job["id"])


def make_jobs(settings: Settings) -> Jobs:
    return Jobs(
        job_tables,
        event_tables,
        settings,
        service=SOURCE,
        progress_subject=progress_subject,
        cancelled_event=_cancelled,
    )


def audio_key(audio_id: uuid.UUID, fmt: str) -> str:
    return f"audio/{audio_id}.{fmt}"


def download_url(audio_id: uuid.UUID) -> str:
    return f"/api/audio/{audio_id}/download"


def seed_of(data: RenderingRequest, record_id: uuid.UUID) -> int:
    """The request's seed, or one derived from the record (stored, so a re-render matches)."""
    return data.seed if data.seed is not None else record_id.int % 2**32


def voice_language(language: str) -> str:
    """The catalogue's language for ``language`` (``fr`` → ``fr-FR``); 422 naming the others."""
    try:
        return catalogue.resolve(language)
    except catalogue.UnknownVoiceLanguage as exc:
        raise LanguageNotAvailable(
            f"No voice speaks {language!r}; available: {', '.join(exc.available)}.",
            extra={"available": exc.available},
        ) from exc


def build_profile(kind: str, data: RenderingRequest) -> dict[str, Any]:
    """The profile of a render: what the worker renders and what the record shows."""
    if kind == "voice":
        options = data.voice or VoiceOptions()
        emotion = catalogue.EMOTIONS[options.emotion]
        level = profiles.VOICE_LEVELS_DB[options.type]
        track: dict[str, Any] = {"name": "voice", "level_db": level, "mono": True, "filters": {}}
        if options.type == "whisper":
            track["filters"]["noise_gate_db"] = profiles.WHISPER_GATE_DB
        if options.type == "styled":
            track["filters"]["style"] = options.style
        return {
            "profile_type": "voice",
            **options.model_dump(),
            "language": voice_language(options.language),
            "modifiers": {
                "pitch_semitones": emotion.pitch_semitones,
                "speed": emotion.speed,
                "volume_db": emotion.volume_db,
            },
            "tracks": [track],
            "prompts": {"voice": f"{options.gender} {options.type} voice, {options.emotion}"},
        }
    if kind == "music":
        music = data.music or MusicOptions()
        spec = profiles.music_spec(
            genre=music.genre, intensity=music.intensity, action=music.action, rhythm=music.rhythm
        )
        return {
            "profile_type": "music",
            **music.model_dump(),
            "bpm": spec.bpm,
            "gain_peak": spec.gain_peak,
            "gain_drop": spec.gain_drop,
            "slow_motion": spec.slow_motion,
            "tracks": [profiles.stem_dict(s) for s in spec.stems],
            "prompts": {
                s.name: f"{music.genre} {s.name}, {music.intensity} intensity, {spec.bpm:g} BPM"
                + (f", {music.style}" if music.style else "")
                for s in spec.stems
            },
        }
    sfx = data.sfx or SfxOptions()
    sfx_spec = profiles.sfx_spec(
        action=sfx.action,
        intensity=sfx.intensity,
        environment=sfx.environment,
        muffling=sfx.muffling,
    )
    return {
        "profile_type": "sfx" if kind != "ambient" else "ambient",
        **sfx.model_dump(),
        "tracks": [profiles.stem_dict(s) for s in sfx_spec.stems]
        if kind != "ambient"
        else [
            {
                "name": "ambience",
                "level_db": profiles.LEVELS["ambience"][0],
                "mono": False,
                "filters": {},
            }
        ],
        "prompts": {
            s.name: f"{sfx.action} {s.name}, {sfx.environment or 'default'} environment"
            for s in sfx_spec.stems
        },
    }


@dataclass(frozen=True)
class MixOutput:
    """What a mix renders to, besides its tracks. With ``ducking``, the tracks that are not
    dialogue duck under those that are (when there are some)."""

    format: str
    bit_depth: int
    sample_rate: int
    channels: int
    duration_seconds: float | None
    normalize_lufs: float | None
    ducking: bool

    @classmethod
    def of(cls, data: MixRequest) -> MixOutput:
        return cls(
            format=data.output_format,
            bit_depth=data.bit_depth,
            sample_rate=data.sample_rate,
            channels=1 if data.channels == "mono" else 2,
            duration_seconds=data.output_duration_seconds,
            normalize_lufs=data.normalize_lufs,
            ducking=data.ducking == "auto",
        )


def channels_of(kind: str, stem: str | None = None) -> int:
    if kind == "voice" or stem in ("voice", "bass"):
        return 1
    return 2


class Audio:
    def __init__(
        self, directory: ProjectDirectory, settings: Settings, jobs: Jobs, assets: Assets
    ) -> None:
        self.directory = directory
        self.settings = settings
        self.jobs = jobs
        self.assets = assets
        self.signer = MediaSigner.from_settings(settings)

    # -- answers ---------------------------------------------------------------------------

    def public(self, row: RowMapping, *, principal: Principal) -> AudioPublic:
        """The record as answered to ``principal``: its ``file_url`` signed for them."""
        done = row["status"] == COMPLETED and row["asset_key"] is not None
        return AudioPublic(
            id=row["id"],
            project_id=row["project_id"],
            type=row["type"],
            name=row["name"],
            format=row["format"],
            duration_seconds=row["duration_seconds"],
            sample_rate=row["sample_rate"],
            channels=row["channels"],
            file_size_bytes=row["file_size_bytes"],
            file_url=self.signer.sign(download_url(row["id"]), user_id=principal.user_id)
            if done
            else None,
            loudness_lufs=row["loudness_lufs"],
            peak_dbfs=row["peak_dbfs"],
            status=row["status"],
            job_id=row["job_id"],
            job_url=f"/api/audio/jobs/{row['job_id']}",
            profile=row["profile"],
            multitrack_id=row["multitrack_id"],
            error=row["error"],
            created_at=row["created_at"],
        )

    async def _owned(
        self, session: AsyncSession, principal: Principal, audio_id: uuid.UUID
    ) -> RowMapping:
        row = await repository.get(session, audio_id)
        if row is None or row["owner_id"] != principal.user_id:
            raise AudioNotFound(f"No audio {audio_id}.")
        return row

    # -- renders ---------------------------------------------------------------------------

    async def _queue(
        self,
        session: AsyncSession,
        *,
        principal: Principal,
        project_id: uuid.UUID,
        kind: str,
        params: dict[str, Any],
        records: list[dict[str, Any]],
        job_id: uuid.UUID,
    ) -> Job:
        job = await self.jobs.create(
            session,
            principal=principal,
            project_id=project_id,
            request=AudioRequested,
            kind=kind,
            job_id=job_id,
            params=params,
        )
        base = {"project_id": project_id, "owner_id": principal.user_id, "job_id": job["id"]}
        await repository.add(session, [{**base, **r} for r in records])
        return job

    async def generate(
        self, session: AsyncSession, *, principal: Principal, data: GenerateRequest
    ) -> AudioPublic:
        project = await self.directory.require(
            session, data.project_id, principal, write=True, lock=False
        )
        record_id = uuid.uuid4()
        await self.queue_generate(
            session, principal=principal, project_id=project.id, record_id=record_id, data=data
        )
        return await self.get(session, principal=principal, audio_id=record_id)

    async def queue_generate(
        self,
        session: AsyncSession,
        *,
        principal: Principal,
        project_id: uuid.UUID,
        record_id: uuid.UUID,
        data: GenerateRequest,
    ) -> None:
        """Queue the render of the record ``record_id`` (its job has the same id) in
        ``project_id``, whose access the caller checked. A language no voice speaks is a 422,
        raised before anything is written."""
        kind = data.audio_type
        profile = {**build_profile(kind, data), "seed": seed_of(data, record_id)}
        params = {
            "type": kind,
            "text": data.text,
            "profile": profile,
            "duration_seconds": data.duration_seconds or DEFAULT_SECONDS.get(kind),
            "format": data.format,
            "bit_depth": data.bit_depth,
            "sample_rate": SAMPLE_RATE,
            "records": [{"id": str(record_id), "name": None}],
        }
        await self._queue(
            session,
            principal=principal,
            project_id=project_id,
            kind="generate",
            params=params,
            job_id=record_id,
            records=[self._record(record_id, kind, data, profile, None)],
        )

    def _record(
        self,
        record_id: uuid.UUID,
        kind: str,
        data: RenderingRequest,
        profile: dict[str, Any],
        stem: str | None,
        multitrack_id: uuid.UUID | None = None,
    ) -> dict[str, Any]:
        return {
            "id": record_id,
            "type": kind,
            "name": stem,
            "multitrack_id": multitrack_id,
            "format": data.format,
            "bit_depth": data.bit_depth,
            "sample_rate": SAMPLE_RATE,
            "channels": channels_of(profile["profile_type"] if kind == "stem" else kind, stem),
            "profile": profile,
        }

    async def multitrack(
        self, session: AsyncSession, *, principal: Principal, data: MultitrackRequest
    ) -> MultitrackPublic:
        project = await self.directory.require(
            session, data.project_id, principal, write=True, lock=False
        )
        multitrack_id = uuid.uuid4()
        kind = data.profile_type
        profile = {**build_profile(kind, data), "seed": seed_of(data, multitrack_id)}
        stems = [t["name"] for t in profile["tracks"]]
        ids = {name: uuid.uuid5(multitrack_id, name) for name in stems}
        params = {
            "type": "stem",
            "text": data.text,
            "profile": profile,
            "duration_seconds": data.duration_seconds or DEFAULT_SECONDS.get(kind),
            "format": data.format,
            "bit_depth": data.bit_depth,
            "sample_rate": SAMPLE_RATE,
            "records": [{"id": str(ids[name]), "name": name} for name in stems],
        }
        records = [
            self._record(ids[name], "stem", data, profile, name, multitrack_id) for name in stems
        ]
        await self._queue(
            session,
            principal=principal,
            project_id=project.id,
            kind="multitrack",
            params=params,
            job_id=multitrack_id,
            records=records,
        )
        rows = await repository.of_job(session, multitrack_id)
        by_name = {row["name"]: row for row in rows}
        return MultitrackPublic(
            multitrack_id=multitrack_id,
            job_id=multitrack_id,
            tracks=[self.public(by_name[name], principal=principal) for name in stems],
        )

    async def build_profile(
        self, session: AsyncSession, *, principal: Principal, data: ProfileRequest
    ) -> dict[str, Any]:
        await self.directory.require(session, data.project_id, principal, write=False)
        return build_profile(data.profile_type, data)

    async def _mixable(
        self,
        session: AsyncSession,
        principal: Principal,
        project_id: uuid.UUID,
        ids: list[uuid.UUID],
    ) -> dict[uuid.UUID, RowMapping]:
        """The caller's completed records of ``project_id``: 404 for any other, 409 until
        rendered."""
        rows = {row["id"]: row for row in await repository.get_many(session, ids)}
        for audio_id in ids:
            row = rows.get(audio_id)
            if (
                row is None
                or row["owner_id"] != principal.user_id
                or row["project_id"] != project_id
            ):
                raise AudioNotFound(f"No audio {audio_id} in project {project_id}.")
        for audio_id in ids:
            row = rows[audio_id]
            if row["status"] != COMPLETED or row["asset_key"] is None:
                raise AudioNotReady(f"Audio {audio_id} is {row['status']}; mix it once completed.")
        return rows

    async def mix(
        self, session: AsyncSession, *, principal: Principal, data: MixRequest
    ) -> AudioPublic:
        project = await self.directory.require(
            session, data.project_id, principal, write=True, lock=False
        )
        return await self.queue_mix(
            session,
            principal=principal,
            project_id=project.id,
            record_id=uuid.uuid4(),
            tracks=data.tracks,
            output=MixOutput.of(data),
        )

    async def queue_mix(
        self,
        session: AsyncSession,
        *,
        principal: Principal,
        project_id: uuid.UUID,
        record_id: uuid.UUID,
        tracks: Sequence[MixTrackIn],
        output: MixOutput,
    ) -> AudioPublic:
        """Queue the mix ``record_id`` (its job has the same id) of ``tracks`` in
        ``project_id``, whose access the caller checked. Every track must be one of the
        caller's completed records of the project: 404 for any other, 409 until rendered,
        raised before anything is written."""
        rows = await self._mixable(session, principal, project_id, [t.audio_id for t in tracks])
        categories = {
            t.audio_id: t.category or profiles.categorise(dict(rows[t.audio_id])) for t in tracks
        }
        keys = {i for i, c in categories.items() if c == "dialogue"}
        duck = output.ducking and bool(keys)
        mixed = []
        for t in tracks:
            row = rows[t.audio_id]
            mixed.append(
                {
                    "audio_id": str(t.audio_id),
                    "asset_key": row["asset_key"],
                    "format": row["format"],
                    "volume": t.volume,
                    "volume_db": 0.0,
                    "pan": t.pan,
                    "fade_in_seconds": t.fade_in_seconds,
                    "fade_out_seconds": t.fade_out_seconds,
                    "fade_curve": t.fade_curve,
                    "start_time_seconds": t.start_time_seconds,
                    "trim_start_seconds": t.trim_start_seconds or 0.0,
                    "trim_end_seconds": t.trim_end_seconds,
                    "key": duck and t.audio_id in keys,
                    "ducked": duck and t.audio_id not in keys,
                    "mono_below_hz": None,
                }
            )
        master = {
            "sample_rate": output.sample_rate,
            "channels": output.channels,
            "duration_seconds": output.duration_seconds,
            "normalize_lufs": output.normalize_lufs,
            "limiter_dbfs": profiles.MASTER["limiter_dbfs"],
            "ducking": duck,
        }
        profile = {"profile_type": "mix", "master": master, "tracks": mixed}
        return await self._queue_mix(
            session,
            principal,
            project_id,
            output.format,
            output.bit_depth,
            profile,
            record_id=record_id,
        )

    async def _queue_mix(
        self,
        session: AsyncSession,
        principal: Principal,
        project_id: uuid.UUID,
        fmt: str,
        bit_depth: int,
        profile: dict[str, Any],
        configuration_id: uuid.UUID | None = None,
        record_id: uuid.UUID | None = None,
    ) -> AudioPublic:
        record_id = record_id or uuid.uuid4()
        master = profile["master"]
        params = {
            "type": "mix",
            "profile": profile,
            "format": fmt,
            "bit_depth": bit_depth,
            "sample_rate": master["sample_rate"],
            "records": [{"id": str(record_id), "name": None}],
        }
        shown = {**profile, "configuration_id": str(configuration_id) if configuration_id else None}
        await self._queue(
            session,
            principal=principal,
            project_id=project_id,
            kind="mix",
            params=params,
            job_id=record_id,
            records=[
                {
                    "id": record_id,
                    "type": "mix",
                    "name": None,
                    "multitrack_id": None,
                    "format": fmt,
                    "bit_depth": bit_depth,
                    "sample_rate": master["sample_rate"],
                    "channels": master["channels"],
                    "profile": shown,
                }
            ],
        )
        return await self.get(session, principal=principal, audio_id=record_id)

    async def automix(
        self, session: AsyncSession, *, principal: Principal, data: AutomixRequest
    ) -> AutomixPublic:
        project = await self.directory.require(
            session, data.project_id, principal, write=True, lock=False
        )
        ids = list(dict.fromkeys(data.track_ids))
        rows = await self._mixable(session, principal, project.id, ids)
        configuration, warnings = profiles.automix([dict(rows[i]) for i in ids])
        configuration_id = uuid.uuid4()
        await repository.add_configuration(
            session,
            id=configuration_id,
            project_id=project.id,
            owner_id=principal.user_id,
            configuration=configuration,
            warnings=warnings,
        )
        return AutomixPublic(
            configuration={"id": str(configuration_id), **configuration}, warnings=warnings
        )

    async def export_mix(
        self, session: AsyncSession, *, principal: Principal, data: ExportMixRequest
    ) -> AudioPublic:
        project = await self.directory.require(
            session, data.project_id, principal, write=True, lock=False
        )
        stored = await repository.get_configuration(session, data.configuration_id)
        if (
            stored is None
            or stored["owner_id"] != principal.user_id
            or stored["project_id"] != project.id
        ):
            raise ConfigurationNotFound(f"No mix configuration {data.configuration_id}.")
        configuration = stored["configuration"]
        ids = [uuid.UUID(t["audio_id"]) for t in configuration["tracks"]]
        rows = await self._mixable(session, principal, project.id, ids)
        ducking = configuration["ducking"]
        tracks = []
        for t in configuration["tracks"]:
            row = rows[uuid.UUID(t["audio_id"])]
            mono_below = [e["frequency_hz"] for e in t["effects"] if e["type"] == "mono_below"]
            tracks.append(
                {
                    "audio_id": t["audio_id"],
                    "asset_key": row["asset_key"],
                    "format": row["format"],
                    "volume": 1.0,
                    "volume_db": t["volume_db"],
                    "pan": t["pan"],
                    "fade_in_seconds": 0.0,
                    "fade_out_seconds": 0.0,
                    "fade_curve": "linear",
                    "start_time_seconds": 0.0,
                    "trim_start_seconds": 0.0,
                    "trim_end_seconds": None,
                    "key": ducking["enabled"] and t["audio_id"] in ducking["keys"],
                    "ducked": ducking["enabled"] and t["audio_id"] in ducking["ducked"],
                    "mono_below_hz": min(mono_below) if mono_below else None,
                }
            )
        master_in = configuration["master"]
        master = {
            "sample_rate": master_in["sample_rate"],
            "channels": master_in["channels"],
            "duration_seconds": None,
            "normalize_lufs": master_in["normalize_lufs"],
            "limiter_dbfs": master_in["limiter_dbfs"],
            "ducking": bool(ducking["enabled"]),
        }
        profile = {"profile_type": "mix", "master": master, "tracks": tracks}
        return await self._queue_mix(
            session, principal, project.id, data.format, data.bit_depth, profile, stored["id"]
        )

    # -- records ---------------------------------------------------------------------------

    async def get(
        self, session: AsyncSession, *, principal: Principal, audio_id: uuid.UUID
    ) -> AudioPublic:
        return self.public(await self._owned(session, principal, audio_id), principal=principal)

    async def list_project(
        self,
        session: AsyncSession,
        *,
        principal: Principal,
        project_id: uuid.UUID,
        kind: str | None,
        page: int,
        page_size: int,
    ) -> AudiosPublic:
        await self.directory.require(session, project_id, principal, write=False)
        rows, total = await repository.list_owned(
            session,
            owner_id=principal.user_id,
            project_id=project_id,
            kind=kind,
            offset=(page - 1) * page_size,
            limit=page_size,
        )
        return AudiosPublic(
            audio_files=[self.public(r, principal=principal) for r in rows],
            total=total,
            page=page,
            page_size=page_size,
        )

    async def delete(
        self, session: AsyncSession, *, principal: Principal, audio_id: uuid.UUID
    ) -> None:
        row = await self._owned(session, principal, audio_id)
        if row["status"] in ACTIVE and await repository.count_of_job(session, row["job_id"]) == 1:
            # The cancel waits for a worker's running step (it holds the job's row), so what
            # that step stored is seen below; after it, the worker writes nothing more.
            with contextlib.suppress(JobNotCancellable):
                await self.jobs.cancel(session, principal=principal, job_id=row["job_id"])
            row = await self._owned(session, principal, audio_id)
        if row["asset_key"] is not None:
            await self.assets.delete(session, row["asset_key"])
        await repository.remove(session, audio_id)
        await add_event(
            session,
            event_tables,
            AudioDeleted(
                id=audio_id,
                project_id=row["project_id"],
                owner_id=row["owner_id"],
                audio_id=audio_id,
                type=row["type"],
            ),
            source=SOURCE,
            actor=principal.user_id,
        )

    async def _file(
        self, session: AsyncSession, principal: Principal, audio_id: uuid.UUID
    ) -> tuple[RowMapping, Any]:
        row = await self._owned(session, principal, audio_id)
        record = None
        if row["status"] == COMPLETED and row["asset_key"] is not None:
            record = await self.assets.get(session, row["asset_key"])
        if record is None:
            raise AudioNotReady(f"The audio is {row['status']}; its file exists once completed.")
        return row, record

    async def download(
        self,
        request: Request,
        session: AsyncSession,
        *,
        principal: Principal,
        audio_id: uuid.UUID,
    ) -> Response:
        row, record = await self._file(session, principal, audio_id)
        return asset_response(
            request, self.assets.store, record, filename=f"{row['type']}-{audio_id}.{row['format']}"
        )

    async def waveform(
        self,
        session: AsyncSession,
        *,
        principal: Principal,
        audio_id: uuid.UUID,
        samples_per_second: int,
        max_points: int,
        shape: str,
    ) -> WaveformPublic | AudiowaveformPublic:
        from audio.dsp import waveform as peaks

        row, record = await self._file(session, principal, audio_id)
        async with self._fetched(record.key, row["format"]) as path:
            if shape == "audiowaveform":
                data = await anyio.to_thread.run_sync(
                    lambda: peaks.audiowaveform(
                        path, samples_per_second=samples_per_second, max_points=max_points
                    )
                )
                return AudiowaveformPublic(**data)
            data = await anyio.to_thread.run_sync(
                lambda: peaks.waveform(
                    path, samples_per_second=samples_per_second, max_points=max_points
                )
            )
        return WaveformPublic(audio_id=audio_id, **data)

    @contextlib.asynccontextmanager
    async def _fetched(self, key: str, fmt: str) -> AsyncIterator[Path]:
        """The stored file, copied to a temporary file for the decoder."""
        workdir = self.settings.WORK_DIR
        with tempfile.TemporaryDirectory(dir=workdir) as tmp:
            path = Path(tmp) / f"audio.{fmt}"
            await download_to(self.assets.store, key, path)
            yield path

    async def on_project_deleted(self, session: AsyncSession, data: ProjectDeleted) -> None:
        """The project's records, configurations and files go; jobs stay as the record of
        work done."""
        await repository.remove_project(session, data.project_id)
        await self.assets.delete_project(session, data.project_id)
