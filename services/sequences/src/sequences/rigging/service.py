"""API use cases of rigging: convert a sheet (queue a rig job), read, download and delete a
rig, upload a character sheet. Functions flush, never commit."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from fastapi import Request, Response
from sqlalchemy import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

from sequences.config import Settings
from sequences.errors import KeyframeNotFound
from sequences.keyframes import keyframe_key
from sequences.kinds import KindJobs
from sequences.models import event_tables, job_tables
from sequences.rigging import repository
from sequences.rigging.errors import (
    DetectorNotConfigured,
    KeypointsDegenerate,
    KeypointsMissing,
    RigNotFound,
    RigNotReady,
    SheetNotAnImage,
    SheetNotFound,
    UnsupportedSheet,
)
from sequences.rigging.schemas import (
    AssetSheet,
    KeyframeSheet,
    KeypointsSheet,
    RigCreate,
    RigPublic,
    SheetPublic,
)
from sequences.rigging.skeleton import (
    DegenerateKeypoints,
    MissingKeypoints,
    Skeleton,
    Vec,
    as_vec,
    build_skeleton,
    resolve,
)
from storycore_shared.assets import Assets
from storycore_shared.assets.http import asset_response
from storycore_shared.auth import Principal
from storycore_shared.errors import Unprocessable
from storycore_shared.events.contracts.projects import ProjectDeleted
from storycore_shared.events.contracts.sequences import RigRequested, rig_progress_subject
from storycore_shared.jobs.errors import JobNotCancellable
from storycore_shared.jobs.service import Jobs
from storycore_shared.jobs.tables import ACTIVE, COMPLETED
from storycore_shared.media import MediaSigner
from storycore_shared.replicas.projects import ProjectDirectory

KIND = "rig"
GLB_TYPE = "model/gltf-binary"
# What an image sheet may be, by the bytes it starts with.
SHEET_TYPES = {
    "image/png": (b"\x89PNG\r\n\x1a\n", "png"),
    "image/jpeg": (b"\xff\xd8\xff", "jpg"),
}


def make_rig_jobs(settings: Settings) -> KindJobs:
    signer = MediaSigner.from_settings(settings)

    def signed(result: dict[str, Any], user_id: uuid.UUID) -> dict[str, Any]:
        if "rig_url" not in result:
            return result
        return {**result, "rig_url": signer.sign_suite_url(result["rig_url"], user_id=user_id)}

    return KindJobs(
        job_tables,
        event_tables,
        settings,
        kind=KIND,
        service="sequences",
        progress_subject=rig_progress_subject,
        present_result=signed,
    )


def rig_key(rig_id: uuid.UUID) -> str:
    return f"rigs/{rig_id}.glb"


def rig_url(rig_id: uuid.UUID) -> str:
    return f"/api/rigging/{rig_id}/download"


def skeleton_of(points: dict[str, Vec], *, height_metres: float) -> Skeleton:
    """The skeleton of ``points``; 422 naming what is missing, or when they span nothing."""
    try:
        return build_skeleton(resolve(points), height_metres=height_metres)
    except MissingKeypoints as exc:
        raise KeypointsMissing(exc.names) from exc
    except DegenerateKeypoints as exc:
        raise KeypointsDegenerate(f"The keypoints cannot be scaled: {exc}.") from exc


async def _signed(chunks: AsyncIterable[bytes], signature: bytes) -> AsyncIterator[bytes]:
    """The body, refused unless it starts with ``signature`` (whatever Content-Type said)."""
    head = b""
    checked = False
    async for chunk in chunks:
        if not checked:
            head += chunk
            if len(head) < len(signature):
                continue
            if not head.startswith(signature):
                raise UnsupportedSheet("The body is not the image its Content-Type names.")
            checked, chunk = True, head
        if chunk:
            yield chunk
    if not checked:
        if head:
            raise UnsupportedSheet("The body is not the image its Content-Type names.")
        raise Unprocessable("The body is empty: send the sheet's bytes.")


class Rigs:
    def __init__(
        self,
        directory: ProjectDirectory,
        settings: Settings,
        jobs: KindJobs,
        sequence_jobs: Jobs,
        assets: Assets,
    ) -> None:
        self.directory = directory
        self.settings = settings
        self.jobs = jobs
        self.sequence_jobs = sequence_jobs
        self.assets = assets

    async def convert(
        self, session: AsyncSession, *, principal: Principal, data: RigCreate
    ) -> RigPublic:
        project = await self.directory.require(
            session, data.project_id, principal, write=True, lock=False
        )
        height = self.settings.RIG_HEIGHT_METRES
        sheet: dict[str, Any]
        if isinstance(data.sheet, KeypointsSheet):
            points: dict[str, Vec] = {n: as_vec(p) for n, p in data.sheet.keypoints.items()}
            skeleton_of(points, height_metres=height)  # refused now, not in the job
            sheet, detector = {"keypoints": {n: list(p) for n, p in points.items()}}, "client"
        else:
            if isinstance(data.sheet, KeyframeSheet):
                ref = data.sheet.keyframe
                await self.sequence_jobs.owned(session, principal, ref.sequence_job_id)
                key = keyframe_key(ref.sequence_job_id, ref.index)
                if await self.assets.get(session, key) is None:
                    raise KeyframeNotFound(
                        f"Job {ref.sequence_job_id} has no keyframe {ref.index} (yet)."
                    )
                sheet = {"keyframe": ref.model_dump(mode="json"), "asset_key": key}
            else:
                assert isinstance(data.sheet, AssetSheet)
                record = await self.assets.get(session, data.sheet.asset_id)
                if record is None or record.owner_id != principal.user_id:
                    raise SheetNotFound(f"No sheet {data.sheet.asset_id}.")
                if record.content_type not in SHEET_TYPES:
                    raise SheetNotAnImage(f"The asset is {record.content_type}.")
                sheet = {"asset_key": record.key}
            detector = self.settings.pose_detector or ""
            if not detector:
                raise DetectorNotConfigured(
                    "Image sheets need a pose detector (ComfyUI with a pose preprocessor, "
                    "SEQUENCES_COMFYUI_URL); send keypoints instead."
                )
        job = await self.jobs.create(
            session,
            principal=principal,
            project_id=project.id,
            request=RigRequested,
            kind=KIND,
            params={"sheet": sheet, "height_metres": height},
        )
        await repository.add(
            session,
            id=job["id"],
            project_id=project.id,
            owner_id=principal.user_id,
            shot_id=data.shot_id,
            sheet=sheet,
            detector=detector,
        )
        return await self.get(session, principal=principal, rig_id=job["id"])

    async def _owned(
        self, session: AsyncSession, principal: Principal, rig_id: uuid.UUID
    ) -> RowMapping:
        row = await repository.get(session, rig_id)
        if row is None or row["owner_id"] != principal.user_id:
            raise RigNotFound(f"No rig {rig_id}.")
        return row

    async def get(
        self, session: AsyncSession, *, principal: Principal, rig_id: uuid.UUID
    ) -> RigPublic:
        return self.public(await self._owned(session, principal, rig_id), principal=principal)

    def public(self, row: RowMapping, *, principal: Principal) -> RigPublic:
        """The rig as answered to ``principal``: its ``rig_url`` signed for them."""
        done = row["status"] == COMPLETED and row["asset_key"] is not None
        signer = MediaSigner.from_settings(self.settings)
        return RigPublic(
            id=row["id"],
            project_id=row["project_id"],
            shot_id=row["shot_id"],
            status=row["status"],
            bone_count=row["bone_count"],
            hash=row["hash"],
            keypoints=row["keypoints"],
            rig_url=signer.sign(rig_url(row["id"]), user_id=principal.user_id) if done else None,
            detector=row["detector"],
            error=row["error"],
            job_id=row["id"],
            job_url=f"/api/rigging/jobs/{row['id']}",
            created_at=row["created_at"],
        )

    async def download(
        self, request: Request, session: AsyncSession, *, principal: Principal, rig_id: uuid.UUID
    ) -> Response:
        row = await self._owned(session, principal, rig_id)
        record = None
        if row["status"] == COMPLETED and row["asset_key"] is not None:
            record = await self.assets.get(session, row["asset_key"])
        if record is None:
            raise RigNotReady(f"The rig is {row['status']}; its file exists once completed.")
        return asset_response(
            request, self.assets.store, record, filename=f"rig-{rig_id}.glb", inline=False
        )

    async def delete(
        self, session: AsyncSession, *, principal: Principal, rig_id: uuid.UUID
    ) -> None:
        row = await self._owned(session, principal, rig_id)
        if row["status"] in ACTIVE:
            # The cancel waits for a worker's running step (it holds the job's row), so what
            # that step stored is seen below; after it, the worker writes nothing more.
            with contextlib.suppress(JobNotCancellable):
                await self.jobs.cancel(session, principal=principal, job_id=rig_id)
            row = await self._owned(session, principal, rig_id)
        if row["asset_key"] is not None:
            await self.assets.delete(session, row["asset_key"])
        await repository.remove(session, rig_id)

    async def upload_sheet(
        self,
        session: AsyncSession,
        *,
        principal: Principal,
        project_id: uuid.UUID,
        content_type: str | None,
        chunks: AsyncIterable[bytes],
    ) -> SheetPublic:
        project = await self.directory.require(
            session, project_id, principal, write=True, lock=False
        )
        media = (content_type or "").split(";", 1)[0].strip().lower()
        if media not in SHEET_TYPES:
            raise UnsupportedSheet(
                f"Send the sheet's bytes as {' or '.join(SHEET_TYPES)} (got {media or 'none'})."
            )
        signature, extension = SHEET_TYPES[media]
        record = await self.assets.save(
            session,
            key=f"sheets/{uuid.uuid4()}.{extension}",
            chunks=_signed(chunks, signature),
            owner_id=principal.user_id,
            project_id=project.id,
            content_type=media,
            filename=f"sheet.{extension}",
            max_bytes=self.settings.SHEET_MAX_BYTES,
        )
        return SheetPublic(
            asset_id=record.key,
            project_id=project.id,
            content_type=record.content_type,
            size_bytes=record.size_bytes,
            sha256=record.sha256,
        )

    async def on_project_deleted(self, session: AsyncSession, data: ProjectDeleted) -> None:
        """The project's rigs go (their files with the project's other assets); jobs stay."""
        await repository.remove_project(session, data.project_id)
