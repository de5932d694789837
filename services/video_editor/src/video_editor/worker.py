"""The export worker: ``python -m video_editor.worker``. Scale it by running more of them.

It runs on the shared job runner: every worker binds the durable consumer ``video-editor-worker``
on ``video.export.requested``; claims, progress, cancel, crash recovery and drain are the
runner's. An export fetches its media into a private temporary directory, renders there (in a
thread that checks for a cancel before every frame; progress is frames encoded / total), and
stores the file only once it is complete, with the export's record, completing the job with
``video.exported`` in the same commit. A cancel leaves no file; a worker killed mid-export
leaves nothing stored, and the next delivery renders again and completes once.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from storycore_shared.assets import AssetNotFound, Assets, asset_store, download_to, file_chunks
from storycore_shared.events.broker import Broker
from storycore_shared.events.contracts import video as video_events
from storycore_shared.events.contracts.video import (
    ExportFailed,
    ExportRequested,
    VideoExported,
    progress_subject,
)
from storycore_shared.jobs.repository import Job
from storycore_shared.jobs.runner import JobContext, JobFailure, JobSpec, healthcheck, serve_worker
from video_editor.config import Settings
from video_editor.exports import CONTENT_TYPES, EXTENSIONS, download_url, export_key
from video_editor.models import SCHEMA, assets_table, event_tables, export, job_tables
from video_editor.render.encode import render
from video_editor.render.spec import (
    KenBurns,
    Rect,
    RenderClip,
    RenderSpec,
    RenderTrack,
    TextStyle,
    Transition,
)

CONSUMER = "video-editor-worker"
CHUNK = 256 * 1024
PROGRESS_STEP = 2  # percent between recorded steps


def _rect(data: dict[str, Any]) -> Rect:
    return Rect(float(data["x"]), float(data["y"]), float(data["w"]), float(data["h"]))


def render_tracks(
    tracks: list[dict[str, Any]], files: dict[str, dict[str, Any]], paths: dict[str, Path]
) -> list[RenderTrack]:
    """The renderer's tracks from a timeline snapshot: ``files`` says each medium's kind,
    ``paths`` where it was fetched. A clip whose medium is missing is left out (a gap, as the
    timeline shows it)."""
    built: list[RenderTrack] = []
    for track in tracks:
        clips: list[RenderClip] = []
        for c in track["clips"]:
            media_id = str(c["media_id"]) if c.get("media_id") else None
            path = paths.get(media_id) if media_id else None
            if media_id is None and c.get("text") is not None:
                kind = "text"
            elif path is None or media_id is None:
                continue
            else:
                kind = "audio" if track["kind"] == "audio" else files[media_id]["kind"]
            transition = c.get("transition_in")
            ken_burns = c.get("ken_burns")
            clips.append(
                RenderClip(
                    kind=kind,
                    start=float(c["start"]),
                    duration=float(c["out_point"]) - float(c["in_point"]),
                    path=path,
                    in_point=float(c["in_point"]),
                    text=c.get("text"),
                    style=TextStyle(),
                    transition_in=Transition(transition["type"], float(transition["duration"]))
                    if transition
                    else None,
                    ken_burns=KenBurns(_rect(ken_burns["from_rect"]), _rect(ken_burns["to_rect"]))
                    if ken_burns
                    else None,
                    opacity=float(c.get("opacity", 1.0)),
                    volume=float(c.get("volume", 1.0)),
                    fade_in=float(c.get("fade_in", 0.0)),
                    fade_out=float(c.get("fade_out", 0.0)),
                )
            )
        built.append(
            RenderTrack(
                kind=track["kind"],
                order=int(track["order"]),
                clips=tuple(clips),
                muted=bool(track.get("muted", False)),
                volume=float(track.get("volume", 1.0)),
            )
        )
    return built


class Exporting:
    """What an export worker needs besides the runner: the asset store and a working place."""

    def __init__(self, settings: Settings, assets: Assets) -> None:
        self.settings = settings
        self.assets = assets

    async def run(self, ctx: JobContext) -> None:
        job = ctx.job
        params: dict[str, Any] = job["params"]
        export_id: uuid.UUID = ctx.job_id
        fmt = params["format"]
        with tempfile.TemporaryDirectory(
            prefix="storycore-export-", dir=self.settings.WORK_DIR
        ) as tmp:
            workdir = Path(tmp)
            paths = await self._fetch(ctx, params, workdir)
            spec = RenderSpec(
                width=int(params["width"]),
                height=int(params["height"]),
                fps=float(params["fps"]),
                format=fmt,
                quality=params["quality"],
                fit=params["fit"],
                start=float(params["range"]["start"]) if params["range"] else 0.0,
                end=float(params["range"]["end"]) if params["range"] else None,
            )
            out = workdir / f"export.{EXTENSIONS[fmt]}"
            await ctx.step(progress=5, current_step="rendering")
            info = await ctx.run_sync(
                render,
                spec,
                render_tracks(params["tracks"], params["files"], paths),
                out,
                check=ctx.check,
                progress=ctx.progress_reporter(
                    start=5, end=95, current_step="rendering", every=PROGRESS_STEP
                ),
            )
            await ctx.step(progress=96, current_step="storing")
            async with ctx.transaction() as session:
                row = (
                    (await session.execute(select(export).where(export.c.id == export_id)))
                    .mappings()
                    .first()
                )
                if row is None:
                    raise JobFailure("the export was deleted while it was rendered")
                key = export_key(export_id, fmt)
                record = await self.assets.save(
                    session,
                    key=key,
                    chunks=file_chunks(out),
                    owner_id=job["owner_id"],
                    project_id=job["project_id"],
                    content_type=CONTENT_TYPES[fmt],
                    filename=f"export-{export_id}.{EXTENSIONS[fmt]}",
                )
                await session.execute(
                    update(export)
                    .where(export.c.id == export_id)
                    .values(
                        asset_key=key,
                        size=record.size_bytes,
                        duration_seconds=round(info.duration_seconds, 6),
                        width=info.width,
                        height=info.height,
                        video_codec=info.video_codec,
                        audio_codec=info.audio_codec,
                    )
                )
                await ctx.record(session, progress=99, current_step="stored")
        await ctx.complete(
            result={
                "export_id": str(export_id),
                "file_url": download_url(export_id),
                "duration_seconds": info.duration_seconds,
                "size": record.size_bytes,
            },
            events=[
                VideoExported(
                    id=export_id,
                    project_id=job["project_id"],
                    owner_id=job["owner_id"],
                    timeline_id=uuid.UUID(params["timeline_id"]),
                    export_id=export_id,
                    duration_seconds=round(info.duration_seconds, 6),
                )
            ],
        )

    async def _fetch(
        self, ctx: JobContext, params: dict[str, Any], workdir: Path
    ) -> dict[str, Path]:
        """Every medium the export uses, copied from the asset store into ``workdir``."""
        await ctx.step(progress=1, current_step="fetching media")
        paths: dict[str, Path] = {}
        for media_id, file in params["files"].items():
            path = workdir / f"media-{media_id}"
            try:
                await download_to(self.assets.store, file["asset_key"], path)
            except AssetNotFound:
                continue  # deleted meanwhile: rendered as missing media
            paths[media_id] = path
        return paths


def _failed(job: Job, error: str) -> ExportFailed:
    return ExportFailed(
        id=job["id"], project_id=job["project_id"], export_id=job["id"], error=error
    )


def job_spec(settings: Settings, assets: Assets) -> JobSpec:
    return JobSpec(
        service="video-editor",
        tables=job_tables,
        event_tables=event_tables,
        stream=video_events.STREAM,
        request=ExportRequested,
        consumer=CONSUMER,
        run=Exporting(settings, assets).run,
        progress_subject=progress_subject,
        failed_event=_failed,
        on_close=assets.store.close,
    )


def main() -> None:
    settings = Settings()  # read from the environment
    if "--healthcheck" in sys.argv:
        sys.exit(healthcheck(settings.alive_file))

    def build(broker: Broker) -> JobSpec:
        store = asset_store(settings, broker, settings.BUCKET)
        return job_spec(settings, Assets(store, assets_table))

    asyncio.run(serve_worker(build, settings, schema=SCHEMA))


if __name__ == "__main__":
    main()
