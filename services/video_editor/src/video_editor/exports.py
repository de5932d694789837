"""Exports: a job on the shared runner (``video.export.requested``) whose params are a snapshot of
the timeline as it was asked for (every clip with its medium's stored file), rendered by the
export workers (``python -m video_editor.worker``)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import Request, Response
from sqlalchemy import RowMapping, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from storycore_shared.assets import Assets
from storycore_shared.assets.http import asset_response
from storycore_shared.auth import Principal
from storycore_shared.events.contracts.projects import ProjectDeleted
from storycore_shared.events.contracts.video import (
    ExportCancelled,
    ExportRequested,
    progress_subject,
)
from storycore_shared.jobs.repository import Job
from storycore_shared.jobs.service import Jobs
from storycore_shared.jobs.tables import COMPLETED
from storycore_shared.media import MediaSigner
from video_editor.config import Settings
from video_editor.errors import ExportNotFound, ExportNotReady, InvalidEdit
from video_editor.models import event_tables, export, job_tables, media
from video_editor.render.presets import PRESETS
from video_editor.schemas import ExportPublic, ExportRequest

SOURCE = "video-editor"
KIND = "export"
EXTENSIONS = {"mp4": "mp4", "webm": "webm", "gif": "gif"}
CONTENT_TYPES = {"mp4": "video/mp4", "webm": "video/webm", "gif": "image/gif"}


def _cancelled(job: Job) -> ExportCancelled:
    return ExportCancelled(id=job["id"], project_id=job["project_id"], export_id=job["id"])


def make_jobs(settings: Settings) -> Jobs:
    return Jobs(
        job_tables,
        event_tables,
        settings,
        service=SOURCE,
        progress_subject=progress_subject,
        cancelled_event=_cancelled,
    )


def export_key(export_id: uuid.UUID, fmt: str) -> str:
    return f"exports/{export_id}.{EXTENSIONS[fmt]}"


def download_url(export_id: uuid.UUID) -> str:
    return f"/api/video-editor/exports/{export_id}/download"


def _even(value: int) -> int:
    return max(2, value - value % 2)


class Exports:
    def __init__(self, settings: Settings, jobs: Jobs, assets: Assets) -> None:
        self.settings = settings
        self.jobs = jobs
        self.assets = assets
        self.signer = MediaSigner.from_settings(settings)

    async def _row(self, session: AsyncSession, export_id: uuid.UUID) -> RowMapping | None:
        job = job_tables.job
        statement = (
            select(*export.c, job.c.status, job.c.error)
            .join(job, job.c.id == export.c.id)
            .where(export.c.id == export_id)
        )
        return (await session.execute(statement)).mappings().first()

    async def owned(
        self, session: AsyncSession, principal: Principal, export_id: uuid.UUID
    ) -> RowMapping:
        row = await self._row(session, export_id)
        if row is None or row["owner_id"] != principal.user_id:
            raise ExportNotFound(f"No export {export_id}.")
        return row

    def public(self, row: RowMapping, *, principal: Principal) -> ExportPublic:
        done = row["status"] == COMPLETED and row["asset_key"] is not None
        return ExportPublic(
            id=row["id"],
            timeline_id=row["timeline_id"],
            project_id=row["project_id"],
            status=row["status"],
            preset=row["preset"],
            format=row["format"],
            quality=row["quality"],
            file_url=self.signer.sign(download_url(row["id"]), user_id=principal.user_id)
            if done
            else None,
            size=row["size"],
            duration_seconds=row["duration_seconds"],
            width=row["width"],
            height=row["height"],
            fps=row["fps"],
            video_codec=row["video_codec"],
            audio_codec=row["audio_codec"],
            job_id=row["id"],
            job_url=f"/api/video-editor/jobs/{row['id']}",
            error=row["error"],
            created_at=row["created_at"],
        )

    async def create(
        self,
        session: AsyncSession,
        *,
        principal: Principal,
        timeline: RowMapping,
        tree: dict[str, Any],
        data: ExportRequest,
        export_id: uuid.UUID | None = None,
    ) -> ExportPublic:
        """Queue an export of ``tree`` (the timeline's whole answer, as of now); its id is
        ``export_id`` when the caller chose it (a production's), else a new one."""
        size = PRESETS.get(data.preset)
        width, height = (data.width, data.height) if size is None else size
        if data.width is not None and data.height is not None:
            width, height = data.width, data.height
        if width is None or height is None:  # the request checks custom sizes
            raise InvalidEdit("The custom preset needs width and height.")
        width, height = _even(width), _even(height)
        fps = float(data.fps or timeline["fps"])
        if data.format == "gif":
            fps = min(fps, 15.0)
        media_ids = {
            c["media_id"]
            for t in tree["tracks"]
            for c in t["clips"]
            if c.get("media_id") and not c.get("missing_media")
        }
        files: dict[str, dict[str, Any]] = {}
        if media_ids:
            rows = await session.execute(
                select(media.c.id, media.c.asset_key, media.c.kind, media.c.content_type).where(
                    media.c.id.in_([uuid.UUID(str(i)) for i in media_ids])
                )
            )
            files = {
                str(r.id): {"asset_key": r.asset_key, "kind": r.kind, "type": r.content_type}
                for r in rows
            }
        if not any(t["clips"] for t in tree["tracks"]):
            raise InvalidEdit("The timeline has no clips: there is nothing to export.")
        export_id = export_id if export_id is not None else uuid.uuid4()
        params = {
            "timeline_id": str(timeline["id"]),
            "width": width,
            "height": height,
            "fps": fps,
            "format": data.format,
            "quality": data.quality,
            "fit": data.fit,
            "range": data.range.model_dump() if data.range else None,
            "tracks": tree["tracks"],
            "files": files,
        }
        await self.jobs.create(
            session,
            principal=principal,
            project_id=timeline["project_id"],
            request=ExportRequested,
            kind=KIND,
            job_id=export_id,
            params=params,
        )
        await session.execute(
            insert(export).values(
                id=export_id,
                timeline_id=timeline["id"],
                project_id=timeline["project_id"],
                owner_id=principal.user_id,
                preset=data.preset,
                format=data.format,
                quality=data.quality,
                width=width,
                height=height,
                fps=fps,
            )
        )
        return await self.get(session, principal=principal, export_id=export_id)

    async def get(
        self, session: AsyncSession, *, principal: Principal, export_id: uuid.UUID
    ) -> ExportPublic:
        return self.public(await self.owned(session, principal, export_id), principal=principal)

    async def download(
        self,
        request: Request,
        session: AsyncSession,
        *,
        principal: Principal,
        export_id: uuid.UUID,
    ) -> Response:
        row = await self.owned(session, principal, export_id)
        record = None
        if row["status"] == COMPLETED and row["asset_key"] is not None:
            record = await self.assets.get(session, row["asset_key"])
        if record is None:
            raise ExportNotReady(f"The export is {row['status']}; its file exists once completed.")
        return asset_response(
            request,
            self.assets.store,
            record,
            filename=f"export-{export_id}.{EXTENSIONS[row['format']]}",
            inline=False,
        )

    async def on_project_deleted(self, session: AsyncSession, data: ProjectDeleted) -> None:
        """The project's export records go (their files with the project's assets)."""
        await session.execute(delete(export).where(export.c.project_id == data.project_id))
