"""The production saga on real Postgres, each test rolled back: what it records, which commands
it publishes in answer to which events, and that answers after an end change nothing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from projects import service
from projects.config import Settings
from projects.models import event_tables
from projects.production_schemas import ProductionCreate
from projects.productions import Productions, music_intensity, step_ref
from projects.schemas import ProjectCreate
from storycore_shared.auth import Principal
from storycore_shared.contracts.planning import PlannedShot
from storycore_shared.db import DriverConnection
from storycore_shared.events.contracts.audio import AudioFailed, AudioGenerated, AudioMixed
from storycore_shared.events.contracts.llm import (
    PlannedScene,
    PlannedSequence,
    ScenarioPlanFailed,
    ScenarioPlanned,
)
from storycore_shared.events.contracts.sequences import GeneratedShot, SequenceGenerated
from storycore_shared.events.contracts.video import VideoExported
from storycore_shared.jobs.errors import JobNotCancellable, JobNotFound
from storycore_shared.media import MediaSigner
from storycore_testkit.settings import unit_settings

OWNER = Principal(user_id=uuid.uuid4())
STRANGER = Principal(user_id=uuid.uuid4())
STORY = "A keeper lights the lamp. A storm comes. A ship is saved at dawn."


def _saga() -> Productions:
    settings = unit_settings(Settings)
    return Productions(settings, MediaSigner.from_settings(settings))


async def _outbox(session: AsyncSession) -> list[tuple[str, dict[str, Any]]]:
    outbox = event_tables.outbox.c
    rows = await session.execute(select(outbox.subject, outbox.payload).order_by(outbox.seq))
    return [(subject, payload["data"]) for subject, payload in rows]


async def _commands(session: AsyncSession, subject: str) -> list[dict[str, Any]]:
    return [data for s, data in await _outbox(session) if s == subject]


def _shot(seconds: float) -> PlannedShot:
    return PlannedShot(
        name="Lamp",
        prompt="a lighthouse lamp",
        shot_type="establishing",
        framing="wide",
        duration_seconds=seconds,
    )


def _plan(job_id: uuid.UUID) -> ScenarioPlanned:
    """Two sequences: the first with two scenes of 2 shots, the second with one scene."""
    return ScenarioPlanned(
        id=uuid.uuid4(),
        production_id=job_id,
        project_id=uuid.uuid4(),  # not read: the production's own project counts
        owner_id=OWNER.user_id,
        scenario_id=uuid.uuid4(),
        title="The keeper",
        genre="dramatique",
        sequences=[
            PlannedSequence(
                title="Night",
                prompt="The keeper and the storm",
                tension="moyenne",
                scenes=[
                    PlannedScene(
                        scene_id="s1", narration="A keeper.", shots=[_shot(2), _shot(2.5)]
                    ),
                    PlannedScene(scene_id="s2", narration="A storm.", shots=[_shot(3), _shot(3)]),
                ],
            ),
            PlannedSequence(
                title="Dawn",
                prompt="The ship is saved",
                tension="critique",
                scenes=[
                    PlannedScene(scene_id="s3", narration="Saved.", shots=[_shot(4), _shot(4)])
                ],
            ),
        ],
    )


async def _start(
    session: AsyncSession, saga: Productions, **fields: Any
) -> tuple[uuid.UUID, uuid.UUID]:
    project = await service.create_project(
        await DriverConnection.of(session), principal=OWNER, data=ProjectCreate(name="Lighthouse")
    )
    data = ProductionCreate.model_validate({"story": STORY, "shots_per_scene": 2, **fields})
    job = await saga.start(session, principal=OWNER, project_id=project.id, data=data)
    return job["id"], project.id


async def _steps(session: AsyncSession, saga: Productions, job_id: uuid.UUID) -> dict[str, str]:
    return {r["key"]: r["status"] for r in await saga._steps(session, job_id)}


def _generated(ref: uuid.UUID, durations: list[float]) -> SequenceGenerated:
    return SequenceGenerated(
        id=ref,
        project_id=uuid.uuid4(),
        job_id=ref,
        owner_id=OWNER.user_id,
        image_backend="builtin",
        shots=[
            GeneratedShot(
                id=uuid.uuid5(ref, str(i)),
                order_index=i,
                name="s",
                prompt="p",
                shot_type="establishing",
                framing="wide",
                duration_seconds=d,
                keyframe_url=f"/api/sequences/{ref}/keyframes/{i}",
            )
            for i, d in enumerate(durations)
        ],
    )


def _audio(ref: uuid.UUID, seconds: float = 3.0) -> AudioGenerated:
    return AudioGenerated(
        id=uuid.uuid4(),
        project_id=uuid.uuid4(),
        owner_id=OWNER.user_id,
        audio_id=ref,
        type="voice",
        duration_seconds=seconds,
        job_id=ref,
    )


async def test_a_production_starts_with_its_scenario_command(session: AsyncSession) -> None:
    saga = _saga()
    job_id, project_id = await _start(session, saga)
    [command] = await _commands(session, "production.scenario.requested")
    assert command["production_id"] == str(job_id)
    assert command["owner_id"] == str(OWNER.user_id)
    assert command["project_id"] == str(project_id)
    assert command["story"] == STORY
    assert command["scenario_id"] == str(step_ref(job_id, "scenario"))
    assert command["shots_per_scene"] == 2
    public = await saga.public(
        session, await saga.owned(session, OWNER, project_id, job_id), viewer=OWNER.user_id
    )
    assert (public.status, public.current_step) == ("processing", "scenario")
    assert [(s.key, s.status) for s in public.steps] == [("scenario", "requested")]
    assert public.request["width"] == 1920


async def test_the_plan_starts_storyboards_narration_and_music_once(session: AsyncSession) -> None:
    saga = _saga()
    job_id, _ = await _start(session, saga)
    await saga.on_scenario_planned(session, _plan(job_id))
    await saga.on_scenario_planned(session, _plan(job_id))  # a second answer changes nothing
    boards = await _commands(session, "production.storyboard.requested")
    assert [len(b["shots"]) for b in boards] == [4, 2]
    assert [b["job_id"] for b in boards] == [
        str(step_ref(job_id, f"storyboard:{i}")) for i in (0, 1)
    ]
    sounds = await _commands(session, "production.audio.requested")
    voices = [s for s in sounds if s["audio_type"] == "voice"]
    [music] = [s for s in sounds if s["audio_type"] == "music"]
    assert [v["text"] for v in voices] == ["A keeper.", "A storm.", "Saved."]
    # 4.5 + 6 + 8 s of film: the bed lasts the whole film, rounded up to a second.
    assert music["duration_seconds"] == 19
    assert music["music"] == {"genre": "dramatique", "intensity": "evolving"}
    steps = await _steps(session, saga, job_id)
    assert steps["scenario"] == "completed"
    assert {k for k, v in steps.items() if v == "requested"} == {
        "storyboard:0",
        "storyboard:1",
        "narration:0",
        "narration:1",
        "narration:2",
        "music",
    }


async def test_answers_lead_to_the_mix_the_film_and_a_complete_result(
    session: AsyncSession,
) -> None:
    saga = _saga()
    job_id, project_id = await _start(session, saga, preset="custom", width=320, height=180, fps=12)
    await saga.on_scenario_planned(session, _plan(job_id))
    for key in ("narration:0", "narration:1", "narration:2", "music"):
        await saga.on_audio_made(session, _audio(step_ref(job_id, key)))
    [mix] = await _commands(session, "production.mix.requested")
    # The narrations sit at their scenes' starts and are cut at their scenes' ends.
    placed = [
        (t["category"], t["start_time_seconds"], t["trim_end_seconds"], t["volume"])
        for t in mix["tracks"]
    ]
    assert placed == [  # the bed well under the narration
        ("music", 0.0, None, 0.25),
        ("dialogue", 0.0, 4.5, 2.0),
        ("dialogue", 4.5, 6.0, 2.0),
        ("dialogue", 10.5, 8.0, 2.0),
    ]
    assert mix["duration_seconds"] == 18.5
    await saga.on_audio_made(
        session,
        AudioMixed(
            id=uuid.uuid4(),
            project_id=project_id,
            owner_id=OWNER.user_id,
            audio_id=step_ref(job_id, "mix"),
            type="mix",
            duration_seconds=18.5,
            job_id=step_ref(job_id, "mix"),
        ),
    )
    assert await _commands(session, "production.film.requested") == []  # storyboards first
    await saga.on_sequence_generated(
        session, _generated(step_ref(job_id, "storyboard:0"), [2, 2.5, 3, 3])
    )
    await saga.on_sequence_generated(session, _generated(step_ref(job_id, "storyboard:1"), [4, 4]))
    [film] = await _commands(session, "production.film.requested")
    assert film["audio_id"] == str(step_ref(job_id, "mix"))
    assert [len(b["shots"]) for b in film["storyboards"]] == [4, 2]
    assert (film["preset"], film["width"], film["height"], film["fps"]) == ("custom", 320, 180, 12)
    export_id = step_ref(job_id, "film")
    assert film["export_id"] == str(export_id)
    await saga.on_video_exported(
        session,
        VideoExported(
            id=export_id,
            project_id=project_id,
            owner_id=OWNER.user_id,
            timeline_id=uuid.UUID(film["timeline_id"]),
            export_id=export_id,
            duration_seconds=18.5,
        ),
    )
    public = await saga.public(
        session, await saga.owned(session, OWNER, project_id, job_id), viewer=OWNER.user_id
    )
    assert (public.status, public.progress) == ("completed", 100)
    assert public.result is not None
    assert public.result["export_id"] == str(export_id)
    assert len(public.result["shot_ids"]) == 6
    assert public.result["audio"]["mix_id"] == str(step_ref(job_id, "mix"))
    assert public.result["film_url"].startswith(f"/api/video-editor/exports/{export_id}/download?")
    assert all(s.status == "completed" for s in public.steps)


async def test_without_narration_the_music_goes_straight_to_the_film(session: AsyncSession) -> None:
    saga = _saga()
    job_id, _ = await _start(session, saga, narration=False)
    await saga.on_scenario_planned(session, _plan(job_id))
    assert [s["audio_type"] for s in await _commands(session, "production.audio.requested")] == [
        "music"
    ]
    await saga.on_audio_made(session, _audio(step_ref(job_id, "music")))
    await saga.on_sequence_generated(
        session, _generated(step_ref(job_id, "storyboard:0"), [2, 2.5, 3, 3])
    )
    await saga.on_sequence_generated(session, _generated(step_ref(job_id, "storyboard:1"), [4, 4]))
    assert await _commands(session, "production.mix.requested") == []
    [film] = await _commands(session, "production.film.requested")
    assert film["audio_id"] == str(step_ref(job_id, "music"))


async def test_a_failed_step_fails_the_production_and_stops_the_others(
    session: AsyncSession,
) -> None:
    saga = _saga()
    job_id, project_id = await _start(session, saga)
    await saga.on_scenario_planned(session, _plan(job_id))
    ref = step_ref(job_id, "narration:1")
    await saga.on_audio_failed(
        session, AudioFailed(id=ref, project_id=project_id, job_id=ref, error="no such voice")
    )
    public = await saga.public(
        session, await saga.owned(session, OWNER, project_id, job_id), viewer=OWNER.user_id
    )
    assert (public.status, public.failed_step) == ("failed", "narration:1")
    assert public.error == "narration:1: no such voice"
    [cancelled] = await _commands(session, "production.cancelled")
    in_flight = {
        str(step_ref(job_id, k))
        for k in ("storyboard:0", "storyboard:1", "narration:0", "narration:2", "music")
    }
    assert set(cancelled["jobs"]) == in_flight
    # A late answer changes nothing: no mix, no film, the failure stands.
    for key in ("narration:0", "narration:2", "music"):
        await saga.on_audio_made(session, _audio(step_ref(job_id, key)))
    assert await _commands(session, "production.mix.requested") == []
    assert (await _steps(session, saga, job_id))["music"] == "cancelled"


async def test_the_scenario_failing_names_its_reason(session: AsyncSession) -> None:
    saga = _saga()
    job_id, project_id = await _start(session, saga)
    await saga.on_scenario_plan_failed(
        session,
        ScenarioPlanFailed(
            id=uuid.uuid4(),
            production_id=job_id,
            project_id=project_id,
            owner_id=OWNER.user_id,
            error="no scenario for this user",
        ),
    )
    job = await saga.owned(session, OWNER, project_id, job_id)
    assert (job["status"], job["error"]) == ("failed", "scenario: no scenario for this user")
    assert await _commands(session, "production.cancelled") == []  # nothing was in flight


async def test_cancel_stops_the_steps_in_flight_and_ignores_later_answers(
    session: AsyncSession,
) -> None:
    saga = _saga()
    job_id, _ = await _start(session, saga)
    await saga.on_scenario_planned(session, _plan(job_id))
    await saga.on_audio_made(session, _audio(step_ref(job_id, "music")))
    job = await saga.jobs.cancel(session, principal=OWNER, job_id=job_id)
    assert job["status"] == "cancelled"
    [cancelled] = await _commands(session, "production.cancelled")
    assert str(step_ref(job_id, "music")) not in cancelled["jobs"]  # finished before the cancel
    assert len(cancelled["jobs"]) == 5
    for key in ("narration:0", "narration:1", "narration:2"):
        await saga.on_audio_made(session, _audio(step_ref(job_id, key)))
    assert await _commands(session, "production.mix.requested") == []
    with pytest.raises(JobNotCancellable):
        await saga.jobs.cancel(session, principal=OWNER, job_id=job_id)


async def test_another_user_and_another_project_see_no_production(session: AsyncSession) -> None:
    saga = _saga()
    job_id, project_id = await _start(session, saga)
    with pytest.raises(JobNotFound):
        await saga.owned(session, STRANGER, project_id, job_id)
    with pytest.raises(JobNotFound):
        await saga.owned(session, OWNER, uuid.uuid4(), job_id)
    with pytest.raises(JobNotFound):
        await saga.jobs.cancel(session, principal=STRANGER, job_id=job_id)


async def test_answers_for_jobs_no_production_asked_for_change_nothing(
    session: AsyncSession,
) -> None:
    saga = _saga()
    await saga.on_audio_made(session, _audio(uuid.uuid4()))
    other = uuid.uuid4()
    await saga.on_sequence_generated(session, _generated(other, [2]))
    assert await _outbox(session) == []


async def test_deleting_the_project_deletes_its_productions(session: AsyncSession) -> None:
    saga = _saga()
    job_id, project_id = await _start(session, saga)
    await service.delete_project(
        session, principal=OWNER, project_id=project_id, expected_version=None
    )
    with pytest.raises(JobNotFound):
        await saga.owned(session, OWNER, project_id, job_id)
    assert await saga._steps(session, job_id) == []


def test_the_request_needs_one_source_and_a_size_for_custom() -> None:
    with pytest.raises(ValidationError):
        ProductionCreate.model_validate({})
    with pytest.raises(ValidationError):
        ProductionCreate.model_validate({"story": STORY, "scenario_id": str(uuid.uuid4())})
    with pytest.raises(ValidationError):
        ProductionCreate.model_validate({"story": STORY, "preset": "custom", "width": 320})
    with pytest.raises(ValidationError):
        ProductionCreate.model_validate({"story": STORY, "width": 320, "height": 180})
    with pytest.raises(ValidationError):
        ProductionCreate.model_validate({"story": STORY, "shots_per_scene": 9})
    assert ProductionCreate.model_validate({"story": STORY, "preset": "twitter"}).size() == (
        1280,
        720,
    )


def test_music_intensity_follows_the_tension() -> None:
    assert music_intensity(["basse"]) == "low"
    assert music_intensity(["moyenne", "basse"]) == "medium"
    assert music_intensity(["elevee", "critique"]) == "high"
    assert music_intensity(["basse", "critique"]) == "evolving"
    assert music_intensity([]) == "medium"


async def test_a_step_unanswered_too_long_fails_its_production(session: AsyncSession) -> None:
    saga = _saga()
    job_id, project_id = await _start(session, saga)
    await saga.on_scenario_planned(session, _plan(job_id))
    for key in ("narration:0", "narration:1", "narration:2", "music"):
        await saga.on_audio_made(session, _audio(step_ref(job_id, key)))
    before = datetime.now(UTC)
    # Nothing is older than the start of the test: nothing fails.
    assert await saga.expire(session, older_than=before - timedelta(hours=1)) == []
    # The storyboards never answered (a dead-lettered command): the production fails, once.
    assert await saga.expire(session, older_than=before + timedelta(seconds=1)) == [job_id]
    assert await saga.expire(session, older_than=before + timedelta(seconds=1)) == []
    public = await saga.public(
        session, await saga.owned(session, OWNER, project_id, job_id), viewer=OWNER.user_id
    )
    assert (public.status, public.failed_step) == ("failed", "storyboard:0")
    assert public.error is not None
    assert public.error.startswith("storyboard:0: no answer after")
    [cancelled] = await _commands(session, "production.cancelled")  # the others in flight
    assert set(cancelled["jobs"]) == {str(step_ref(job_id, k)) for k in ("storyboard:1", "mix")}


def test_a_narration_language_is_one_a_voice_speaks() -> None:
    def language(value: str) -> str:
        data = ProductionCreate.model_validate({"story": STORY, "voice": {"language": value}})
        assert data.voice is not None
        return data.voice.language

    assert language("en-US") == "en-US"
    assert language("fr") == "fr-FR"  # a bare language with one regional voice
    assert language("PT_br") == "pt-BR"
    for unknown in ("xx-ZZ", "en", "tlh"):  # nobody speaks it, or ambiguous
        with pytest.raises(ValidationError) as raised:
            language(unknown)
        assert "en-GB" in str(raised.value)
