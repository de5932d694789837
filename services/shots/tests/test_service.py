"""Shots use cases on real Postgres, each test rolled back.

The project replica is fed through the service's own consumer handlers, as the consumer does;
the projects URL is unreachable and principals carry no token, so a replica miss is a 404.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from shots.errors import InvalidShotOrder, ShotNotFound
from shots.models import Shot, event_tables, project_replica
from shots.schemas import ShotCreate, ShotPublic, ShotUpdate
from shots.service import Shots, create_generated_shots, delete_project_shots
from storycore_shared.auth import Principal
from storycore_shared.db import DriverConnection
from storycore_shared.errors import ProjectNotFound, ProjectReadOnly, VersionConflict
from storycore_shared.events.contracts.projects import ProjectDeleted
from storycore_shared.events.contracts.sequences import GeneratedShot, SequenceGenerated
from storycore_shared.replicas.projects import ProjectDirectory
from storycore_testkit.service_db import add_project

OWNER = Principal(user_id=uuid.uuid4())
STRANGER = Principal(user_id=uuid.uuid4())


@pytest.fixture
def shots() -> Shots:
    return Shots(ProjectDirectory(project_replica, "http://127.0.0.1:9"))


async def _project(session: AsyncSession, shots: Shots, *, public: bool = False) -> uuid.UUID:
    return await add_project(session, shots.directory, OWNER.user_id, public=public)


async def _shot(
    session: AsyncSession, shots: Shots, project_id: uuid.UUID, **fields: Any
) -> ShotPublic:
    data = ShotCreate.model_validate(
        {"project_id": project_id, "name": "Stairs", "prompt": "A keeper climbs.", **fields}
    )
    return await shots.create_shot(await DriverConnection.of(session), principal=OWNER, data=data)


async def _outbox(session: AsyncSession) -> list[tuple[str, dict[str, Any]]]:
    rows = await session.execute(
        select(event_tables.outbox.c.subject, event_tables.outbox.c.payload).order_by(
            event_tables.outbox.c.seq
        )
    )
    return [(subject, payload["data"]) for subject, payload in rows]


async def _stored(session: AsyncSession, project_id: uuid.UUID) -> list[tuple[Any, ...]]:
    """(id, order_index, version) of the project's shots, straight from the table."""
    rows = await session.execute(
        select(Shot.id, Shot.order_index, Shot.version)
        .where(col(Shot.project_id) == project_id)
        .order_by(col(Shot.order_index), col(Shot.id))
    )
    return [tuple(row) for row in rows]


async def test_create_appends_to_the_project_and_emits_created(
    session: AsyncSession, shots: Shots
) -> None:
    project_id = await _project(session, shots)
    other_id = await _project(session, shots)
    first = await _shot(session, shots, project_id)
    second = await _shot(session, shots, project_id, name="Lamp")
    elsewhere = await _shot(session, shots, other_id)
    third = await _shot(session, shots, project_id)
    assert [first.order_index, second.order_index, third.order_index] == [0, 1, 2]
    assert elsewhere.order_index == 0
    placed = await _shot(session, shots, project_id, order_index=7)
    after = await _shot(session, shots, project_id)
    assert (placed.order_index, after.order_index) == (7, 8)
    assert (first.version, first.status, first.shot_type) == (1, "pending", "action")
    events = await _outbox(session)
    assert [s for s, _ in events] == ["shot.created"] * 6
    assert events[1][1] == {
        "id": str(second.id),
        "project_id": str(project_id),
        "order_index": 1,
        "name": "Lamp",
        "prompt": "A keeper climbs.",
        "shot_type": "action",
        "framing": None,
        "version": 1,
    }


async def test_a_legacy_shot_type_becomes_the_framing(session: AsyncSession, shots: Shots) -> None:
    project_id = await _project(session, shots)
    closeup = await _shot(session, shots, project_id, shot_type="closeup")
    assert (closeup.shot_type, closeup.framing) == ("action", "close-up")
    wide = await _shot(session, shots, project_id, shot_type="wide", framing="wide")
    assert (wide.shot_type, wide.framing) == ("action", "wide")
    spelled = await _shot(session, shots, project_id, shot_type="dialogue", framing="close_up")
    assert (spelled.shot_type, spelled.framing) == ("dialogue", "close-up")
    with pytest.raises(ValidationError, match="legacy framing"):
        ShotCreate.model_validate(
            {
                "project_id": project_id,
                "name": "n",
                "prompt": "p",
                "shot_type": "closeup",
                "framing": "wide",
            }
        )
    medium = await _shot(session, shots, project_id, shot_type="medium")
    assert (medium.shot_type, medium.framing) == ("action", "medium")
    with pytest.raises(ValidationError, match="over-the-shoulder"):
        ShotCreate.model_validate(
            {"project_id": project_id, "name": "n", "prompt": "p", "shot_type": "panorama"}
        )
    # On update the purpose stays as it was; only the framing changes.
    updated = await shots.update_shot(
        session,
        principal=OWNER,
        shot_id=spelled.id,
        data=ShotUpdate.model_validate({"shot_type": "wide"}),
        expected_version=1,
    )
    assert (updated.shot_type, updated.framing, updated.version) == ("dialogue", "wide", 2)


async def test_update_changes_what_was_sent_and_null_leaves_a_field(
    session: AsyncSession, shots: Shots
) -> None:
    project_id = await _project(session, shots)
    shot = await _shot(session, shots, project_id, description="kept", duration_seconds=4)
    before = shot.updated_at
    updated = await shots.update_shot(
        session,
        principal=OWNER,
        shot_id=shot.id,
        data=ShotUpdate.model_validate(
            {"name": "Renamed", "description": None, "camera_angle": "low", "version": 1}
        ),
        expected_version=1,
    )
    assert (updated.name, updated.description, updated.camera_angle) == (
        "Renamed",
        "kept",
        "low",
    )
    assert (updated.duration_seconds, updated.version) == (4.0, 2)
    assert updated.updated_at > before
    subject, data = (await _outbox(session))[-1]
    assert (subject, data["name"], data["version"]) == ("shot.updated", "Renamed", 2)


async def test_a_stale_version_is_a_409_and_changes_nothing(
    session: AsyncSession, shots: Shots
) -> None:
    project_id = await _project(session, shots)
    shot = await _shot(session, shots, project_id)
    await shots.update_shot(
        session,
        principal=OWNER,
        shot_id=shot.id,
        data=ShotUpdate(name="Second"),
        expected_version=1,
    )
    with pytest.raises(VersionConflict) as caught:
        await shots.update_shot(
            session,
            principal=OWNER,
            shot_id=shot.id,
            data=ShotUpdate(name="Lost"),
            expected_version=1,
        )
    assert caught.value.status == 409
    with pytest.raises(VersionConflict):
        await shots.delete_shot(session, principal=OWNER, shot_id=shot.id, expected_version=1)
    stored = await shots.get_shot(session, principal=OWNER, shot_id=shot.id)
    assert (stored.name, stored.version) == ("Second", 2)
    assert [s for s, _ in await _outbox(session)] == ["shot.created", "shot.updated"]


async def test_another_users_private_project_hides_its_shots(
    session: AsyncSession, shots: Shots
) -> None:
    project_id = await _project(session, shots)
    shot = await _shot(session, shots, project_id)
    with pytest.raises(ShotNotFound):
        await shots.get_shot(session, principal=STRANGER, shot_id=shot.id)
    with pytest.raises(ShotNotFound):
        await shots.update_shot(
            session,
            principal=STRANGER,
            shot_id=shot.id,
            data=ShotUpdate(name="Mine"),
            expected_version=None,
        )
    with pytest.raises(ShotNotFound):
        await shots.delete_shot(session, principal=STRANGER, shot_id=shot.id, expected_version=None)
    with pytest.raises(ShotNotFound):
        await shots.regenerate_shot(session, principal=STRANGER, shot_id=shot.id, prompt=None)
    with pytest.raises(ProjectNotFound):
        await shots.list_shots(
            session, principal=STRANGER, project_id=project_id, status=None, page=1, page_size=20
        )
    with pytest.raises(ProjectNotFound):
        await shots.reorder_shots(
            session, principal=STRANGER, project_id=project_id, shot_ids=[shot.id]
        )
    with pytest.raises(ProjectNotFound):
        await shots.create_shot(
            await DriverConnection.of(session),
            principal=STRANGER,
            data=ShotCreate(project_id=project_id, name="n", prompt="p"),
        )
    with pytest.raises(ShotNotFound):
        await shots.get_shot(session, principal=OWNER, shot_id=uuid.uuid4())
    stored = await shots.get_shot(session, principal=OWNER, shot_id=shot.id)
    assert (stored.name, stored.version) == ("Stairs", 1)
    assert [s for s, _ in await _outbox(session)] == ["shot.created"]


async def test_a_public_project_is_readable_by_others_but_writes_are_403(
    session: AsyncSession, shots: Shots
) -> None:
    project_id = await _project(session, shots, public=True)
    shot = await _shot(session, shots, project_id)
    assert (await shots.get_shot(session, principal=STRANGER, shot_id=shot.id)).id == shot.id
    items, total = await shots.list_shots(
        session, principal=STRANGER, project_id=project_id, status=None, page=1, page_size=20
    )
    assert (total, [s.id for s in items]) == (1, [shot.id])
    with pytest.raises(ProjectReadOnly) as caught:
        await shots.update_shot(
            session,
            principal=STRANGER,
            shot_id=shot.id,
            data=ShotUpdate(name="Mine"),
            expected_version=None,
        )
    assert caught.value.status == 403
    with pytest.raises(ProjectReadOnly):
        await shots.delete_shot(session, principal=STRANGER, shot_id=shot.id, expected_version=None)
    with pytest.raises(ProjectReadOnly):
        await shots.regenerate_shot(session, principal=STRANGER, shot_id=shot.id, prompt=None)
    with pytest.raises(ProjectReadOnly):
        await shots.reorder_shots(
            session, principal=STRANGER, project_id=project_id, shot_ids=[shot.id]
        )
    with pytest.raises(ProjectReadOnly):
        await shots.create_shot(
            await DriverConnection.of(session),
            principal=STRANGER,
            data=ShotCreate(project_id=project_id, name="n", prompt="p"),
        )
    assert await _stored(session, project_id) == [(shot.id, 0, 1)]
    assert [s for s, _ in await _outbox(session)] == ["shot.created"]


async def test_an_unknown_project_is_404_without_asking_anyone(
    session: AsyncSession, shots: Shots
) -> None:
    with pytest.raises(ProjectNotFound):
        await shots.create_shot(
            await DriverConnection.of(session),
            principal=OWNER,
            data=ShotCreate(project_id=uuid.uuid4(), name="n", prompt="p"),
        )
    assert await _outbox(session) == []


async def test_reorder_renumbers_exactly_the_projects_shots(
    session: AsyncSession, shots: Shots
) -> None:
    project_id = await _project(session, shots)
    a, b, c = [await _shot(session, shots, project_id, name=n) for n in "abc"]
    ordered = await shots.reorder_shots(
        session, principal=OWNER, project_id=project_id, shot_ids=[c.id, a.id, b.id]
    )
    assert [s.id for s in ordered] == [c.id, a.id, b.id]
    # Every shot moved, so every one gets a new version.
    assert await _stored(session, project_id) == sorted(
        [(c.id, 0, 2), (a.id, 1, 2), (b.id, 2, 2)], key=lambda r: r[1]
    )
    subject, data = (await _outbox(session))[-1]
    assert subject == "shot.reordered"
    assert data["shot_ids"] == [str(c.id), str(a.id), str(b.id)]
    # A shot that keeps its place keeps its version.
    await shots.reorder_shots(
        session, principal=OWNER, project_id=project_id, shot_ids=[c.id, b.id, a.id]
    )
    assert await _stored(session, project_id) == [(c.id, 0, 2), (b.id, 1, 3), (a.id, 2, 3)]
    items, _ = await shots.list_shots(
        session, principal=OWNER, project_id=project_id, status=None, page=1, page_size=20
    )
    assert [s.id for s in items] == [c.id, b.id, a.id]


async def test_every_bad_order_is_rejected_and_changes_nothing(
    session: AsyncSession, shots: Shots
) -> None:
    project_id = await _project(session, shots)
    other_id = await _project(session, shots)
    a, b, c = [await _shot(session, shots, project_id, name=n) for n in "abc"]
    foreign = await _shot(session, shots, other_id)
    before = await _stored(session, project_id)
    events_before = await _outbox(session)
    bad_orders = {
        "missing": [c.id, a.id],
        "duplicate": [c.id, a.id, a.id],
        "duplicate instead of one": [c.id, a.id, b.id, a.id],
        "foreign": [c.id, a.id, b.id, foreign.id],
        "foreign instead of one": [c.id, a.id, foreign.id],
        "unknown": [c.id, a.id, uuid.uuid4()],
        "empty": [],
    }
    for case, shot_ids in bad_orders.items():
        with pytest.raises(InvalidShotOrder) as caught:
            await shots.reorder_shots(
                session, principal=OWNER, project_id=project_id, shot_ids=shot_ids
            )
        assert caught.value.status == 422, case
        assert "3 shots" in caught.value.detail, case
    assert await _stored(session, project_id) == before
    assert await _stored(session, other_id) == [(foreign.id, 0, 1)]
    assert await _outbox(session) == events_before


async def test_list_is_in_order_filtered_and_paged(session: AsyncSession, shots: Shots) -> None:
    project_id = await _project(session, shots)
    created = [await _shot(session, shots, project_id, name=f"s{i}") for i in range(5)]
    await shots.update_shot(
        session,
        principal=OWNER,
        shot_id=created[3].id,
        data=ShotUpdate(status="completed"),
        expected_version=1,
    )
    items, total = await shots.list_shots(
        session, principal=OWNER, project_id=project_id, status=None, page=2, page_size=2
    )
    assert (total, [s.name for s in items]) == (5, ["s2", "s3"])
    items, total = await shots.list_shots(
        session, principal=OWNER, project_id=project_id, status="completed", page=1, page_size=20
    )
    assert (total, [s.name for s in items]) == (1, ["s3"])


async def test_delete_removes_the_shot_and_emits_deleted(
    session: AsyncSession, shots: Shots
) -> None:
    project_id = await _project(session, shots)
    shot = await _shot(session, shots, project_id)
    keep = await _shot(session, shots, project_id)
    await shots.delete_shot(session, principal=OWNER, shot_id=shot.id, expected_version=1)
    with pytest.raises(ShotNotFound):
        await shots.get_shot(session, principal=OWNER, shot_id=shot.id)
    assert await _stored(session, project_id) == [(keep.id, 1, 1)]
    subject, data = (await _outbox(session))[-1]
    assert (subject, data) == (
        "shot.deleted",
        {"id": str(shot.id), "project_id": str(project_id)},
    )


async def test_regenerate_clears_the_result_and_asks_for_a_new_keyframe(
    session: AsyncSession, shots: Shots
) -> None:
    project_id = await _project(session, shots)
    job_id = uuid.uuid4()
    shot_id = uuid.uuid5(job_id, "0")
    await create_generated_shots(
        session,
        SequenceGenerated(
            id=job_id,
            project_id=project_id,
            job_id=job_id,
            owner_id=OWNER.user_id,
            image_backend="builtin",
            shots=[
                GeneratedShot(
                    id=shot_id,
                    order_index=0,
                    name="Stairs",
                    prompt="old prompt",
                    shot_type="action",
                    framing="wide",
                    duration_seconds=3.0,
                    keyframe_url="/keyframes/0.png",
                )
            ],
        ),
    )
    generated = await shots.get_shot(session, principal=OWNER, shot_id=shot_id)
    assert (generated.status, generated.result_url) == ("completed", "/keyframes/0.png")
    regenerated = await shots.regenerate_shot(
        session, principal=OWNER, shot_id=shot_id, prompt="new prompt"
    )
    fresh = await shots.get_shot(session, principal=OWNER, shot_id=shot_id)
    assert regenerated is fresh
    assert (fresh.status, fresh.prompt, fresh.version) == ("pending", "new prompt", 2)
    assert (fresh.result_url, fresh.thumbnail_url) == (None, None)
    events = await _outbox(session)
    assert [s for s, _ in events] == [
        "shot.created",
        "shot.updated",
        "shot.regeneration_requested",
    ]
    assert events[2][1]["prompt"] == "new prompt"
    assert events[2][1]["version"] == 2
    # Without a new prompt the old one is kept.
    again = await shots.regenerate_shot(session, principal=OWNER, shot_id=shot_id, prompt=None)
    assert (again.prompt, again.version) == ("new prompt", 3)


async def test_a_deleted_project_takes_no_new_shots(session: AsyncSession, shots: Shots) -> None:
    project_id = await _project(session, shots)
    handlers = shots.directory.handlers(delete_project_shots)
    await handlers[ProjectDeleted](
        session, ProjectDeleted(id=project_id, project_id=project_id, owner_id=OWNER.user_id)
    )
    with pytest.raises(ProjectNotFound):
        await _shot(session, shots, project_id)
    assert await _outbox(session) == []
