"""A fake ComfyUI for tests: a real HTTP server with ComfyUI's API.

``POST /prompt`` takes an API-format workflow and answers ``{"prompt_id", "number",
"node_errors"}``; ``GET /history/{id}`` is empty while "running" (one poll) and then lists the
outputs; ``GET /view?filename=&subfolder=&type=`` returns the PNG; ``GET /system_stats``.
A positive prompt containing ``[[comfy-error]]`` is rejected the way ComfyUI rejects an invalid
workflow (HTTP 400 with ``error`` and ``node_errors``). ``stop()``/``start()`` keep the port.

Pose workflows too: ``POST /upload/image`` (multipart, field ``image``) stores an input image
and answers ``{"name", "subfolder", "type": "input"}``; a workflow with a pose preprocessor
node (``DWPreprocessor``, ``OpenposePreprocessor``) whose ``LoadImage`` names an uploaded image
runs, and its history carries that node's ``openpose_json`` as comfyui_controlnet_aux writes
it: a list of one JSON string, a list of one OpenPose document per image, ``people`` with
18-point ``pose_keypoints_2d`` normalised to 0..1, ``canvas_width``/``canvas_height`` the
image's size. The people are :data:`STANDING_FIGURE` unless a test sets ``poses`` (a list of
``pose_keypoints_2d`` lists). An image that was not uploaded fails validation as ComfyUI's
``LoadImage`` does.
"""

from __future__ import annotations

import io
import json
import uuid
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from storycore_testkit.http_server import BackgroundServer
from storycore_testkit.infra.processes import free_port

POSE_NODES = ("DWPreprocessor", "OpenposePreprocessor")
# A person standing with arms out, in OpenPose's 18-point COCO order (x, y normalised to the
# image, confidence 1): nose, neck, right shoulder/elbow/wrist, left shoulder/elbow/wrist,
# right hip/knee/ankle, left hip/knee/ankle, right eye, left eye, right ear, left ear.
STANDING_FIGURE: list[float] = [
    value
    for x, y in [
        (0.50, 0.14), (0.50, 0.22), (0.42, 0.23), (0.33, 0.30), (0.25, 0.36),
        (0.58, 0.23), (0.67, 0.30), (0.75, 0.36), (0.45, 0.50), (0.44, 0.69),
        (0.44, 0.88), (0.55, 0.50), (0.56, 0.69), (0.56, 0.88), (0.48, 0.12),
        (0.52, 0.12), (0.46, 0.13), (0.54, 0.13),
    ]
    for value in (x, y, 1.0)
]  # fmt: skip


class FakeComfyUI:
    def __init__(self, *, port: int | None = None) -> None:
        self.port = port or free_port()
        self.prompts: dict[str, dict[str, Any]] = {}
        self.polls: dict[str, int] = {}
        self.images: dict[str, bytes] = {}
        # Uploaded input images by name, and the people pose workflows "detect" on them.
        self.inputs: dict[str, bytes] = {}
        self.poses: list[list[float]] | None = None
        self._server: BackgroundServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/prompt", self._prompt, methods=["POST"]),
                Route("/upload/image", self._upload, methods=["POST"]),
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
        if (invalid := self._missing_input(workflow)) is not None:
            node_id, name = invalid
            return JSONResponse(
                {
                    "error": {
                        "type": "prompt_outputs_failed_validation",
                        "message": "Prompt outputs failed validation",
                        "details": "",
                        "extra_info": {},
                    },
                    "node_errors": {
                        node_id: {
                            "errors": [
                                {
                                    "type": "custom_validation_failed",
                                    "message": f"Invalid image file: {name}",
                                }
                            ],
                            "class_type": "LoadImage",
                        }
                    },
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
        if self._pose_node(workflow) is not None:
            return JSONResponse({prompt_id: self._pose_entry(prompt_id, workflow)})
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

    @staticmethod
    def _pose_node(workflow: dict[str, Any]) -> str | None:
        return next(
            (
                node_id
                for node_id, node in sorted(workflow.items())
                if isinstance(node, dict) and node.get("class_type") in POSE_NODES
            ),
            None,
        )

    @staticmethod
    def _load_image(workflow: dict[str, Any], pose_node: str) -> tuple[str, str] | None:
        """The LoadImage node feeding the pose node, and the image it names."""
        source = workflow[pose_node].get("inputs", {}).get("image")
        if isinstance(source, list) and source and str(source[0]) in workflow:
            node = workflow[str(source[0])]
            if node.get("class_type") == "LoadImage":
                return str(source[0]), str(node.get("inputs", {}).get("image", ""))
        return None

    def _missing_input(self, workflow: dict[str, Any]) -> tuple[str, str] | None:
        pose_node = self._pose_node(workflow)
        if pose_node is None:
            return None
        loaded = self._load_image(workflow, pose_node)
        if loaded is None:
            return pose_node, ""
        return None if loaded[1] in self.inputs else loaded

    def _pose_entry(self, prompt_id: str, workflow: dict[str, Any]) -> dict[str, Any]:
        pose_node = self._pose_node(workflow)
        assert pose_node is not None
        loaded = self._load_image(workflow, pose_node)
        assert loaded is not None
        with Image.open(io.BytesIO(self.inputs[loaded[1]])) as image:
            width, height = image.size
        people = self.poses if self.poses is not None else [STANDING_FIGURE]
        document = {
            "people": [
                {
                    "pose_keypoints_2d": list(points),
                    "face_keypoints_2d": None,
                    "hand_left_keypoints_2d": None,
                    "hand_right_keypoints_2d": None,
                }
                for points in people
            ],
            "canvas_height": height,
            "canvas_width": width,
        }
        filename = f"ComfyUI_temp_{prompt_id[:8]}_00001_.png"
        if filename not in self.images:
            buffer = io.BytesIO()
            Image.new("RGB", (width, height), (0, 0, 0)).save(buffer, format="PNG")
            self.images[filename] = buffer.getvalue()
        outputs: dict[str, Any] = {pose_node: {"openpose_json": [json.dumps([document], indent=4)]}}
        for node_id, node in workflow.items():
            if isinstance(node, dict) and node.get("class_type") in ("PreviewImage", "SaveImage"):
                outputs[node_id] = {
                    "images": [{"filename": filename, "subfolder": "", "type": "temp"}]
                }
        return {
            "prompt": [0, prompt_id, workflow, {}, sorted(outputs)],
            "outputs": outputs,
            "status": {"status_str": "success", "completed": True, "messages": []},
        }

    async def _upload(self, request: Request) -> Response:
        """ComfyUI's ``/upload/image``: a multipart form whose ``image`` field is the file."""
        body = await request.body()
        header = f"Content-Type: {request.headers.get('content-type', '')}\r\n\r\n".encode()
        message = BytesParser(policy=HTTP).parsebytes(header + body)
        fields: dict[str, tuple[str | None, bytes]] = {}
        if message.is_multipart():
            for part in message.iter_parts():
                name = part.get_param("name", header="content-disposition")
                payload = part.get_payload(decode=True)
                if isinstance(name, str) and isinstance(payload, bytes):
                    fields[name] = (part.get_filename(), payload)
        image = fields.get("image")
        if image is None or not image[0]:
            return Response(status_code=400)
        name = image[0]
        self.inputs[name] = image[1]
        return JSONResponse({"name": name, "subfolder": "", "type": "input"})

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
