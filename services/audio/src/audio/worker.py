"""The audio worker: ``python -m audio.worker``. Scale it by running more of them.

It runs on the shared job runner (:mod:`storycore_shared.jobs.runner`): every worker binds the
durable consumer ``audio-worker`` on ``audio.requested``; claims, progress, cancel, crash
recovery and drain are the runner's. A job renders into a private temporary directory (a mix
first fetches its inputs there), in a thread that checks for a cancel between blocks; the
files are stored only once complete, each with its record, and the job completes with
``audio.generated`` or ``audio.mixed`` in the same commit. A worker killed mid-job leaves
nothing stored: the next delivery renders again (renders are deterministic for their seed).
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from pathlib import Path
from typing import Any

from audio import repository
from audio.config import Settings
from audio.models import SCHEMA, assets_table, event_tables, job_tables
from audio.rendering import render_generate, render_mix
from audio.service import CONTENT_TYPES, audio_key, download_url
from storycore_shared.assets import AssetNotFound, Assets, asset_store, download_to, file_chunks
from storycore_shared.events.broker import Broker
from storycore_shared.events.contracts import EventData
from storycore_shared.events.contracts import audio as audio_events
from storycore_shared.events.contracts.audio import (
    AudioFailed,
    AudioGenerated,
    AudioMixed,
    AudioRequested,
    progress_subject,
)
from storycore_shared.jobs.repository import Job
from storycore_shared.jobs.runner import JobContext, JobFailure, JobSpec, serve_worker

CONSUMER = "audio-worker"
CHUNK = 256 * 1024
# Progress is recorded (a job event and a stream frame) at most this often, in percent.
PROGRESS_STEP = 5


class Rendering:
    """What an audio worker needs besides the runner: the asset store and a working place."""

    def __init__(self, settings: Settings, assets: Assets) -> None:
        self.settings = settings
        self.assets = assets

    async def run(self, ctx: JobContext) -> None:
        job = ctx.job
        params: dict[str, Any] = job["params"]
        async with ctx.transaction() as session:
            rows = await repository.of_job(session, ctx.job_id)
        if not rows:
            raise JobFailure("the audio was deleted before it was rendered")
        with tempfile.TemporaryDirectory(
            prefix="storycore-audio-", dir=self.settings.WORK_DIR
        ) as tmp:
            workdir = Path(tmp)
            inputs = await self._fetch_inputs(ctx, params, workdir)
            await ctx.step(progress=10, current_step="rendering")
            progress = ctx.progress_reporter(
                start=10, end=90, current_step="rendering", every=PROGRESS_STEP
            )
            if params["type"] == "mix":
                files = await ctx.run_sync(render_mix, params, inputs, workdir, ctx.check, progress)
            else:
                files = await ctx.run_sync(render_generate, params, workdir, ctx.check, progress)
            events = await self._store(ctx, files)
        await ctx.complete(
            result={
                "audio": [
                    {
                        "id": str(e.audio_id),
                        "type": e.type,
                        "duration_seconds": e.duration_seconds,
                        "file_url": download_url(e.audio_id),
                    }
                    for e in events
                    if isinstance(e, AudioGenerated | AudioMixed)
                ]
            },
            events=events,
        )

    async def _fetch_inputs(
        self, ctx: JobContext, params: dict[str, Any], workdir: Path
    ) -> dict[str, Path]:
        """A mix's input files, copied from the asset store into ``workdir``."""
        if params["type"] != "mix":
            return {}
        await ctx.step(progress=2, current_step="fetching tracks")
        inputs: dict[str, Path] = {}
        for track in params["profile"]["tracks"]:
            path = workdir / f"input-{track['audio_id']}.{track['format']}"
            try:
                await download_to(self.assets.store, track["asset_key"], path)
            except AssetNotFound as exc:
                raise JobFailure(f"track {track['audio_id']} is gone (deleted?)") from exc
            inputs[track["audio_id"]] = path
        return inputs

    async def _store(self, ctx: JobContext, files: dict[str, tuple[Path, Any]]) -> list[EventData]:
        """Store each finished file with its record's measures; the events of completion."""
        job = ctx.job
        fmt = job["params"]["format"]
        events: list[EventData] = []
        await ctx.step(progress=92, current_step="storing")
        async with ctx.transaction() as session:
            for record_id, (path, info) in files.items():
                audio_id = uuid.UUID(record_id)
                row = await repository.get(session, audio_id, lock=True)
                if row is None:  # deleted meanwhile: nothing to store for it
                    continue
                key = audio_key(audio_id, fmt)
                record = await self.assets.save(
                    session,
                    key=key,
                    chunks=file_chunks(path),
                    owner_id=job["owner_id"],
                    project_id=job["project_id"],
                    content_type=CONTENT_TYPES[fmt],
                    filename=f"{row['type']}-{audio_id}.{fmt}",
                )
                await repository.set_rendered(
                    session,
                    audio_id,
                    asset_key=key,
                    duration_seconds=round(info.duration_seconds, 6),
                    file_size_bytes=record.size_bytes,
                    loudness_lufs=_finite(info.loudness_lufs),
                    peak_dbfs=_finite(info.peak_dbfs),
                    sample_rate=info.sample_rate,
                    channels=info.channels,
                )
                values = {
                    "id": audio_id,
                    "project_id": job["project_id"],
                    "owner_id": job["owner_id"],
                    "audio_id": audio_id,
                    "type": row["type"],
                    "duration_seconds": round(info.duration_seconds, 6),
                    "job_id": ctx.job_id,
                }
                if row["type"] == "mix":
                    events.append(AudioMixed(**values))
                else:
                    events.append(AudioGenerated(**values, multitrack_id=row["multitrack_id"]))
            if not events:
                raise JobFailure("the audio was deleted while it was being rendered")
            await ctx.record(session, progress=98, current_step="stored")
        return events


def _finite(value: float | None) -> float | None:
    """A measure as stored: silence has no loudness (-inf) and no peak level."""
    if value is None or value != value or value in (float("inf"), float("-inf")):
        return None
    return round(value, 3)


def _failed(job: Job, error: str) -> AudioFailed:
    return AudioFailed(id=job["id"], project_id=job["project_id"], job_id=job["id"], error=error)


def job_spec(settings: Settings, assets: Assets) -> JobSpec:
    return JobSpec(
        service="audio",
        tables=job_tables,
        event_tables=event_tables,
        stream=audio_events.STREAM,
        request=AudioRequested,
        consumer=CONSUMER,
        run=Rendering(settings, assets).run,
        progress_subject=progress_subject,
        failed_event=_failed,
        on_close=assets.store.close,
    )


def main() -> None:
    import sys

    from storycore_shared.jobs.runner import healthcheck

    settings = Settings()  # read from the environment
    if "--healthcheck" in sys.argv:
        sys.exit(healthcheck(settings.alive_file))

    def build(broker: Broker) -> JobSpec:
        return job_spec(
            settings, Assets(asset_store(settings, broker, settings.BUCKET), assets_table)
        )

    asyncio.run(serve_worker(build, settings, schema=SCHEMA))


if __name__ == "__main__":
    main()
