"""The saga's commands to audio (``audio-productions``) on real Postgres, each test rolled back:
records and jobs with the saga's ids, once; ``audio.failed`` for what can never succeed; the
production's cancel. The handlers never touch a file, so the asset store is never connected."""

from __future__ import annotations

import uuid
from typing import Any, TypeVar

import pytest
from sqlalchemy import RowMapping, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from audio import repository
from audio.config import Settings
from audio.models import assets_table, audio, event_tables, job_tables, project_replica
from audio.productions import Productions
from audio.schemas import GenerateRequest
from audio.service import Audio, make_jobs
from storycore_shared.assets import Assets, NatsAssetStore
from storycore_shared.auth import Principal
from storycore_shared.events.broker import Broker
from storycore_shared.events.contracts.productions import (
    AudioRequested,
    MixRequested,
    MixTrack,
    MusicChoice,
    ProductionCancelled,
    VoiceChoice,
)
from storycore_shared.jobs import repository as jobs_repository
from storycore_shared.replicas.projects import ProjectDirectory
from storycore_testkit.service_db import add_project
from storycore_testkit.settings import unit_settings

CommandT = TypeVar("CommandT", AudioRequested, MixRequested)
OWNER = uuid.uuid4()
STRANGER = uuid.uuid4()
PRODUCTION = uuid.uuid4()


def _settings() -> Settings:
    return unit_settings(Settings)


@pytest.fixture
def productions() -> Productions:
    settings = _settings()
    store = NatsAssetStore(Broker(settings.NATS_URL, name="audio-productions-test"), "unused")
    audio_service = Audio(
        ProjectDirectory(project_replica, settings.PROJECTS_URL),
        settings,
        make_jobs(settings),
        Assets(store, assets_table),
    )
    return Productions(audio_service)


async def _project(session: AsyncSession, productions: Productions) -> uuid.UUID:
    return await add_project(session, productions.audio.directory, OWNER)


def _voice(project_id: uuid.UUID, owner_id: uuid.UUID = OWNER, **extra: Any) -> AudioRequested:
    values: dict[str, Any] = {"text": "Il était une fois un phare.", **extra}
    return AudioRequested(
        id=uuid.uuid4(),
        production_id=PRODUCTION,
        project_id=project_id,
        owner_id=owner_id,
        audio_id=uuid.uuid4(),
        audio_type="voice",
        **values,
    )


def _music(project_id: uuid.UUID, **extra: Any) -> AudioRequested:
    return AudioRequested(
        id=uuid.uuid4(),
        production_id=PRODUCTION,
        project_id=project_id,
        owner_id=OWNER,
        audio_id=uuid.uuid4(),
        audio_type="music",
        **extra,
    )


def _mix(project_id: uuid.UUID, tracks: list[MixTrack], seconds: float = 42.0) -> MixRequested:
    return MixRequested(
        id=uuid.uuid4(),
        production_id=PRODUCTION,
        project_id=project_id,
        owner_id=OWNER,
        audio_id=uuid.uuid4(),
        tracks=tracks,
        duration_seconds=seconds,
    )


def _reissued(command: CommandT) -> CommandT:
    """The same command re-issued by the saga after a crash: a new event, the same ids."""
    return command.model_copy(update={"id": uuid.uuid4()})


async def _outbox(session: AsyncSession) -> list[tuple[str, dict[str, Any]]]:
    """Each outbox event: its subject and its data."""
    rows = await session.execute(
        select(event_tables.outbox.c.subject, event_tables.outbox.c.payload).order_by(
            event_tables.outbox.c.seq
        )
    )
    return [(subject, payload["data"]) for subject, payload in rows]


async def _record(session: AsyncSession, audio_id: uuid.UUID) -> RowMapping | None:
    return await repository.get(session, audio_id)


async def _rendered(session: AsyncSession, audio_id: uuid.UUID) -> None:
    """Make a record look rendered, as the worker leaves it (its job completed, a file)."""
    await repository.set_rendered(
        session, audio_id, asset_key=f"audio/{audio_id}.wav", duration_seconds=3.0
    )
    await session.execute(
        update(job_tables.job).where(job_tables.job.c.id == audio_id).values(status="completed")
    )


async def test_a_narration_is_queued_once_with_the_sagas_id(
    session: AsyncSession, productions: Productions
) -> None:
    project_id = await _project(session, productions)
    command = _voice(project_id, voice=VoiceChoice(language="de", gender="male"))
    await productions.on_audio_requested(session, command)
    record = await _record(session, command.audio_id)
    assert record is not None
    assert (record["job_id"], record["owner_id"], record["project_id"]) == (
        command.audio_id,
        OWNER,
        project_id,
    )
    assert (record["type"], record["status"], record["format"]) == ("voice", "pending", "wav")
    profile = record["profile"]
    assert (profile["language"], profile["gender"], profile["type"], profile["speed"]) == (
        "de-DE",
        "male",
        "raw",
        1.0,
    )
    job = await jobs_repository.get(session, job_tables, command.audio_id)
    assert job is not None
    assert (job["kind"], job["owner_id"]) == ("generate", OWNER)
    assert job["params"]["text"] == "Il était une fois un phare."
    assert job["params"]["records"] == [{"id": str(command.audio_id), "name": None}]
    # Redelivered, or re-issued by the saga: nothing more.
    await productions.on_audio_requested(session, command)
    await productions.on_audio_requested(session, _reissued(command))
    rows = await session.execute(select(audio.c.id).where(audio.c.project_id == project_id))
    assert rows.scalars().all() == [command.audio_id]
    outbox = await _outbox(session)
    assert [subject for subject, _ in outbox] == ["audio.requested"]
    assert outbox[0][1]["id"] == str(command.audio_id)
    assert outbox[0][1]["owner_id"] == str(OWNER)


async def test_a_narration_defaults_to_a_french_narrator(
    session: AsyncSession, productions: Productions
) -> None:
    project_id = await _project(session, productions)
    command = _voice(project_id)
    await productions.on_audio_requested(session, command)
    record = await _record(session, command.audio_id)
    assert record is not None
    assert (record["profile"]["language"], record["profile"]["gender"]) == ("fr-FR", "narrator")


@pytest.mark.parametrize(
    ("music", "seconds", "expected"),
    [
        (MusicChoice(genre="Comédie", intensity="critique"), 45.0, ("comedy", "high", 45.0)),
        (MusicChoice(genre="polka", intensity="deafening"), 2000.0, ("drama", "medium", 600.0)),
        (MusicChoice(genre="science-fiction", intensity="basse"), 0.2, ("sci-fi", "low", 1.0)),
        (None, None, ("drama", "medium", 30.0)),
    ],
)
async def test_music_labels_fall_back_and_its_length_is_clamped(
    session: AsyncSession,
    productions: Productions,
    music: MusicChoice | None,
    seconds: float | None,
    expected: tuple[str, str, float],
) -> None:
    project_id = await _project(session, productions)
    command = _music(project_id, music=music, duration_seconds=seconds)
    await productions.on_audio_requested(session, command)
    record = await _record(session, command.audio_id)
    assert record is not None
    assert record["type"] == "music"
    job = await jobs_repository.get(session, job_tables, command.audio_id)
    assert job is not None
    assert (
        record["profile"]["genre"],
        record["profile"]["intensity"],
        job["params"]["duration_seconds"],
    ) == expected
    assert [subject for subject, _ in await _outbox(session)] == ["audio.requested"]


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        ({"text": None}, "a voice needs its text"),
        ({"text": "x" * 5001}, "at most 5000 characters"),
        ({"voice": VoiceChoice(language="xx-YY")}, "No voice speaks 'xx-YY'"),
    ],
)
async def test_a_narration_that_cannot_be_made_fails_and_creates_nothing(
    session: AsyncSession, productions: Productions, extra: dict[str, Any], error: str
) -> None:
    project_id = await _project(session, productions)
    command = _voice(project_id, **extra)
    await productions.on_audio_requested(session, command)
    assert await _record(session, command.audio_id) is None
    assert await jobs_repository.get(session, job_tables, command.audio_id) is None
    [(subject, data)] = await _outbox(session)
    assert subject == "audio.failed"
    assert data["id"] == data["job_id"] == str(command.audio_id)
    assert data["project_id"] == str(project_id)
    assert error in data["error"]


async def test_another_owners_project_fails_and_an_unknown_one_is_trusted(
    session: AsyncSession, productions: Productions
) -> None:
    project_id = await _project(session, productions)
    foreign = _voice(project_id, owner_id=STRANGER)
    await productions.on_audio_requested(session, foreign)
    assert await _record(session, foreign.audio_id) is None
    [(subject, data)] = await _outbox(session)
    assert (subject, data["job_id"]) == ("audio.failed", str(foreign.audio_id))
    assert "not the owner's" in data["error"]
    # A project the replica has not heard of yet: the command's pair is the projects service's.
    fresh = _voice(uuid.uuid4())
    await productions.on_audio_requested(session, fresh)
    assert await _record(session, fresh.audio_id) is not None


async def test_a_mix_of_the_owners_rendered_tracks_ducks_the_music_under_the_narration(
    session: AsyncSession, productions: Productions
) -> None:
    project_id = await _project(session, productions)
    voice, music = _voice(project_id), _music(project_id, duration_seconds=42.0)
    for command in (voice, music):
        await productions.on_audio_requested(session, command)
        await _rendered(session, command.audio_id)
    mix = _mix(
        project_id,
        [
            MixTrack(
                audio_id=music.audio_id, category="music", start_time_seconds=0.0, volume=0.25
            ),
            MixTrack(
                audio_id=voice.audio_id,
                category="dialogue",
                volume=2.0,
                start_time_seconds=2.5,
                trim_end_seconds=8.0,
            ),
        ],
    )
    await productions.on_mix_requested(session, mix)
    record = await _record(session, mix.audio_id)
    assert record is not None
    assert (record["type"], record["job_id"], record["owner_id"]) == ("mix", mix.audio_id, OWNER)
    assert (record["sample_rate"], record["channels"], record["format"]) == (48000, 2, "wav")
    job = await jobs_repository.get(session, job_tables, mix.audio_id)
    assert job is not None
    assert job["kind"] == "mix"
    profile = job["params"]["profile"]
    assert profile["master"] == {
        "sample_rate": 48000,
        "channels": 2,
        "duration_seconds": 42.0,
        "normalize_lufs": -16.0,
        "limiter_dbfs": -1.0,
        "ducking": True,
    }
    bed, narration = profile["tracks"]
    assert bed["audio_id"] == str(music.audio_id)
    assert (bed["ducked"], bed["key"], bed["start_time_seconds"]) == (True, False, 0.0)
    assert (bed["trim_end_seconds"], bed["fade_out_seconds"]) == (None, 0.0)
    assert narration["audio_id"] == str(voice.audio_id)
    assert (narration["key"], narration["ducked"]) == (True, False)
    assert (narration["start_time_seconds"], narration["trim_end_seconds"]) == (2.5, 8.0)
    assert narration["fade_out_seconds"] == 0.3
    assert narration["asset_key"] == f"audio/{voice.audio_id}.wav"
    assert [(t["volume"], t["pan"]) for t in (bed, narration)] == [(0.25, 0.0), (2.0, 0.0)]
    await productions.on_mix_requested(session, mix)
    await productions.on_mix_requested(session, _reissued(mix))
    mixes = await session.execute(select(audio.c.id).where(audio.c.type == "mix"))
    assert mixes.scalars().all() == [mix.audio_id]
    subjects = [subject for subject, _ in await _outbox(session)]
    assert subjects == ["audio.requested"] * 3


async def test_a_mix_of_a_foreign_or_unrendered_track_fails_naming_it(
    session: AsyncSession, productions: Productions
) -> None:
    project_id = await _project(session, productions)
    other_project = await _project(session, productions)
    mine, pending, elsewhere = _voice(project_id), _voice(project_id), _voice(other_project)
    theirs = _voice(project_id, owner_id=STRANGER)
    # The stranger's record, made as the API would (the replica check is the saga's, not here).
    await productions.audio.queue_generate(
        session,
        principal=Principal(user_id=STRANGER),
        project_id=project_id,
        record_id=theirs.audio_id,
        data=GenerateRequest(project_id=project_id, audio_type="voice", text="Hello."),
    )
    for command in (mine, pending, elsewhere):
        await productions.on_audio_requested(session, command)
    for audio_id in (mine.audio_id, theirs.audio_id, elsewhere.audio_id):
        await _rendered(session, audio_id)
    before = len(await _outbox(session))

    def track(audio_id: uuid.UUID) -> MixTrack:
        return MixTrack(audio_id=audio_id, category="dialogue", start_time_seconds=0.0)

    for bad, reason in (
        (theirs.audio_id, "No audio"),
        (elsewhere.audio_id, "No audio"),
        (uuid.uuid4(), "No audio"),
        (pending.audio_id, "is pending"),
    ):
        mix = _mix(project_id, [track(mine.audio_id), track(bad)])
        await productions.on_mix_requested(session, mix)
        assert await _record(session, mix.audio_id) is None
        assert await jobs_repository.get(session, job_tables, mix.audio_id) is None
        subject, data = (await _outbox(session))[-1]
        assert (subject, data["job_id"]) == ("audio.failed", str(mix.audio_id))
        assert str(bad) in data["error"]
        assert reason in data["error"]
    too_long = _mix(project_id, [track(mine.audio_id)], seconds=3601.0)
    await productions.on_mix_requested(session, too_long)
    assert await _record(session, too_long.audio_id) is None
    assert [subject for subject, _ in (await _outbox(session))[before:]] == ["audio.failed"] * 5
    # A production may mix a single narration (the API asks for two tracks at least).
    alone = _mix(project_id, [track(mine.audio_id)])
    await productions.on_mix_requested(session, alone)
    assert await _record(session, alone.audio_id) is not None
    assert (await _outbox(session))[-1][0] == "audio.requested"


async def test_cancel_stops_the_owners_active_jobs_only(
    session: AsyncSession, productions: Productions
) -> None:
    project_id = await _project(session, productions)
    active, finished = _voice(project_id), _music(project_id)
    for command in (active, finished):
        await productions.on_audio_requested(session, command)
    await _rendered(session, finished.audio_id)
    theirs = uuid.uuid4()
    await productions.audio.queue_generate(
        session,
        principal=Principal(user_id=STRANGER),
        project_id=project_id,
        record_id=theirs,
        data=GenerateRequest(project_id=project_id, audio_type="voice", text="Hello."),
    )
    before = len(await _outbox(session))
    cancel = ProductionCancelled(
        id=uuid.uuid4(),
        production_id=PRODUCTION,
        project_id=project_id,
        owner_id=OWNER,
        jobs=[active.audio_id, finished.audio_id, theirs, uuid.uuid4(), active.audio_id],
    )
    await productions.on_cancelled(session, cancel)
    statuses = {}
    for job_id in (active.audio_id, finished.audio_id, theirs):
        job = await jobs_repository.get(session, job_tables, job_id)
        assert job is not None
        statuses[job_id] = job["status"]
    assert statuses == {
        active.audio_id: "cancelled",
        finished.audio_id: "completed",
        theirs: "pending",
    }
    events = (await _outbox(session))[before:]
    assert [(subject, data["job_id"]) for subject, data in events] == [
        ("audio.cancelled", str(active.audio_id))
    ]
    # Delivered again: everything named has finished, nothing more happens.
    await productions.on_cancelled(session, cancel)
    assert len(await _outbox(session)) == before + 1
