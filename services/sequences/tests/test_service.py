"""Sequences use cases and its project replica on real Postgres, each test rolled back."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sequences.config import Settings
from sequences.errors import KeyframeNotFound, ResultNotReady
from sequences.models import event_tables, job_tables, project_replica
from sequences.schemas import GenerateRequest
from sequences.service import Sequences, make_jobs
from storycore_shared.auth import Principal
from storycore_shared.errors import ProjectNotFound, ProjectReadOnly, ServiceUnavailable
from storycore_shared.events.contracts.projects import ProjectCreated, ProjectDeleted
from storycore_shared.jobs import repository as jobs_repository
from storycore_shared.jobs.errors import InvalidTicket, JobNotCancellable, JobNotFound
from storycore_shared.replicas.projects import ProjectDirectory
from storycore_testkit.service_db import add_project
from storycore_testkit.settings import unit_settings

OWNER = Principal(user_id=uuid.uuid4())
STRANGER = Principal(user_id=uuid.uuid4())


def _settings(**overrides: Any) -> Settings:
    return unit_settings(Settings, **overrides)


@pytest.fixture
def sequences() -> Sequences:
    settings = _settings()
    # The projects URL is unreachable: a replica miss would answer 503, so every test feeds the
    # replica through its event handlers first, as the consumer does.
    return Sequences(
        ProjectDirectory(project_replica, settings.PROJECTS_URL), settings, make_jobs(settings)
    )


async def _project(
    session: AsyncSession, sequences: Sequences, *, public: bool = False
) -> uuid.UUID:
    return await add_project(
        session,
        sequences.directory,
        OWNER.user_id,
        public=public,
        resolution_width=640,
        resolution_height=360,
    )


async def _no_cascade(*_: object) -> None:
    return None


def _request(project_id: uuid.UUID, **extra: Any) -> GenerateRequest:
    return GenerateRequest(project_id=project_id, prompt="A keeper climbs the stairs.", **extra)


async def _outbox_types(session: AsyncSession) -> list[str]:
    rows = await session.execute(
        select(event_tables.outbox.c.subject).order_by(event_tables.outbox.c.seq)
    )
    return [r[0] for r in rows]


async def test_generate_records_a_pending_job_its_first_event_and_the_command(
    session: AsyncSession, sequences: Sequences
) -> None:
    project_id = await _project(session, sequences)
    job = await sequences.generate(
        session, principal=OWNER, data=_request(project_id, shot_count=3)
    )
    assert job["status"] == "pending"
    assert job["owner_id"] == OWNER.user_id
    assert (job["width"], job["height"]) == (640, 360)  # the project's resolution
    assert job["image_backend"] == "builtin"
    events = await jobs_repository.events_after(session, job_tables, job["id"], 0)
    assert [(e["seq"], e["status"]) for e in events] == [(1, "pending")]
    assert await _outbox_types(session) == ["sequence.requested"]


async def test_generate_refuses_other_users_projects(
    session: AsyncSession, sequences: Sequences
) -> None:
    private = await _project(session, sequences)
    public = await _project(session, sequences, public=True)
    with pytest.raises(ProjectNotFound):
        await sequences.generate(session, principal=STRANGER, data=_request(private))
    with pytest.raises(ProjectReadOnly):
        await sequences.generate(session, principal=STRANGER, data=_request(public))
    # An unknown project, and no token to ask the projects service with: not found.
    with pytest.raises(ProjectNotFound):
        await sequences.generate(session, principal=OWNER, data=_request(uuid.uuid4()))
    assert await _outbox_types(session) == []


async def test_comfyui_without_a_url_is_an_honest_503(
    session: AsyncSession, sequences: Sequences
) -> None:
    project_id = await _project(session, sequences)
    with pytest.raises(ServiceUnavailable):
        await sequences.generate(
            session,
            principal=OWNER,
            data=_request(project_id, settings={"image_backend": "comfyui"}),
        )


async def test_cancel_stands_once_and_emits_one_event(
    session: AsyncSession, sequences: Sequences
) -> None:
    project_id = await _project(session, sequences)
    job = await sequences.generate(session, principal=OWNER, data=_request(project_id))
    with pytest.raises(JobNotFound):
        await sequences.jobs.cancel(session, principal=STRANGER, job_id=job["id"])
    cancelled = await sequences.jobs.cancel(session, principal=OWNER, job_id=job["id"])
    assert cancelled["status"] == "cancelled"
    with pytest.raises(JobNotCancellable):
        await sequences.jobs.cancel(session, principal=OWNER, job_id=job["id"])
    assert await _outbox_types(session) == ["sequence.requested", "sequence.cancelled"]
    with pytest.raises(ResultNotReady):
        await sequences.result(session, principal=OWNER, job_id=job["id"])


async def test_a_stream_ticket_is_reusable_for_its_own_job_until_it_expires(
    session: AsyncSession, sequences: Sequences
) -> None:
    project_id = await _project(session, sequences)
    first = await sequences.generate(session, principal=OWNER, data=_request(project_id))
    second = await sequences.generate(session, principal=OWNER, data=_request(project_id))
    ticket = await sequences.jobs.issue_ticket(session, principal=OWNER, job_id=first["id"])
    with pytest.raises(InvalidTicket):
        await sequences.jobs.spend_ticket(session, second["id"], ticket)
    # An EventSource reconnects with the same URL: the ticket works again while it lives.
    for _ in range(3):
        used = await sequences.jobs.spend_ticket(session, first["id"], ticket)
        assert used.user_id == OWNER.user_id
    with pytest.raises(InvalidTicket):
        await sequences.jobs.spend_ticket(session, first["id"], "not-a-ticket")
    stream_ticket = sequences.jobs.tables.stream_ticket
    await session.execute(
        update(stream_ticket)
        .where(stream_ticket.c.job_id == first["id"])
        .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    )
    with pytest.raises(InvalidTicket):
        await sequences.jobs.spend_ticket(session, first["id"], ticket)
    assert InvalidTicket.status == 401


async def test_keyframe_indexes_outside_the_job_are_404(
    session: AsyncSession, sequences: Sequences
) -> None:
    project_id = await _project(session, sequences)
    job = await sequences.generate(
        session, principal=OWNER, data=_request(project_id, shot_count=2)
    )
    for index in (-1, 2):
        with pytest.raises(KeyframeNotFound):
            await sequences.keyframe_job(session, principal=OWNER, job_id=job["id"], index=index)
    with pytest.raises(JobNotFound):
        await sequences.keyframe_job(session, principal=STRANGER, job_id=job["id"], index=0)


async def test_a_deleted_project_stays_deleted_whatever_arrives_late(
    session: AsyncSession, sequences: Sequences
) -> None:
    project_id = await _project(session, sequences)
    handlers = sequences.directory.handlers(_no_cascade)
    await handlers[ProjectDeleted](
        session, ProjectDeleted(id=project_id, project_id=project_id, owner_id=OWNER.user_id)
    )
    stale = ProjectCreated(
        id=project_id,
        project_id=project_id,
        owner_id=STRANGER.user_id,
        name="resurrected",
        is_public=True,
        status="draft",
        version=99,
    )
    await handlers[ProjectCreated](session, stale)
    with pytest.raises(ProjectNotFound):
        await sequences.generate(session, principal=OWNER, data=_request(project_id))
    assert await sequences.directory.get(session, project_id) is None
