"""Audio use cases on real Postgres (each test rolled back) and a real NATS object store; the
rules of the profiles and of automix as pure functions."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from audio import profiles, repository
from audio.config import Settings
from audio.errors import AudioNotFound, AudioNotReady, ConfigurationNotFound, LanguageNotAvailable
from audio.models import assets_table, audio, event_tables, job_tables, project_replica
from audio.schemas import (
    AutomixRequest,
    ExportMixRequest,
    GenerateRequest,
    MixRequest,
    MultitrackRequest,
)
from audio.service import Audio, make_jobs
from storycore_shared.assets import Assets
from storycore_shared.auth import Principal
from storycore_shared.errors import ProjectNotFound
from storycore_shared.events.contracts.projects import ProjectDeleted
from storycore_shared.jobs import repository as jobs_repository
from storycore_shared.replicas.projects import ProjectDirectory
from storycore_testkit.assets import nats_assets
from storycore_testkit.service_db import add_project
from storycore_testkit.settings import unit_settings

OWNER = Principal(user_id=uuid.uuid4())
STRANGER = Principal(user_id=uuid.uuid4())


def _settings() -> Settings:
    return unit_settings(Settings)


@pytest.fixture
async def assets(nats_url: str, unique_name: str) -> AsyncIterator[Assets]:
    async with nats_assets(nats_url, unique_name, assets_table) as assets:
        yield assets


@pytest.fixture
def service(assets: Assets) -> Audio:
    settings = _settings()
    directory = ProjectDirectory(project_replica, settings.PROJECTS_URL)
    return Audio(directory, settings, make_jobs(settings), assets)


async def _outbox(session: AsyncSession) -> list[str]:
    rows = await session.execute(
        select(event_tables.outbox.c.subject).order_by(event_tables.outbox.c.seq)
    )
    return [r[0] for r in rows]


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _rendered(session: AsyncSession, service: Audio, audio_id: uuid.UUID) -> None:
    """Make a record look rendered, as the worker leaves it (its job completed, a file)."""
    row = await repository.get(session, audio_id)
    assert row is not None
    key = f"audio/{audio_id}.wav"
    await service.assets.save(
        session,
        key=key,
        chunks=_chunks(b"RIFF"),
        owner_id=row["owner_id"],
        project_id=row["project_id"],
        content_type="audio/wav",
    )
    await repository.set_rendered(session, audio_id, asset_key=key, duration_seconds=1.0)
    await session.execute(
        update(job_tables.job)
        .where(job_tables.job.c.id == row["job_id"])
        .values(status="completed")
    )


# -- profiles and rules (pure) ------------------------------------------------------------------


def test_tempo_follows_action_then_rhythm() -> None:
    assert profiles.music_bpm(None, None) == 120
    assert profiles.music_bpm("fight", "slow") == 145
    assert profiles.music_bpm("chase", None) == 145
    assert profiles.music_bpm("bullet_time", None) == 70
    assert profiles.music_bpm("tension", "hyper") == 85
    assert profiles.music_bpm("dialogue", "fast") == 140
    assert profiles.music_bpm(None, "hyper") == 160
    assert profiles.music_bpm("calm", "slow") == 80
    assert profiles.music_bpm("calm", None) == 110


def test_labels_accept_french_and_name_the_allowed_values() -> None:
    assert profiles.GENRES.normalise("Comédie") == "comedy"
    assert profiles.GENRES.normalise("science-fiction") == "sci-fi"
    assert profiles.INTENSITIES.normalise("Évolutive") == "evolving"
    assert profiles.MUSIC_ACTIONS.normalise("poursuite") == "chase"
    with pytest.raises(ValueError, match="allowed: adventure, drama"):
        profiles.GENRES.normalise("polka")
    with pytest.raises(ValidationError) as caught:
        GenerateRequest.model_validate(
            {"project_id": str(uuid.uuid4()), "audio_type": "music", "music": {"genre": "polka"}}
        )
    assert "sci-fi" in str(caught.value)


def test_sfx_profile_levels_and_filters() -> None:
    spec = profiles.sfx_spec(
        action="explosion", intensity="high", environment=None, muffling="subjective"
    )
    stems = {s.name: s for s in spec.stems}
    assert (stems["action"].level_db, stems["action"].high_cut_hz) == (4.0, 3000.0)
    assert stems["environment"].level_db == -12.0
    assert stems["stylized"].level_db == -6.0
    bullet = stems["bullet_time"]
    assert (bullet.level_db, bullet.high_cut_hz, bullet.time_stretch) == (-3.0, 2000.0, 2.0)
    assert bullet.pitch_semitones == -7.0
    assert all(s.band_pass_hz == 1500.0 for s in spec.stems)
    gunshot = profiles.sfx_spec(action="gunshot", intensity="low", environment=None, muffling=None)
    assert gunshot.stems[0].level_db == 3.0
    assert gunshot.stems[0].high_cut_hz is None


def _record(kind: str, **extra: Any) -> dict[str, Any]:
    return {"id": uuid.uuid4(), "type": kind, "channels": 2, "name": None, "profile": {}, **extra}


def test_automix_orders_levels_ducks_and_warns() -> None:
    voice = _record("voice", channels=1)
    music = _record("music", profile={"action": "emotional"})
    rain = _record("ambient")
    shot = _record("sfx", profile={"action": "gunshot"})
    bass = _record("stem", name="bass", channels=1, profile={"profile_type": "music"})
    configuration, warnings = profiles.automix([rain, music, shot, voice, bass])
    tracks = configuration["tracks"]
    assert [t["category"] for t in tracks] == [
        "dialogue",
        "gunshot",
        "music_emotion",
        "music_tension",
        "ambience",
    ]
    assert [t["volume_db"] for t in tracks] == [0.0, 3.0, 0.0, -3.0, -16.0]
    ducking = configuration["ducking"]
    assert ducking["enabled"] is True
    assert ducking["keys"] == [str(voice["id"])]
    assert set(ducking["ducked"]) == {str(r["id"]) for r in (music, rain, shot, bass)}
    assert (ducking["threshold_db"], ducking["ratio"]) == (-20.0, 4.0)
    assert (ducking["attack_ms"], ducking["release_ms"]) == (10.0, 50.0)
    by_id = {t["audio_id"]: t for t in tracks}
    assert {"type": "mono_below", "frequency_hz": 120.0} in by_id[str(shot["id"])]["effects"]
    assert {"type": "mono_below", "frequency_hz": 80.0} in by_id[str(bass["id"])]["effects"]
    assert warnings == [f"tracks above 0 dB: {shot['id']}"]
    assert configuration["master"]["limiter_dbfs"] == -1.0
    mono, mono_warnings = profiles.automix([_record("voice", channels=1)])
    assert mono["ducking"]["enabled"] is False
    assert "all tracks are mono" in mono_warnings


# -- use cases on Postgres ------------------------------------------------------------------


async def test_generate_queues_a_job_and_a_pending_record(
    session: AsyncSession, service: Audio
) -> None:
    project_id = await add_project(session, service.directory, OWNER.user_id)
    record = await service.generate(
        session,
        principal=OWNER,
        data=GenerateRequest.model_validate(
            {
                "project_id": str(project_id),
                "audio_type": "music",
                "seed": 5,
                "music": {"genre": "horreur", "action": "tension"},
            }
        ),
    )
    assert record.status == "pending"
    assert record.file_url is None
    assert record.job_id == record.id
    assert record.profile is not None
    assert (record.profile["genre"], record.profile["bpm"], record.profile["seed"]) == (
        "horror",
        85.0,
        5,
    )
    job = await jobs_repository.get(session, job_tables, record.id)
    assert job is not None
    assert job["kind"] == "generate"
    assert job["params"]["duration_seconds"] == 30.0
    assert await _outbox(session) == ["audio.requested"]
    with pytest.raises(AudioNotFound):
        await service.get(session, principal=STRANGER, audio_id=record.id)
    with pytest.raises(ProjectNotFound):
        await service.generate(
            session,
            principal=STRANGER,
            data=GenerateRequest.model_validate(
                {"project_id": str(project_id), "audio_type": "sfx"}
            ),
        )


async def test_a_language_without_a_voice_is_refused_naming_the_others(
    session: AsyncSession, service: Audio
) -> None:
    project_id = await add_project(session, service.directory, OWNER.user_id)
    with pytest.raises(LanguageNotAvailable) as caught:
        await service.generate(
            session,
            principal=OWNER,
            data=GenerateRequest.model_validate(
                {
                    "project_id": str(project_id),
                    "audio_type": "voice",
                    "text": "Bonjour.",
                    "voice": {"language": "xx-YY"},
                }
            ),
        )
    assert "fr-FR" in caught.value.detail
    assert await _outbox(session) == []


async def test_multitrack_records_one_stem_each_under_one_job(
    session: AsyncSession, service: Audio
) -> None:
    project_id = await add_project(session, service.directory, OWNER.user_id)
    answer = await service.multitrack(
        session,
        principal=OWNER,
        data=MultitrackRequest.model_validate(
            {"project_id": str(project_id), "profile_type": "sfx", "sfx": {"action": "impact"}}
        ),
    )
    assert [t.name for t in answer.tracks] == ["action", "environment", "stylized", "bullet_time"]
    assert {t.job_id for t in answer.tracks} == {answer.multitrack_id}
    assert {t.multitrack_id for t in answer.tracks} == {answer.multitrack_id}
    assert all(t.type == "stem" for t in answer.tracks)
    job = await jobs_repository.get(session, job_tables, answer.job_id)
    assert job is not None
    assert job["kind"] == "multitrack"


async def test_a_mix_needs_the_callers_rendered_tracks_of_its_project(
    session: AsyncSession, service: Audio
) -> None:
    project_id = await add_project(session, service.directory, OWNER.user_id)
    other_project = await add_project(session, service.directory, OWNER.user_id)
    body = {"project_id": str(project_id), "audio_type": "sfx"}
    a = await service.generate(session, principal=OWNER, data=GenerateRequest.model_validate(body))
    b = await service.generate(session, principal=OWNER, data=GenerateRequest.model_validate(body))
    mix = {
        "project_id": str(project_id),
        "tracks": [{"audio_id": str(a.id)}, {"audio_id": str(b.id)}],
    }
    with pytest.raises(AudioNotReady):
        await service.mix(session, principal=OWNER, data=MixRequest.model_validate(mix))
    await _rendered(session, service, a.id)
    await _rendered(session, service, b.id)
    with pytest.raises(AudioNotFound):
        await service.mix(
            session,
            principal=OWNER,
            data=MixRequest.model_validate({**mix, "project_id": str(other_project)}),
        )
    record = await service.mix(session, principal=OWNER, data=MixRequest.model_validate(mix))
    assert record.type == "mix"
    assert record.channels == 2
    job = await jobs_repository.get(session, job_tables, record.id)
    assert job is not None
    tracks = job["params"]["profile"]["tracks"]
    assert [t["asset_key"] for t in tracks] == [f"audio/{a.id}.wav", f"audio/{b.id}.wav"]
    # Neither is dialogue: nothing ducks.
    assert not any(t["ducked"] or t["key"] for t in tracks)
    with pytest.raises(ValidationError):
        MixRequest.model_validate({**mix, "tracks": [{"audio_id": str(a.id)}]})
    with pytest.raises(ValidationError):
        MixRequest.model_validate(
            {
                **mix,
                "tracks": [
                    {"audio_id": str(a.id), "start_time_seconds": -0.5},
                    {"audio_id": str(b.id)},
                ],
            }
        )


async def test_automix_stores_what_export_mix_renders_for_its_owner_only(
    session: AsyncSession, service: Audio
) -> None:
    project_id = await add_project(session, service.directory, OWNER.user_id)
    voice = await service.generate(
        session,
        principal=OWNER,
        data=GenerateRequest.model_validate(
            {"project_id": str(project_id), "audio_type": "voice", "text": "Hello there."}
        ),
    )
    music = await service.generate(
        session,
        principal=OWNER,
        data=GenerateRequest.model_validate({"project_id": str(project_id), "audio_type": "music"}),
    )
    for record in (voice, music):
        await _rendered(session, service, record.id)
    result = await service.automix(
        session,
        principal=OWNER,
        data=AutomixRequest(project_id=project_id, track_ids=[music.id, voice.id]),
    )
    configuration_id = uuid.UUID(result.configuration["id"])
    exported = await service.export_mix(
        session,
        principal=OWNER,
        data=ExportMixRequest(project_id=project_id, configuration_id=configuration_id),
    )
    job = await jobs_repository.get(session, job_tables, exported.id)
    assert job is not None
    tracks = {t["audio_id"]: t for t in job["params"]["profile"]["tracks"]}
    assert tracks[str(voice.id)]["key"] is True
    assert tracks[str(music.id)]["ducked"] is True
    assert tracks[str(music.id)]["volume_db"] == -3.0
    with pytest.raises(ProjectNotFound):
        await service.export_mix(
            session,
            principal=STRANGER,
            data=ExportMixRequest(project_id=project_id, configuration_id=configuration_id),
        )
    elsewhere = await add_project(session, service.directory, OWNER.user_id)
    with pytest.raises(ConfigurationNotFound):
        await service.export_mix(
            session,
            principal=OWNER,
            data=ExportMixRequest(project_id=elsewhere, configuration_id=configuration_id),
        )


async def test_delete_and_project_delete_remove_records_and_files(
    session: AsyncSession, service: Audio
) -> None:
    project_id = await add_project(session, service.directory, OWNER.user_id)
    body = {"project_id": str(project_id), "audio_type": "sfx"}
    one = await service.generate(
        session, principal=OWNER, data=GenerateRequest.model_validate(body)
    )
    two = await service.generate(
        session, principal=OWNER, data=GenerateRequest.model_validate(body)
    )
    await _rendered(session, service, one.id)
    await _rendered(session, service, two.id)
    with pytest.raises(AudioNotFound):
        await service.delete(session, principal=STRANGER, audio_id=one.id)
    await service.delete(session, principal=OWNER, audio_id=one.id)
    assert await service.assets.store.stat(f"audio/{one.id}.wav") is None
    assert (await _outbox(session))[-1] == "audio.deleted"
    await service.on_project_deleted(
        session, ProjectDeleted(id=project_id, project_id=project_id, owner_id=OWNER.user_id)
    )
    assert await service.assets.store.stat(f"audio/{two.id}.wav") is None
    left = await session.execute(select(audio.c.id).where(audio.c.project_id == project_id))
    assert left.all() == []
