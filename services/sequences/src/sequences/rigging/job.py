"""The rig job, run by the sequences worker's rigging runner (see ``sequences.worker``).

Steps: find the keypoints (the client's, or a detector's on the sheet image; detected ones are
kept in the job's checkpoint, so a redelivered job does not detect again), build the skeleton
and its ``.glb`` (in a thread), store the file as an asset with the rig's row, then complete
with ``rig.created`` in the same commit as the job's completion.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from sequences.rigging import repository
from sequences.rigging.detectors import Detection, Detector, PoseError, SheetImage, read_image
from sequences.rigging.gltf import build_glb
from sequences.rigging.service import GLB_TYPE, rig_key, rig_url
from sequences.rigging.skeleton import (
    DegenerateKeypoints,
    MissingKeypoints,
    Skeleton,
    Vec,
    as_vec,
    build_skeleton,
    resolve,
)
from storycore_shared.assets import AssetNotFound, Assets, one_chunk
from storycore_shared.events.contracts.sequences import RigCreated
from storycore_shared.jobs.runner import JobContext, JobFailure


def build(points: dict[str, Vec], height_metres: float) -> tuple[Skeleton, bytes]:
    """The skeleton and its ``.glb`` (blocking: run it in a thread)."""
    skeleton = build_skeleton(resolve(points), height_metres=height_metres)
    return skeleton, build_glb(skeleton)


class Rigging:
    """What the rigging runner needs: the asset store and the configured detector, if any."""

    def __init__(self, assets: Assets, detector: Detector | None) -> None:
        self.assets = assets
        self.detector = detector

    async def run(self, ctx: JobContext) -> None:
        job = ctx.job
        rig_id: uuid.UUID = ctx.job_id
        sheet: dict[str, Any] = job["params"]["sheet"]
        height = float(job["params"]["height_metres"])
        async with ctx.transaction() as session:
            row = await repository.get(session, rig_id)
        if row is None:
            raise JobFailure("the rig was deleted before it was built")
        described: dict[str, Any]
        if "keypoints" in sheet:
            points = {name: as_vec(p) for name, p in sheet["keypoints"].items()}
            described = {"source": "client", "layout": "named"}
        else:
            if "points" not in ctx.checkpoint:  # resumed: the detection survives the crash
                await ctx.step(progress=10, current_step="detecting the pose")
                detector, image, detection = await self._detect(ctx, sheet["asset_key"])
                await ctx.step(
                    progress=50,
                    current_step="pose detected",
                    checkpoint={
                        "points": {n: list(p) for n, p in detection.points.items()},
                        "detected": {
                            "source": detector,
                            "layout": detection.layout,
                            "people": detection.people,
                            "image": {"width": image.width, "height": image.height},
                        },
                    },
                )
            points = {name: as_vec(p) for name, p in ctx.checkpoint["points"].items()}
            described = dict(ctx.checkpoint["detected"])
        await ctx.step(progress=60, current_step="building the rig")
        try:
            skeleton, glb = await ctx.run_sync(build, points, height)
        except MissingKeypoints as exc:
            raise JobFailure(str(exc)) from exc
        except DegenerateKeypoints as exc:
            raise JobFailure(str(exc)) from exc
        keypoints = {**described, **skeleton.describe()}
        key = rig_key(rig_id)
        async with ctx.transaction() as session:
            # The rig's row first: a rig deleted meanwhile (or its project) gets no file.
            if await repository.get(session, rig_id, lock=True) is None:
                raise JobFailure("the rig was deleted while it was being built")
            record = await self.assets.save(
                session,
                key=key,
                chunks=one_chunk(glb),
                owner_id=job["owner_id"],
                project_id=job["project_id"],
                content_type=GLB_TYPE,
                filename=f"rig-{rig_id}.glb",
            )
            await repository.set_built(
                session,
                rig_id,
                bone_count=len(skeleton.joints),
                hash=record.sha256,
                keypoints=keypoints,
                asset_key=key,
            )
            await ctx.record(session, progress=90, current_step="stored")
        await ctx.complete(
            result={
                "rig_id": str(rig_id),
                "rig_url": rig_url(rig_id),
                "hash": record.sha256,
                "bone_count": len(skeleton.joints),
            },
            events=[
                RigCreated(
                    id=rig_id,
                    project_id=job["project_id"],
                    owner_id=job["owner_id"],
                    shot_id=row["shot_id"],
                    rig_id=rig_id,
                )
            ],
        )

    async def _detect(self, ctx: JobContext, key: str) -> tuple[str, SheetImage, Detection]:
        """The detector's name, the sheet image and what the detector found on it."""
        if self.detector is None:
            raise JobFailure("no pose detector is configured on this worker")
        async with ctx.transaction() as session:
            record = await self.assets.get(session, key)
        if record is None:
            raise JobFailure("the sheet image is gone (deleted with its project?)")
        try:
            data = b"".join([chunk async for chunk in self.assets.store.read(key)])
        except AssetNotFound as exc:
            raise JobFailure("the sheet image is gone (deleted with its project?)") from exc
        try:
            stem = f"storycore-sheet-{hashlib.sha256(data).hexdigest()[:16]}"
            image = await ctx.run_sync(read_image, data, stem)
            return self.detector.name, image, await self.detector.detect(image)
        except PoseError as exc:
            raise JobFailure(f"pose detection failed: {exc}") from exc
