"""Rigging use cases on real Postgres (each test rolled back) and a real NATS object store."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sequences.config import Settings
from sequences.errors import KeyframeNotFound
from sequences.keyframes import Keyframes, keyframe_key
from sequences.models import assets_table, event_tables, job_tables, project_replica, rig
from sequences.rigging.errors import (
    DetectorNotConfigured,
    KeypointsMissing,
    RigNotFound,
    RigNotReady,
    SheetNotAnImage,
    SheetNotFound,
    UnsupportedSheet,
)
from sequences.rigging.schemas import RigCreate
from sequences.rigging.service import Rigs, make_rig_jobs
from sequences.schemas import GenerateRequest
from sequences.service import Sequences, make_jobs
from storycore_shared.assets import Assets
from storycore_shared.auth import Principal
from storycore_shared.errors import PayloadTooLarge, ProjectNotFound, Unprocessable
from storycore_shared.events.contracts.projects import ProjectDeleted
from storycore_shared.jobs import repository as jobs_repository
from storycore_shared.jobs.errors import JobNotFound
from storycore_shared.replicas.projects import ProjectDirectory
from storycore_testkit.assets import nats_assets
from storycore_testkit.poses import FIGURE
from storycore_testkit.service_db import add_project
from storycore_testkit.settings import unit_settings

OWNER = Principal(user_id=uuid.uuid4())
STRANGER = Principal(user_id=uuid.uuid4())
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64  # the signature is what the upload checks
KEYPOINTS: dict[str, list[float]] = dict(FIGURE)


def _settings(**overrides: Any) -> Settings:
    return unit_settings(Settings, SHEET_MAX_BYTES=1024, **overrides)


@pytest.fixture
async def assets(nats_url: str, unique_name: str) -> AsyncIterator[Assets]:
    async with nats_assets(nats_url, unique_name, assets_table) as assets:
        yield assets


def _services(assets: Assets, **overrides: Any) -> tuple[Sequences, Rigs]:
    settings = _settings(**overrides)
    directory = ProjectDirectory(project_replica, settings.PROJECTS_URL)
    sequences = Sequences(directory, settings, make_jobs(settings))
    return sequences, Rigs(directory, settings, make_rig_jobs(settings), sequences.jobs, assets)


@pytest.fixture
def services(assets: Assets) -> tuple[Sequences, Rigs]:
    return _services(assets)


async def _project(session: AsyncSession, rigs: Rigs) -> uuid.UUID:
    return await add_project(session, rigs.directory, OWNER.user_id)


async def _outbox(session: AsyncSession) -> list[str]:
    rows = await session.execute(
        select(event_tables.outbox.c.subject).order_by(event_tables.outbox.c.seq)
    )
    return [r[0] for r in rows]


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def _convert(project_id: uuid.UUID, sheet: dict[str, Any], **extra: Any) -> RigCreate:
    return RigCreate.model_validate({"project_id": project_id, "sheet": sheet, **extra})


async def test_client_keypoints_queue_a_rig_job_of_its_own_kind(
    session: AsyncSession, services: tuple[Sequences, Rigs]
) -> None:
    sequences, rigs = services
    project_id = await _project(session, rigs)
    shot_id = uuid.uuid4()
    rig_view = await rigs.convert(
        session,
        principal=OWNER,
        data=_convert(project_id, {"keypoints": KEYPOINTS}, shot_id=shot_id),
    )
    assert rig_view.status == "pending"
    assert rig_view.detector == "client"
    assert rig_view.shot_id == shot_id
    assert rig_view.rig_url is None
    assert rig_view.job_id == rig_view.id
    job = await jobs_repository.get(session, job_tables, rig_view.id)
    assert job is not None
    assert job["kind"] == "rig"
    assert job["params"]["height_metres"] == 1.75
    assert await _outbox(session) == ["rig.requested"]
    # A rig's job is not a sequence job, nor the other way round.
    with pytest.raises(JobNotFound):
        await sequences.jobs.owned(session, OWNER, rig_view.id)
    generated = await sequences.generate(
        session,
        principal=OWNER,
        data=GenerateRequest(project_id=project_id, prompt="A keeper climbs the stairs."),
    )
    with pytest.raises(JobNotFound):
        await rigs.jobs.owned(session, OWNER, generated["id"])
    listed = await sequences.list_jobs(
        session, principal=OWNER, project_id=project_id, status=None, page=1, page_size=20
    )
    assert [j.job_id for j in listed.jobs] == [generated["id"]]


async def test_keypoints_that_cannot_make_a_skeleton_are_refused_at_once(
    session: AsyncSession, services: tuple[Sequences, Rigs]
) -> None:
    _, rigs = services
    project_id = await _project(session, rigs)
    without_hips = {k: v for k, v in KEYPOINTS.items() if not k.endswith("_hip")}
    with pytest.raises(KeypointsMissing) as refused:
        await rigs.convert(
            session, principal=OWNER, data=_convert(project_id, {"keypoints": without_hips})
        )
    assert refused.value.extra == {"missing": ["left_hip", "right_hip"]}
    assert "left_hip, right_hip" in refused.value.detail
    assert await _outbox(session) == []
    with pytest.raises(ProjectNotFound):
        await rigs.convert(
            session, principal=STRANGER, data=_convert(project_id, {"keypoints": KEYPOINTS})
        )


async def test_a_keyframe_sheet_must_be_the_callers_and_needs_a_detector(
    session: AsyncSession, assets: Assets
) -> None:
    sequences, rigs = _services(assets)
    project_id = await _project(session, rigs)
    job = await sequences.generate(
        session,
        principal=OWNER,
        data=GenerateRequest(project_id=project_id, prompt="A keeper climbs the stairs."),
    )
    sheet = {"keyframe": {"sequence_job_id": str(job["id"]), "index": 0}}
    stranger_project = await add_project(session, rigs.directory, STRANGER.user_id)
    with pytest.raises(JobNotFound):
        await rigs.convert(session, principal=STRANGER, data=_convert(stranger_project, sheet))
    with pytest.raises(KeyframeNotFound):
        await rigs.convert(session, principal=OWNER, data=_convert(project_id, sheet))
    await Keyframes(assets).save(
        session,
        job_id=job["id"],
        index=0,
        png=PNG,
        owner_id=OWNER.user_id,
        project_id=project_id,
    )
    with pytest.raises(DetectorNotConfigured):
        await rigs.convert(session, principal=OWNER, data=_convert(project_id, sheet))
    _, configured = _services(assets, COMFYUI_URL="http://127.0.0.1:9")
    rig_view = await configured.convert(session, principal=OWNER, data=_convert(project_id, sheet))
    assert rig_view.detector == "comfyui"
    row = (await session.execute(select(rig).where(rig.c.id == rig_view.id))).mappings().one()
    assert row["sheet"]["asset_key"] == keyframe_key(job["id"], 0)
    _, refusing = _services(assets, COMFYUI_URL="http://127.0.0.1:9", POSE_DETECTOR="none")
    with pytest.raises(DetectorNotConfigured):
        await refusing.convert(session, principal=OWNER, data=_convert(project_id, sheet))


async def test_uploaded_sheets_are_checked_owned_and_limited(
    session: AsyncSession, assets: Assets
) -> None:
    _, rigs = _services(assets, COMFYUI_URL="http://127.0.0.1:9")
    project_id = await _project(session, rigs)

    async def upload(content_type: str | None, *parts: bytes) -> Any:
        return await rigs.upload_sheet(
            session,
            principal=OWNER,
            project_id=project_id,
            content_type=content_type,
            chunks=_chunks(*parts),
        )

    uploaded = await upload("image/png", PNG[:3], PNG[3:])  # a signature split across chunks
    assert uploaded.asset_id.startswith("sheets/")
    assert uploaded.size_bytes == len(PNG)
    with pytest.raises(UnsupportedSheet):
        await upload("image/png", b"GIF89a" + b"\x00" * 10)
    with pytest.raises(UnsupportedSheet):
        await upload("image/gif", PNG)
    with pytest.raises(UnsupportedSheet):
        await upload(None, PNG)
    with pytest.raises(Unprocessable):
        await upload("image/png")
    with pytest.raises(PayloadTooLarge):
        await upload("image/png", PNG, b"\x00" * 2048)
    with pytest.raises(ProjectNotFound):
        await rigs.upload_sheet(
            session,
            principal=STRANGER,
            project_id=project_id,
            content_type="image/png",
            chunks=_chunks(PNG),
        )

    sheet = {"asset_id": uploaded.asset_id}
    rig_view = await rigs.convert(session, principal=OWNER, data=_convert(project_id, sheet))
    assert rig_view.detector == "comfyui"
    stranger_project = await add_project(session, rigs.directory, STRANGER.user_id)
    with pytest.raises(SheetNotFound):
        await rigs.convert(session, principal=STRANGER, data=_convert(stranger_project, sheet))
    with pytest.raises(SheetNotFound):
        await rigs.convert(
            session, principal=OWNER, data=_convert(project_id, {"asset_id": "sheets/none.png"})
        )
    await assets.save(
        session,
        key="rigs/not-an-image.glb",
        chunks=_chunks(b"glTF"),
        owner_id=OWNER.user_id,
        project_id=project_id,
        content_type="model/gltf-binary",
    )
    with pytest.raises(SheetNotAnImage):
        await rigs.convert(
            session,
            principal=OWNER,
            data=_convert(project_id, {"asset_id": "rigs/not-an-image.glb"}),
        )


async def test_a_rig_is_its_owners_and_deleting_it_stops_its_job(
    session: AsyncSession, services: tuple[Sequences, Rigs]
) -> None:
    _, rigs = services
    project_id = await _project(session, rigs)
    rig_view = await rigs.convert(
        session, principal=OWNER, data=_convert(project_id, {"keypoints": KEYPOINTS})
    )
    with pytest.raises(RigNotFound):
        await rigs.get(session, principal=STRANGER, rig_id=rig_view.id)
    with pytest.raises(RigNotFound):
        await rigs.delete(session, principal=STRANGER, rig_id=rig_view.id)
    with pytest.raises(JobNotFound):
        await rigs.jobs.owned(session, STRANGER, rig_view.id)
    with pytest.raises(RigNotReady):
        await rigs.download(None, session, principal=OWNER, rig_id=rig_view.id)  # type: ignore[arg-type]
    await rigs.delete(session, principal=OWNER, rig_id=rig_view.id)
    with pytest.raises(RigNotFound):
        await rigs.get(session, principal=OWNER, rig_id=rig_view.id)
    job = await rigs.jobs.owned(session, OWNER, rig_view.id)
    assert job["status"] == "cancelled"  # the job stays, as the record of what was asked


async def test_a_deleted_project_takes_its_rigs(
    session: AsyncSession, services: tuple[Sequences, Rigs]
) -> None:
    _, rigs = services
    project_id = await _project(session, rigs)
    other = await _project(session, rigs)
    doomed = await rigs.convert(
        session, principal=OWNER, data=_convert(project_id, {"keypoints": KEYPOINTS})
    )
    kept = await rigs.convert(
        session, principal=OWNER, data=_convert(other, {"keypoints": KEYPOINTS})
    )
    await rigs.on_project_deleted(
        session, ProjectDeleted(id=project_id, project_id=project_id, owner_id=OWNER.user_id)
    )
    with pytest.raises(RigNotFound):
        await rigs.get(session, principal=OWNER, rig_id=doomed.id)
    assert (await rigs.get(session, principal=OWNER, rig_id=kept.id)).status == "pending"
    assert (await rigs.jobs.owned(session, OWNER, doomed.id))["status"] == "pending"
