"""Pose detection behind one interface: an image sheet in, named body keypoints out.

The one image detector here is ComfyUI: the worker uploads the sheet (``POST /upload/image``),
queues the pose workflow (``sequences/workflows/pose.json``: ``LoadImage`` -> the
comfyui_controlnet_aux ``DWPreprocessor`` -> ``PreviewImage``) and reads the pose node's
``openpose_json`` from the prompt's history. That is OpenPose's JSON format, a list with one
document per image::

    [{"people": [{"pose_keypoints_2d": [x0, y0, c0, x1, y1, c1, ...], ...}],
      "canvas_width": 768, "canvas_height": 1024}]

``pose_keypoints_2d`` holds 18 points (OpenPose's COCO order, which DWPose and OpenPose
preprocessors give), 25 (OpenPose BODY_25) or 17 (plain COCO); a point with confidence 0 was not
found. Coordinates are either normalised to 0..1 (controlnet_aux writes them so) or pixels of
the canvas (OpenPose itself): both become pixels of the sheet.

MediaPipe's pose landmarker is not offered: its wheel ships no pose model, and the landmarker
would have to download one at run time (see the README).
"""

from __future__ import annotations

import copy
import io
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from PIL import Image

from sequences.comfyui import ComfyUI, fill
from sequences.rigging.skeleton import Vec

DEFAULT_POSE_WORKFLOW = Path(__file__).parents[1] / "workflows" / "pose.json"
# A detected point below this confidence counts as not found.
MIN_CONFIDENCE = 0.1

COCO18 = (
    "nose",
    "neck",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "right_hip",
    "right_knee",
    "right_ankle",
    "left_hip",
    "left_knee",
    "left_ankle",
    "right_eye",
    "left_eye",
    "right_ear",
    "left_ear",
)
BODY25 = (
    *COCO18[:8],
    "mid_hip",
    "right_hip",
    "right_knee",
    "right_ankle",
    "left_hip",
    "left_knee",
    "left_ankle",
    "right_eye",
    "left_eye",
    "right_ear",
    "left_ear",
    "left_big_toe",
    "left_small_toe",
    "left_heel",
    "right_big_toe",
    "right_small_toe",
    "right_heel",
)
COCO17 = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
LAYOUTS = {18: ("openpose-coco18", COCO18), 25: ("openpose-body25", BODY25), 17: ("coco17", COCO17)}


class PoseError(ValueError):
    """The detector's answer holds no usable pose (no person, an unknown layout)."""


@dataclass(frozen=True)
class SheetImage:
    """An image sheet as a detector gets it."""

    data: bytes
    content_type: str
    name: str
    width: int
    height: int


@dataclass(frozen=True)
class Detection:
    """The keypoints of the most complete person found, in pixels of the sheet."""

    points: dict[str, Vec]
    layout: str
    people: int


class Detector(Protocol):
    """Finds a person's body keypoints on an image."""

    name: str

    async def detect(self, image: SheetImage) -> Detection: ...


def read_image(data: bytes, stem: str) -> SheetImage:
    """The sheet as a decodable PNG or JPEG with its size, named ``stem`` with its extension
    (blocking: run it in a thread)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            kind = image.format
            image.verify()
            width, height = image.size
    except (OSError, SyntaxError, ValueError) as exc:
        raise PoseError(f"the sheet is not a readable image: {exc}") from exc
    if kind not in ("PNG", "JPEG"):
        raise PoseError(f"the sheet is a {kind} image; PNG or JPEG is needed")
    if kind == "PNG":
        return SheetImage(data, "image/png", f"{stem}.png", width, height)
    return SheetImage(data, "image/jpeg", f"{stem}.jpg", width, height)


def parse_openpose(document: Any, *, width: int, height: int) -> Detection:
    """The most complete person of an OpenPose JSON document (or a batch: its first one)."""
    if isinstance(document, list):
        if not document:
            raise PoseError("the pose answer is an empty list")
        document = document[0]
    if not isinstance(document, dict):
        raise PoseError("the pose answer is not an OpenPose document")
    people = [p for p in document.get("people") or [] if isinstance(p, dict)]
    candidates = []
    for person in people:
        values = person.get("pose_keypoints_2d") or []
        if len(values) % 3 or len(values) // 3 not in LAYOUTS:
            raise PoseError(f"pose_keypoints_2d has {len(values)} values: not 17, 18 or 25 points")
        triples = [
            (float(values[i]), float(values[i + 1]), float(values[i + 2]))
            for i in range(0, len(values), 3)
        ]
        found = [t for t in triples if t[2] >= MIN_CONFIDENCE]
        candidates.append((len(found), sum(t[2] for t in found), triples))
    candidates = [c for c in candidates if c[0] > 0]
    if not candidates:
        raise PoseError("the detector found no person on the sheet")
    # The most complete person; ties go to the more confident one, then to the first.
    best = max(candidates, key=lambda c: (c[0], c[1]))[2]
    layout, names = LAYOUTS[len(best)]
    found = [t for t in best if t[2] >= MIN_CONFIDENCE]
    normalised = all(abs(x) <= 2 and abs(y) <= 2 for x, y, _ in found)
    if normalised:
        kx, ky = float(width), float(height)
    else:
        canvas_w = float(document.get("canvas_width") or width)
        canvas_h = float(document.get("canvas_height") or height)
        kx, ky = width / canvas_w, height / canvas_h
    points: dict[str, Vec] = {
        name: (x * kx, y * ky, 0.0)
        for name, (x, y, c) in zip(names, best, strict=True)
        if c >= MIN_CONFIDENCE
    }
    return Detection(points=points, layout=layout, people=len(candidates))


def _openpose_json(outputs: dict[str, Any]) -> Any | None:
    """The first node output carrying ``openpose_json`` (a list of JSON strings), decoded."""
    for node in sorted(outputs):
        value = outputs[node].get("openpose_json") if isinstance(outputs[node], dict) else None
        if value:
            text = value[0] if isinstance(value, list) else value
            return json.loads(text) if isinstance(text, str) else text
    return None


class ComfyUIPoseDetector:
    """Pose detection by a ComfyUI pose preprocessor node (see the module docstring)."""

    name = "comfyui"

    def __init__(self, url: str, workflow_file: Path | None, timeout: float) -> None:
        self.comfyui = ComfyUI(url, timeout)
        self.template: dict[str, Any] = json.loads(
            (workflow_file or DEFAULT_POSE_WORKFLOW).read_text()
        )

    async def detect(self, image: SheetImage) -> Detection:
        deadline = time.monotonic() + self.comfyui.timeout
        async with self.comfyui.client() as client:
            uploaded = await self.comfyui.upload_image(
                client, image.data, filename=image.name, content_type=image.content_type
            )
            workflow = fill(copy.deepcopy(self.template), {"image": uploaded})
            prompt_id = await self.comfyui.queue(client, workflow)
            document = await self.comfyui.outputs(
                client, prompt_id, _openpose_json, deadline=deadline
            )
        return parse_openpose(document, width=image.width, height=image.height)
