"""The sequences worker: ``python -m sequences.worker``. Scale it by running more of them.

It runs on the shared job runner (:mod:`storycore_shared.jobs.runner`): every worker binds the
same durable consumer on ``sequence.requested``; claims, progress, cancel, crash recovery and
drain are the runner's. The job itself is three steps: plan (through the llm service's
planner; the plan is kept on the job, so a resumed job does not plan again), render one keyframe
per shot (a keyframe already stored is not rendered again), then complete with
``sequence.generated`` in the same commit.

The same process runs a second runner, on ``rig.requested`` (durable consumer
``sequences-rigging``), for character rigs (:mod:`sequences.rigging.job`).
"""

from __future__ import annotations

import asyncio
import signal
import sys
import uuid

import httpx

from sequences.config import Settings
from sequences.keyframes import Keyframes, keyframe_url
from sequences.models import SCHEMA, assets_table, event_tables, job_tables
from sequences.rendering import BuiltinBackend, ComfyUIBackend, Frame
from sequences.rigging.detectors import ComfyUIPoseDetector
from sequences.rigging.job import Rigging
from storycore_shared import outbound
from storycore_shared.assets import Assets, asset_store
from storycore_shared.contracts.planning import Plan, PlannedShot, PlanRequest
from storycore_shared.events.broker import Broker
from storycore_shared.events.contracts import sequences as sequence_events
from storycore_shared.events.contracts.sequences import (
    GeneratedShot,
    RigRequested,
    SequenceFailed,
    SequenceGenerated,
    SequenceRequested,
    progress_subject,
    rig_progress_subject,
)
from storycore_shared.jobs.repository import Job
from storycore_shared.jobs.runner import JobContext, JobFailure, JobSpec, Worker, healthcheck
from storycore_shared.logs import configure_logging

CONSUMER = "sequences-worker"
RIGGING_CONSUMER = "sequences-rigging"


class Generation:
    """What a sequences worker needs besides the runner: the planner, image backends, storage."""

    def __init__(self, settings: Settings, keyframes: Keyframes) -> None:
        self.settings = settings
        self.keyframes = keyframes
        self.builtin = BuiltinBackend()
        self.comfyui = (
            ComfyUIBackend(
                settings.COMFYUI_URL,
                settings.COMFYUI_WORKFLOW_FILE,
                settings.COMFYUI_TIMEOUT_SECONDS,
            )
            if settings.COMFYUI_URL
            else None
        )

    async def run(self, ctx: JobContext) -> None:
        shots = await self._plan(ctx)
        await self._render(ctx, shots)
        await ctx.step(progress=95, current_step="finalising")
        await self._complete(ctx, shots)

    async def _plan(self, ctx: JobContext) -> list[PlannedShot]:
        job = ctx.job
        if job["plan"] is not None:  # resumed: the plan survives the crash
            return [PlannedShot.model_validate(s) for s in job["plan"]]
        await ctx.step(progress=10, current_step="planning")
        request = PlanRequest(
            prompt=job["prompt"], shot_count=job["shot_count"], style=job["style"], mood=job["mood"]
        )
        token = self.settings.INTERNAL_TOKEN.get_secret_value()
        try:
            async with outbound.client(timeout=self.settings.PLANNER_TIMEOUT_SECONDS) as client:
                answer = await client.post(
                    f"{self.settings.LLM_URL.rstrip('/')}/internal/llm/plan",
                    json=request.model_dump(),
                    headers={"Authorization": f"Bearer {token}"},
                )
        except httpx.HTTPError as exc:
            raise JobFailure(f"the planner is unreachable: {exc!r}") from exc
        if answer.status_code != 200:
            raise JobFailure(f"the planner answered {answer.status_code}: {answer.text[:300]}")
        plan = Plan.model_validate(answer.json())
        await ctx.step(
            plan=[s.model_dump() for s in plan.shots], progress=20, current_step="planned"
        )
        return plan.shots

    async def _render(self, ctx: JobContext, shots: list[PlannedShot]) -> None:
        job = ctx.job
        backend = self.comfyui if job["image_backend"] == "comfyui" else self.builtin
        if backend is None:
            raise JobFailure("the comfyui backend is not configured on this worker")
        for index, shot in enumerate(shots):
            async with ctx.transaction() as session:
                stored = await self.keyframes.stored(session, ctx.job_id, index)
            png = None
            if not stored:  # resumed: a keyframe already stored is not rendered again
                png = await backend.render(
                    Frame(
                        index,
                        shot.name,
                        shot.prompt,
                        shot.shot_type,
                        shot.framing,
                        job["width"],
                        job["height"],
                        job["style"],
                    )
                )
            async with ctx.transaction() as session:
                if png is not None:  # the keyframe and its step commit together
                    await self.keyframes.save(
                        session,
                        job_id=ctx.job_id,
                        index=index,
                        png=png,
                        owner_id=job["owner_id"],
                        project_id=job["project_id"],
                    )
                await ctx.record(
                    session,
                    progress=20 + round(70 * (index + 1) / len(shots)),
                    current_step=f"rendering shot {index + 1}/{len(shots)}",
                )

    async def _complete(self, ctx: JobContext, shots: list[PlannedShot]) -> None:
        job = ctx.job
        generated = [
            GeneratedShot(
                id=uuid.uuid5(ctx.job_id, str(index)),
                order_index=index,
                name=shot.name,
                prompt=shot.prompt,
                shot_type=shot.shot_type,
                framing=shot.framing,
                duration_seconds=shot.duration_seconds,
                keyframe_url=keyframe_url(ctx.job_id, index),
            )
            for index, shot in enumerate(shots)
        ]
        result = {
            "id": str(ctx.job_id),
            "project_id": str(job["project_id"]),
            "name": job["prompt"][:60],
            "description": job["prompt"],
            "shots": [s.model_dump(mode="json") for s in generated],
            "total_duration": round(sum(s.duration_seconds for s in shots), 2),
            "prompt": job["prompt"],
            "style": job["style"],
            "mood": job["mood"],
            "image_backend": job["image_backend"],
            "created_at": job["created_at"].isoformat(),
        }
        await ctx.complete(
            result=result,
            events=[
                SequenceGenerated(
                    id=ctx.job_id,
                    project_id=job["project_id"],
                    job_id=ctx.job_id,
                    owner_id=job["owner_id"],
                    shots=generated,
                    image_backend=job["image_backend"],
                )
            ],
        )


def _failed(job: Job, error: str) -> SequenceFailed:
    return SequenceFailed(id=job["id"], project_id=job["project_id"], job_id=job["id"], error=error)


def job_spec(settings: Settings, keyframes: Keyframes) -> JobSpec:
    return JobSpec(
        service="sequences",
        tables=job_tables,
        event_tables=event_tables,
        stream=sequence_events.STREAM,
        request=SequenceRequested,
        consumer=CONSUMER,
        run=Generation(settings, keyframes).run,
        progress_subject=progress_subject,
        failed_event=_failed,
        on_close=keyframes.assets.store.close,
    )


def rigging_spec(settings: Settings, assets: Assets) -> JobSpec:
    detector = (
        ComfyUIPoseDetector(
            settings.COMFYUI_URL, settings.POSE_WORKFLOW_FILE, settings.COMFYUI_TIMEOUT_SECONDS
        )
        if settings.pose_detector == "comfyui" and settings.COMFYUI_URL
        else None
    )
    return JobSpec(
        service="sequences",
        tables=job_tables,
        event_tables=event_tables,
        stream=sequence_events.STREAM,
        request=RigRequested,
        consumer=RIGGING_CONSUMER,
        run=Rigging(assets, detector).run,
        progress_subject=rig_progress_subject,
        on_close=assets.store.close,
    )


def rigging_settings(settings: Settings) -> Settings:
    """The rigging runner's settings: its own alive file, so each loop's health shows."""
    alive = settings.alive_file
    return settings.model_copy(
        update={"WORKER_ALIVE_FILE": alive.with_name(f"{alive.stem}.rigging{alive.suffix}")}
    )


async def main() -> None:
    """Two runners in one process, each the kit's :class:`Worker` on its own command subject:
    ``sequence.requested`` (storyboards) and ``rig.requested`` (rigs). A rig never waits
    behind a long storyboard, each kind keeps its own failure and cancel events, and SIGTERM
    drains both."""
    settings = Settings()  # read from the environment
    configure_logging(
        f"{settings.SERVICE_NAME}-worker", level=settings.LOG_LEVEL, json_output=settings.LOG_JSON
    )

    def build_generation(broker: Broker) -> JobSpec:
        store = asset_store(settings, broker, settings.KEYFRAME_BUCKET)
        return job_spec(settings, Keyframes(Assets(store, assets_table)))

    def build_rigging(broker: Broker) -> JobSpec:
        store = asset_store(settings, broker, settings.KEYFRAME_BUCKET)
        return rigging_spec(settings, Assets(store, assets_table))

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    workers = [
        Worker(build_generation, settings, SCHEMA, stopping),
        Worker(build_rigging, rigging_settings(settings), SCHEMA, stopping),
    ]
    await asyncio.gather(*(worker.run() for worker in workers))


if __name__ == "__main__":
    if "--healthcheck" in sys.argv:
        settings = Settings()
        alive = [settings.alive_file, rigging_settings(settings).alive_file]
        sys.exit(max(healthcheck(path) for path in alive))
    asyncio.run(main())
