"""Image backends. ``builtin`` draws a storyboard card with Pillow (deterministic for the same
input); ``comfyui`` drives a real ComfyUI over its HTTP API. Neither falls back to the other."""

from __future__ import annotations

import asyncio
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
import httpx
from PIL import Image, ImageDraw, ImageFont

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


def _fill(node: Any, values: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        return {k: _fill(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [_fill(v, values) for v in node]
    if isinstance(node, str) and node.startswith("{{") and node.endswith("}}"):
        return values.get(node[2:-2], node)
    return node


class ComfyUIBackend:
    """POST /prompt with an API-format workflow, poll /history/{id}, fetch /view."""

    name = "comfyui"

    def __init__(self, url: str, workflow_file: Path | None, timeout: float) -> None:
        self.url = url.rstrip("/")
        self.template: dict[str, Any] = json.loads((workflow_file or DEFAULT_WORKFLOW).read_text())
        self.timeout = timeout

    async def render(self, frame: Frame) -> bytes:
        workflow = _fill(
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
        deadline = time.monotonic() + self.timeout
        try:
            async with httpx.AsyncClient(base_url=self.url, timeout=10) as client:
                answer = await client.post(
                    "/prompt", json={"prompt": workflow, "client_id": "storycore"}
                )
                if answer.status_code != 200:
                    raise JobFailure(f"ComfyUI rejected the workflow: {self._reason(answer)}")
                prompt_id = answer.json()["prompt_id"]
                image = await self._wait_for_image(client, prompt_id, deadline)
                view = await client.get("/view", params=image)
        except httpx.TimeoutException as exc:
            raise JobFailure(f"ComfyUI at {self.url} timed out") from exc
        except httpx.HTTPError as exc:
            raise JobFailure(f"ComfyUI is unreachable at {self.url}") from exc
        except (KeyError, ValueError) as exc:
            raise JobFailure(f"ComfyUI gave an answer it should not: {exc!r}") from exc
        if view.status_code != 200 or not view.content.startswith(PNG_SIGNATURE):
            raise JobFailure(f"ComfyUI /view gave no PNG (HTTP {view.status_code})")
        return view.content

    async def _wait_for_image(
        self, client: httpx.AsyncClient, prompt_id: str, deadline: float
    ) -> dict[str, str]:
        delay = 0.1
        while time.monotonic() < deadline:
            history = (await client.get(f"/history/{prompt_id}")).json()
            entry = history.get(prompt_id)
            if entry:
                status = entry.get("status", {})
                if status.get("status_str") == "error":
                    raise JobFailure(f"ComfyUI failed the prompt: {status.get('messages')}")
                for output in entry.get("outputs", {}).values():
                    for image in output.get("images", []):
                        return {
                            "filename": image["filename"],
                            "subfolder": image.get("subfolder", ""),
                            "type": image.get("type", "output"),
                        }
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
        raise JobFailure(f"ComfyUI did not finish within {self.timeout:g} s")

    @staticmethod
    def _reason(answer: httpx.Response) -> str:
        try:
            body = answer.json()
            error = body.get("error", {})
            nodes = "; ".join(
                f"node {n}: {', '.join(e.get('message', '') for e in v.get('errors', []))}"
                for n, v in (body.get("node_errors") or {}).items()
            )
            return f"{error.get('message', answer.status_code)}" + (f" ({nodes})" if nodes else "")
        except ValueError:
            return f"HTTP {answer.status_code}"
