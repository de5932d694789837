"""ComfyUI's HTTP API as the sequences worker drives it: upload an input image
(``POST /upload/image``), queue an API-format workflow (``POST /prompt``) and wait for its
history entry (``GET /history/{prompt_id}``), whose ``outputs`` carry each node's results.

Every failure is a :class:`JobFailure` with ComfyUI's own reason: unreachable, timed out, the
workflow rejected (with its node errors), the prompt failed, or an answer it should not give.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import httpx

from storycore_shared import outbound
from storycore_shared.jobs.runner import JobFailure

T = TypeVar("T")
CLIENT_ID = "storycore"


def fill(node: Any, values: dict[str, Any]) -> Any:
    """The workflow with every ``"{{name}}"`` string replaced by ``values[name]``."""
    if isinstance(node, dict):
        return {k: fill(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [fill(v, values) for v in node]
    if isinstance(node, str) and node.startswith("{{") and node.endswith("}}"):
        return values.get(node[2:-2], node)
    return node


def reason(answer: httpx.Response) -> str:
    """ComfyUI's reason for refusing a request: its error message and each node's errors."""
    try:
        body = answer.json()
        error = body.get("error", {})
        nodes = "; ".join(
            f"node {n}: {', '.join(e.get('message', '') for e in v.get('errors', []))}"
            for n, v in (body.get("node_errors") or {}).items()
        )
        return f"{error.get('message', answer.status_code)}" + (f" ({nodes})" if nodes else "")
    except (ValueError, AttributeError):
        return f"HTTP {answer.status_code}"


class ComfyUI:
    """One configured ComfyUI server."""

    def __init__(self, url: str, timeout: float) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    @contextlib.asynccontextmanager
    async def client(self) -> AsyncIterator[httpx.AsyncClient]:
        """An HTTP client for one job's calls; transport trouble becomes a JobFailure."""
        try:
            async with outbound.client(base_url=self.url, timeout=10) as client:
                yield client
        except httpx.TimeoutException as exc:
            raise JobFailure(f"ComfyUI at {self.url} timed out") from exc
        except httpx.HTTPError as exc:
            raise JobFailure(f"ComfyUI is unreachable at {self.url}") from exc
        except (KeyError, ValueError, TypeError) as exc:
            raise JobFailure(f"ComfyUI gave an answer it should not: {exc!r}") from exc

    async def upload_image(
        self, client: httpx.AsyncClient, data: bytes, *, filename: str, content_type: str
    ) -> str:
        """Put ``data`` in ComfyUI's input folder; the name a ``LoadImage`` node takes."""
        answer = await client.post(
            "/upload/image",
            files={"image": (filename, data, content_type)},
            data={"type": "input", "overwrite": "true"},
        )
        if answer.status_code != 200:
            raise JobFailure(f"ComfyUI refused the image upload: {reason(answer)}")
        body = answer.json()
        name = str(body["name"])
        subfolder = str(body.get("subfolder") or "")
        return f"{subfolder}/{name}" if subfolder else name

    async def queue(self, client: httpx.AsyncClient, workflow: dict[str, Any]) -> str:
        """Queue an API-format workflow; its prompt id."""
        answer = await client.post("/prompt", json={"prompt": workflow, "client_id": CLIENT_ID})
        if answer.status_code != 200:
            raise JobFailure(f"ComfyUI rejected the workflow: {reason(answer)}")
        return str(answer.json()["prompt_id"])

    async def outputs(
        self,
        client: httpx.AsyncClient,
        prompt_id: str,
        found: Callable[[dict[str, Any]], T | None],
        *,
        deadline: float,
    ) -> T:
        """Poll the prompt's history until ``found(outputs)`` answers something (``outputs`` is
        node id -> that node's results); fail when the prompt failed or the deadline passed."""
        delay = 0.1
        while time.monotonic() < deadline:
            history = (await client.get(f"/history/{prompt_id}")).json()
            entry = history.get(prompt_id)
            if entry:
                status = entry.get("status", {})
                if status.get("status_str") == "error":
                    raise JobFailure(f"ComfyUI failed the prompt: {status.get('messages')}")
                result = found(entry.get("outputs", {}))
                if result is not None:
                    return result
                if status.get("completed"):
                    raise JobFailure("ComfyUI finished the prompt without the expected output")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
        raise JobFailure(f"ComfyUI did not finish within {self.timeout:g} s")
