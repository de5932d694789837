"""The saga's commands to sequences (``sequences-productions``) on real Postgres, each test
rolled back: a storyboard job with the saga's id and its plan, once; ``sequence.failed`` for
what can never succeed; the production's cancel."""

from __future__ import annotations

import uuid
from typing import Any, cast

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sequences.config import Settings
from sequences.keyframes import Keyframes
from sequences.models import assets_table, event_tables, job_tables, project_replica
from sequences.productions import Productions
from sequences.schemas import GenerateRequest
from sequences.service import Sequences, make_jobs
from sequences.worker import Generation
from storycore_shared.assets import Assets, NatsAssetStore
from storycore_shared.auth import Principal
from storycore_shared.contracts.planning import PlannedShot
from storycore_shared.events.broker import Broker
from storycore_shared.events.contracts.productions import ProductionCancelled, StoryboardRequested
from storycore_shared.events.contracts.projects import ProjectDeleted
from storycore_shared.jobs import repository as jobs_repository
from storycore_shared.jobs.runner import JobContext
from storycore_shared.replicas.projects import ProjectDirectory
from storycore_testkit.service_db import add_project
from storycore_testkit.settings import unit_settings

OWNER = uuid.uuid4()
STRANGER = uuid.uuid4()
PRODUCTION = uuid.uuid4()
SHOTS = [
    PlannedShot(
        name="The lighthouse",
        prompt="A lighthouse on a cliff at dusk, waves below",
        shot_type="establishing",
        framing="extreme-wide",
        duration_seconds=4.0,
    ),
    PlannedShot(
        name="The keeper",
        prompt="The keeper climbs the spiral stairs, lamp in hand",
        shot_type="action",
        framing="medium",
        duration_seconds=3.5,
    ),
]


def _settings(**overrides: Any) -> Settings:
    return unit_settings(Settings, **overrides)


def _productions(**overrides: Any) -> Productions:
    settings = _settings(**overrides)
    directory = ProjectDirectory(project_replica, settings.PROJECTS_URL)
    return Productions(Sequences(directory, settings, make_jobs(settings)))


@pytest.fixture
def productions() -> Productions:
    return _productions()


def _storyboard(
    project_id: uuid.UUID, owner_id: uuid.UUID = OWNER, **extra: Any
) -> StoryboardRequested:
    values: dict[str, Any] = {
        "title": "The lighthouse",
        "prompt": "A keeper and his lighthouse, one stormy night",
        "shots": SHOTS,
        "width": 640,
        "height": 360,
        "style": "watercolour",
        **extra,
    }
    return StoryboardRequested(
        id=uuid.uuid4(),
        production_id=PRODUCTION,
        project_id=project_id,
        owner_id=owner_id,
        job_id=uuid.uuid4(),
        **values,
    )


async def _outbox(session: AsyncSession) -> list[tuple[str, dict[str, Any]]]:
    """Each outbox event: its subject and its data."""
    rows = await session.execute(
        select(event_tables.outbox.c.subject, event_tables.outbox.c.payload).order_by(
            event_tables.outbox.c.seq
        )
    )
    return [(subject, payload["data"]) for subject, payload in rows]


async def test_a_storyboard_is_queued_once_with_the_sagas_id_and_plan(
    session: AsyncSession, productions: Productions
) -> None:
    project_id = await add_project(session, productions.sequences.directory, OWNER)
    command = _storyboard(project_id)
    await productions.on_storyboard_requested(session, command)
    job = await jobs_repository.get(session, job_tables, command.job_id)
    assert job is not None
    assert (job["kind"], job["status"], job["owner_id"], job["project_id"]) == (
        "sequence",
        "pending",
        OWNER,
        project_id,
    )
    assert job["prompt"] == "A keeper and his lighthouse, one stormy night"
    assert (job["shot_count"], job["style"], job["mood"]) == (2, "watercolour", None)
    assert (job["characters"], job["settings"], job["image_backend"]) == ([], {}, "builtin")
    assert (job["width"], job["height"]) == (640, 360)
    assert job["plan"] == [shot.model_dump() for shot in SHOTS]
    # Redelivered, or re-issued by the saga (a new event, the same job id): nothing more.
    await productions.on_storyboard_requested(session, command)
    await productions.on_storyboard_requested(
        session, command.model_copy(update={"id": uuid.uuid4()})
    )
    count = await session.execute(
        select(job_tables.job.c.id).where(job_tables.job.c.project_id == project_id)
    )
    assert count.scalars().all() == [command.job_id]
    [(subject, data)] = await _outbox(session)
    assert subject == "sequence.requested"
    assert (data["id"], data["owner_id"]) == (str(command.job_id), str(OWNER))


class _NoPlanning:
    """What the worker's plan step sees of a claimed job; planning would record a step."""

    def __init__(self, job: Any) -> None:
        self.job = job

    async def step(self, **_: Any) -> None:
        raise AssertionError("the worker planned a storyboard the saga had planned")


async def test_the_worker_renders_the_commanded_shots_without_planning(
    session: AsyncSession, productions: Productions
) -> None:
    command = _storyboard(uuid.uuid4())
    await productions.on_storyboard_requested(session, command)
    job = await jobs_repository.get(session, job_tables, command.job_id)
    assert job is not None
    settings = productions.sequences.settings
    store = NatsAssetStore(Broker(settings.NATS_URL, name="sequences-productions-test"), "unused")
    generation = Generation(settings, Keyframes(Assets(store, assets_table)))
    shots = await generation._plan(cast(JobContext, _NoPlanning(job)))
    assert shots == SHOTS


async def test_the_api_still_plans_its_own_storyboards(
    session: AsyncSession, productions: Productions
) -> None:
    project_id = await add_project(session, productions.sequences.directory, OWNER)
    job = await productions.sequences.generate(
        session,
        principal=Principal(user_id=OWNER),
        data=GenerateRequest(project_id=project_id, prompt="A keeper climbs the stairs."),
    )
    assert job["plan"] is None


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        ({"width": 8000}, "the size 8000x360 is outside 16x16..7680x4320"),
        ({"height": 8}, "the size 640x8 is outside"),
        ({"style": "s" * 201}, "the style is longer than 200 characters"),
        ({"prompt": "nul \x00 inside"}, "NUL"),
    ],
)
async def test_a_storyboard_the_job_cannot_hold_fails_and_creates_nothing(
    session: AsyncSession, productions: Productions, extra: dict[str, Any], error: str
) -> None:
    command = _storyboard(uuid.uuid4(), **extra)
    await productions.on_storyboard_requested(session, command)
    assert await jobs_repository.get(session, job_tables, command.job_id) is None
    [(subject, data)] = await _outbox(session)
    assert subject == "sequence.failed"
    assert data["id"] == data["job_id"] == str(command.job_id)
    assert error in data["error"]


async def test_comfyui_without_a_url_fails_with_the_reason(session: AsyncSession) -> None:
    productions = _productions(IMAGE_BACKEND="comfyui")
    command = _storyboard(uuid.uuid4())
    await productions.on_storyboard_requested(session, command)
    assert await jobs_repository.get(session, job_tables, command.job_id) is None
    [(subject, data)] = await _outbox(session)
    assert subject == "sequence.failed"
    assert "comfyui image backend is not configured" in data["error"]
    configured = _productions(IMAGE_BACKEND="comfyui", COMFYUI_URL="http://127.0.0.1:9")
    command = _storyboard(uuid.uuid4())
    await configured.on_storyboard_requested(session, command)
    job = await jobs_repository.get(session, job_tables, command.job_id)
    assert job is not None
    assert job["image_backend"] == "comfyui"


async def test_the_replica_refuses_another_owners_or_a_deleted_project(
    session: AsyncSession, productions: Productions
) -> None:
    directory = productions.sequences.directory
    project_id = await add_project(session, directory, OWNER)
    foreign = _storyboard(project_id, owner_id=STRANGER)
    await productions.on_storyboard_requested(session, foreign)
    assert await jobs_repository.get(session, job_tables, foreign.job_id) is None
    subject, data = (await _outbox(session))[-1]
    assert (subject, data["job_id"]) == ("sequence.failed", str(foreign.job_id))
    assert data["project_id"] == str(project_id)
    assert "not the owner's" in data["error"]
    deleted = await add_project(session, directory, OWNER)
    await directory.tombstone(
        session, ProjectDeleted(id=deleted, project_id=deleted, owner_id=OWNER)
    )
    gone = _storyboard(deleted)
    await productions.on_storyboard_requested(session, gone)
    assert await jobs_repository.get(session, job_tables, gone.job_id) is None
    subject, data = (await _outbox(session))[-1]
    assert subject == "sequence.failed"
    assert "was deleted" in data["error"]


async def test_cancel_stops_the_owners_active_storyboards_only(
    session: AsyncSession, productions: Productions
) -> None:
    project_id = await add_project(session, productions.sequences.directory, OWNER)
    active, finished = _storyboard(project_id), _storyboard(project_id)
    theirs = _storyboard(uuid.uuid4(), owner_id=STRANGER)
    for command in (active, finished, theirs):
        await productions.on_storyboard_requested(session, command)
    await session.execute(
        update(job_tables.job)
        .where(job_tables.job.c.id == finished.job_id)
        .values(status="completed")
    )
    before = len(await _outbox(session))
    cancel = ProductionCancelled(
        id=uuid.uuid4(),
        production_id=PRODUCTION,
        project_id=project_id,
        owner_id=OWNER,
        jobs=[active.job_id, finished.job_id, theirs.job_id, uuid.uuid4(), active.job_id],
    )
    await productions.on_cancelled(session, cancel)
    statuses = {}
    for job_id in (active.job_id, finished.job_id, theirs.job_id):
        job = await jobs_repository.get(session, job_tables, job_id)
        assert job is not None
        statuses[job_id] = job["status"]
    assert statuses == {
        active.job_id: "cancelled",
        finished.job_id: "completed",
        theirs.job_id: "pending",
    }
    events = (await _outbox(session))[before:]
    assert [(subject, data["job_id"]) for subject, data in events] == [
        ("sequence.cancelled", str(active.job_id))
    ]
    await productions.on_cancelled(session, cancel)
    assert len(await _outbox(session)) == before + 1
