"""Keyframes are assets of the sequences service (the shared asset store), addressed by key."""

from __future__ import annotations

import uuid

from fastapi import Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from sequences.errors import KeyframeNotFound
from storycore_shared.assets import AssetRecord, Assets, one_chunk
from storycore_shared.assets.http import asset_response
from storycore_shared.events.contracts.projects import ProjectDeleted


def keyframe_key(job_id: uuid.UUID, index: int) -> str:
    return f"{job_id}-{index:03d}.png"


def keyframe_url(job_id: uuid.UUID, index: int) -> str:
    return f"/api/sequences/{job_id}/keyframes/{index}"


class Keyframes:
    """The job's keyframe PNGs: stored with their owner and project, served with ``Range``."""

    def __init__(self, assets: Assets) -> None:
        self.assets = assets

    async def stored(self, session: AsyncSession, job_id: uuid.UUID, index: int) -> bool:
        return await self.assets.get(session, keyframe_key(job_id, index)) is not None

    async def save(
        self,
        session: AsyncSession,
        *,
        job_id: uuid.UUID,
        index: int,
        png: bytes,
        owner_id: uuid.UUID,
        project_id: uuid.UUID,
    ) -> AssetRecord:
        return await self.assets.save(
            session,
            key=keyframe_key(job_id, index),
            chunks=one_chunk(png),
            owner_id=owner_id,
            project_id=project_id,
            content_type="image/png",
            filename=f"keyframe-{index:03d}.png",
        )

    async def response(
        self, request: Request, session: AsyncSession, job_id: uuid.UUID, index: int
    ) -> Response:
        record = await self.assets.get(session, keyframe_key(job_id, index))
        if record is None:
            raise KeyframeNotFound(f"Keyframe {index} of job {job_id} is not rendered (yet).")
        return asset_response(request, self.assets.store, record)

    async def on_project_deleted(self, session: AsyncSession, data: ProjectDeleted) -> None:
        """Every asset of the project goes with it: keyframes, uploaded sheets and rig files
        share the service's asset table. Its jobs stay as the record of work done."""
        await self.assets.delete_project(session, data.project_id)
