"""A fake ComfyUI for tests: a real HTTP server with ComfyUI's API.

``POST /prompt`` takes an API-format workflow and answers ``{"prompt_id", "number",
"node_errors"}``; ``GET /history/{id}`` is empty while "running" (one poll) and then lists the
outputs; ``GET /view?filename=&subfolder=&type=`` returns the PNG; ``GET /system_stats``.
A positive prompt containing ``[[comfy-error]]`` is rejected the way ComfyUI rejects an invalid
workflow (HTTP 400 with ``error`` and ``node_errors``). ``stop()``/``start()`` keep the port.
"""

from __future__ import annotations

import io
import uuid
from typing import Any

from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from storycore_testkit.http_server import BackgroundServer
from storycore_testkit.infra.processes import free_port


class FakeComfyUI:
    def __init__(self, *, port: int | None = None) -> None:
        self.port = port or free_port()
        self.prompts: dict[str, dict[str, Any]] = {}
        self.polls: dict[str, int] = {}
        self.images: dict[str, bytes] = {}
        self._server: BackgroundServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/prompt", self._prompt, methods=["POST"]),
                Route("/history/{prompt_id}", self._history),
                Route("/view", self._view),
                Route("/system_stats", self._stats),
            ]
        )

    def start(self) -> FakeComfyUI:
        self._server = BackgroundServer(self._app(), self.port).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    @staticmethod
    def _texts(workflow: dict[str, Any]) -> list[str]:
        return [
            str(node.get("inputs", {}).get("text", ""))
            for node in workflow.values()
            if isinstance(node, dict) and node.get("class_type") == "CLIPTextEncode"
        ]

    async def _prompt(self, request: Request) -> Response:
        body = await request.json()
        workflow = body.get("prompt")
        if not isinstance(workflow, dict) or not workflow:
            return JSONResponse(
                {
                    "error": {
                        "type": "invalid_prompt",
                        "message": "no prompt",
                        "details": "",
                        "extra_info": {},
                    },
                    "node_errors": {},
                },
                400,
            )
        if any("[[comfy-error]]" in t for t in self._texts(workflow)):
            return JSONResponse(
                {
                    "error": {
                        "type": "prompt_outputs_failed_validation",
                        "message": "Prompt outputs failed validation",
                        "details": "",
                        "extra_info": {},
                    },
                    "node_errors": {
                        "4": {
                            "errors": [
                                {"type": "value_not_in_list", "message": "ckpt_name not in list"}
                            ],
                            "class_type": "CheckpointLoaderSimple",
                        }
                    },
                },
                400,
            )
        prompt_id = str(uuid.uuid4())
        self.prompts[prompt_id] = workflow
        self.polls[prompt_id] = 0
        return JSONResponse(
            {"prompt_id": prompt_id, "number": len(self.prompts), "node_errors": {}}
        )

    async def _history(self, request: Request) -> Response:
        prompt_id = request.path_params["prompt_id"]
        if prompt_id not in self.prompts:
            return JSONResponse({})
        self.polls[prompt_id] += 1
        if self.polls[prompt_id] < 2:  # still running on the first poll
            return JSONResponse({})
        workflow = self.prompts[prompt_id]
        latent: dict[str, Any] = next(
            (n["inputs"] for n in workflow.values() if n.get("class_type") == "EmptyLatentImage"),
            {},
        )
        filename = f"StoryCore_{prompt_id[:8]}_00001_.png"
        if filename not in self.images:
            image = Image.new(
                "RGB",
                (int(latent.get("width", 512)), int(latent.get("height", 512))),
                (40, 90, 140),
            )
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
            self.images[filename] = buffer.getvalue()
        outputs = {"9": {"images": [{"filename": filename, "subfolder": "", "type": "output"}]}}
        return JSONResponse(
            {
                prompt_id: {
                    "prompt": [0, prompt_id, workflow, {}, ["9"]],
                    "outputs": outputs,
                    "status": {"status_str": "success", "completed": True, "messages": []},
                }
            }
        )

    async def _view(self, request: Request) -> Response:
        image = self.images.get(request.query_params.get("filename", ""))
        if image is None:
            return Response(status_code=404)
        return Response(image, media_type="image/png")

    async def _stats(self, _: Request) -> Response:
        return JSONResponse(
            {
                "system": {
                    "os": "posix",
                    "comfyui_version": "fake",
                    "python_version": "3.11",
                    "embedded_python": False,
                },
                "devices": [{"name": "cpu", "type": "cpu", "vram_total": 0}],
            }
        )
