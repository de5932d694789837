"""Image backends. ``builtin`` draws a storyboard card with Pillow (deterministic for the same
input); ``comfyui`` drives a real ComfyUI over its HTTP API. Neither falls back to the other."""

from __future__ import annotations

import copy
import hashlib
import io
import json
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio.to_thread
from PIL import Image, ImageDraw, ImageFont

from sequences.comfyui import ComfyUI, fill
from storycore_shared.jobs.runner import JobFailure

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DEFAULT_WORKFLOW = Path(__file__).parent / "workflows" / "txt2img.json"


@dataclass(frozen=True)
class Frame:
    index: int
    name: str
    prompt: str
    shot_type: str
    framing: str
    width: int
    height: int
    style: str | None = None

    @property
    def seed(self) -> int:
        material = f"{self.prompt}|{self.framing}|{self.index}"
        return int(hashlib.sha256(material.encode()).hexdigest()[:8], 16)


def _draw_card(frame: Frame) -> bytes:
    digest = hashlib.sha256(frame.prompt.encode()).digest()
    background = (30 + digest[0] % 60, 30 + digest[1] % 60, 40 + digest[2] % 70)
    image = Image.new("RGB", (frame.width, frame.height), background)
    draw = ImageDraw.Draw(image)
    unit = max(8, min(frame.width, frame.height) // 24)
    margin = unit
    draw.rectangle(
        [margin, margin, frame.width - margin, frame.height - margin],
        outline=(235, 235, 220),
        width=max(2, unit // 6),
    )
    title = ImageFont.load_default(size=unit * 2)
    body = ImageFont.load_default(size=unit)
    x, y = margin * 2, margin * 2
    draw.text((x, y), f"#{frame.index + 1}  {frame.name}", font=title, fill=(250, 250, 240))
    y += unit * 3
    draw.text(
        (x, y), f"{frame.framing.upper()} · {frame.shot_type}", font=body, fill=(250, 210, 120)
    )
    y += int(unit * 1.8)
    chars = max(20, int((frame.width - 4 * margin) / (unit * 0.55)))
    for line in textwrap.wrap(frame.prompt, chars)[: max(1, (frame.height - y) // unit - 3)]:
        draw.text((x, y), line, font=body, fill=(225, 225, 225))
        y += int(unit * 1.3)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


class BuiltinBackend:
    name = "builtin"

    async def render(self, frame: Frame) -> bytes:
        # Pillow is blocking CPU work: off the event loop.
        return await anyio.to_thread.run_sync(_draw_card, frame)


class ComfyUIBackend:
    """POST /prompt with an API-format workflow, poll /history/{id}, fetch /view."""

    name = "comfyui"

    def __init__(self, url: str, workflow_file: Path | None, timeout: float) -> None:
        self.comfyui = ComfyUI(url, timeout)
        self.template: dict[str, Any] = json.loads((workflow_file or DEFAULT_WORKFLOW).read_text())

    async def render(self, frame: Frame) -> bytes:
        workflow = fill(
            copy.deepcopy(self.template),
            {
                "prompt": f"{frame.prompt}, {frame.framing} shot"
                + (f", {frame.style}" if frame.style else ""),
                "negative": "blurry, text, watermark",
                "width": frame.width,
                "height": frame.height,
                "seed": frame.seed,
            },
        )
        deadline = time.monotonic() + self.comfyui.timeout
        async with self.comfyui.client() as client:
            prompt_id = await self.comfyui.queue(client, workflow)
            image = await self.comfyui.outputs(client, prompt_id, _first_image, deadline=deadline)
            view = await client.get("/view", params=image)
        if view.status_code != 200 or not view.content.startswith(PNG_SIGNATURE):
            raise JobFailure(f"ComfyUI /view gave no PNG (HTTP {view.status_code})")
        return view.content


def _first_image(outputs: dict[str, Any]) -> dict[str, str] | None:
    for output in outputs.values():
        for image in output.get("images", []):
            return {
                "filename": image["filename"],
                "subfolder": image.get("subfolder", ""),
                "type": image.get("type", "output"),
            }
    return None
