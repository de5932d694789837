"""Fake LLM providers for tests: real HTTP servers that speak each provider's wire format.

``FakeLLMServer("ollama" | "openai" | "anthropic")`` serves the provider's routes on a port of
its own, streaming included. A marker in the last user message steers it:

``[[slow]]`` never answers in time · ``[[bad]]`` 200 with a body that is not the format ·
``[[http500]]`` a server error · ``[[stream-error]]`` two chunks, then the provider's error ·
``[[drip]]`` streams five chunks 0.4 s apart · ``[[plan-invalid]]`` / ``[[plan-invalid-once]]``
an invalid shot plan (always / the first time): markers the *tests* write into user text.
A system prompt that asks for a shot list gets a plan of the requested size; one that asks for
the scenario document (``personnages``, ...) gets one. Production prompts carry no test markers.
``stop()`` and ``start()`` keep the port, so "provider down" is a refused connection.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from storycore_testkit.http_server import BackgroundServer
from storycore_testkit.infra.processes import free_port

API_KEY = "test-key"
# Longer than any client timeout the tests configure.
SLOW_SECONDS = 8


def _plan(text: str) -> dict[str, Any]:
    match = re.search(r"exactly (\d+) shots", text)
    count = int(match.group(1)) if match else 3
    framings = ["wide", "medium", "close-up"]
    return {
        "shots": [
            {
                "name": f"Shot {i + 1}",
                "prompt": f"Planned frame {i + 1}",
                "shot_type": "action",
                "framing": framings[i % 3],
                "duration_seconds": 4.0,
            }
            for i in range(count)
        ]
    }


def _scenario(text: str) -> dict[str, Any]:
    title = "Fake scenario"
    return {
        "meta": {
            "titre": title,
            "pitch": text[:80],
            "theme": "fake",
            "sous_themes": [],
            "ton": "neutre",
            "ton_precisions": "",
            "enjeux": [],
        },
        "personnages": [{"nom": "Ada", "role": "protagoniste", "description": "the lead"}],
        "lieux": [{"nom": "Harbour", "type": "exterieur", "description": "grey water"}],
        "objets": [],
        "sequences": [{"titre": "Opening", "acte": 1, "resume": "It begins.", "tension": "basse"}],
        "scenes": [
            {
                "numero": 1,
                "type": "EXT",
                "lieu": "Harbour",
                "moment": "JOUR",
                "description": "Ada waits.",
            }
        ],
    }


class FakeLLMServer:
    def __init__(self, kind: str, *, port: int | None = None) -> None:
        assert kind in {"ollama", "openai", "anthropic"}
        self.kind = kind
        self.port = port or free_port()
        self.requests: list[dict[str, Any]] = []
        self._seen: set[str] = set()
        self._server: BackgroundServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeLLMServer:
        self._server = BackgroundServer(self._app(), self.port).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    # -- behaviour -------------------------------------------------------------------------

    def _answer_for(self, text: str, system: str) -> str:
        if '"shots": [' in system:  # the planner asks for a shot list
            if "[[plan-invalid]]" in text:
                return '{"shots": [{"name": "only one, and no framing"}]}'
            if "[[plan-invalid-once]]" in text and text not in self._seen:
                self._seen.add(text)
                return "this is not json at all"
            return json.dumps(_plan(system + " " + text))
        if "personnages" in system:  # the scenario extractor asks for its document
            return json.dumps(_scenario(text))
        return f"{self.kind} says: {text[:200]}"

    async def _prepare(self, request: Request) -> tuple[dict[str, Any], str, str] | Response:
        if self.kind == "openai" and request.headers.get("authorization") != f"Bearer {API_KEY}":
            return JSONResponse({"error": {"message": "bad key", "type": "auth"}}, 401)
        if self.kind == "anthropic" and (
            request.headers.get("x-api-key") != API_KEY
            or not request.headers.get("anthropic-version")
        ):
            return JSONResponse(
                {"type": "error", "error": {"type": "authentication_error", "message": "bad key"}},
                401,
            )
        body = await request.json()
        self.requests.append(body)
        messages = body.get("messages") or [{"role": "user", "content": body.get("prompt", "")}]
        text = str(messages[-1]["content"])
        system = str(body.get("system", "")) + " ".join(
            str(m["content"]) for m in messages if m["role"] == "system"
        )
        if "[[slow]]" in text:
            await asyncio.sleep(SLOW_SECONDS)
        if "[[http500]]" in text:
            return PlainTextResponse("internal error", 500)
        if "[[bad]]" in text:
            return PlainTextResponse("<html>this is not the provider's format</html>", 200)
        return body, text, system

    def _app(self) -> Starlette:
        routes = {
            "ollama": [
                Route("/api/generate", self._ollama, methods=["POST"]),
                Route("/api/chat", self._ollama, methods=["POST"]),
                Route("/api/tags", self._ollama_tags),
            ],
            "openai": [
                Route("/v1/chat/completions", self._openai, methods=["POST"]),
                Route("/v1/models", self._model_list),
            ],
            "anthropic": [
                Route("/v1/messages", self._anthropic, methods=["POST"]),
                Route("/v1/models", self._model_list),
            ],
        }[self.kind]
        return Starlette(routes=routes)

    @staticmethod
    def _chunks(answer: str) -> list[str]:
        words = answer.split(" ")
        return [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]

    async def _pace(self, text: str) -> AsyncIterator[int]:
        for i in range(10_000):
            if "[[drip]]" in text and i:
                await asyncio.sleep(0.4)
            yield i

    # -- ollama ----------------------------------------------------------------------------

    async def _ollama_tags(self, _: Request) -> Response:
        return JSONResponse({"models": [{"name": "fake-llama:latest"}]})

    async def _ollama(self, request: Request) -> Response:
        prepared = await self._prepare(request)
        if isinstance(prepared, Response):
            return prepared
        body, text, system = prepared
        answer = self._answer_for(text, system)
        chat = request.url.path.endswith("/chat")
        usage = {"prompt_eval_count": len(text.split()), "eval_count": len(answer.split())}
        model = body.get("model", "fake-llama")

        def piece(content: str, done: bool) -> dict[str, Any]:
            base: dict[str, Any] = {"model": model, "done": done}
            if chat:
                base["message"] = {"role": "assistant", "content": content}
            else:
                base["response"] = content
            return base

        if not body.get("stream", True):
            return JSONResponse({**piece(answer, True), **usage, "done_reason": "stop"})

        async def lines() -> AsyncIterator[bytes]:
            chunks = self._chunks(answer)
            if "[[drip]]" in text:
                chunks = chunks[:5]
            async for i in self._pace(text):
                if i >= len(chunks):
                    break
                if "[[stream-error]]" in text and i == 2:
                    yield json.dumps({"error": "model runner crashed"}).encode() + b"\n"
                    return
                yield json.dumps(piece(chunks[i], False)).encode() + b"\n"
            yield json.dumps({**piece("", True), **usage, "done_reason": "stop"}).encode() + b"\n"

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    # -- openai ----------------------------------------------------------------------------

    async def _model_list(self, _: Request) -> Response:
        name = "fake-gpt" if self.kind == "openai" else "fake-claude"
        return JSONResponse({"data": [{"id": name, "object": "model"}]})

    async def _openai(self, request: Request) -> Response:
        prepared = await self._prepare(request)
        if isinstance(prepared, Response):
            return prepared
        body, text, system = prepared
        answer = self._answer_for(text, system)
        usage = {"prompt_tokens": len(text.split()), "completion_tokens": len(answer.split())}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        model = body.get("model", "fake-gpt")
        if not body.get("stream"):
            return JSONResponse(
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": answer},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": usage,
                }
            )

        async def events() -> AsyncIterator[bytes]:
            chunks = self._chunks(answer)
            if "[[drip]]" in text:
                chunks = chunks[:5]
            async for i in self._pace(text):
                if i >= len(chunks):
                    break
                if "[[stream-error]]" in text and i == 2:
                    error = {"error": {"message": "upstream overloaded", "type": "server_error"}}
                    yield f"data: {json.dumps(error)}\n\n".encode()
                    return
                delta = {
                    "id": "c",
                    "object": "chat.completion.chunk",
                    "model": model,
                    "choices": [
                        {"index": 0, "delta": {"content": chunks[i]}, "finish_reason": None}
                    ],
                }
                yield f"data: {json.dumps(delta)}\n\n".encode()
            final = {
                "id": "c",
                "object": "chat.completion.chunk",
                "model": model,
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            }
            yield f"data: {json.dumps(final)}\n\n".encode()
            yield f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n".encode()
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    # -- anthropic -------------------------------------------------------------------------

    async def _anthropic(self, request: Request) -> Response:
        prepared = await self._prepare(request)
        if isinstance(prepared, Response):
            return prepared
        body, text, system = prepared
        answer = self._answer_for(text, system)
        model = body.get("model", "fake-claude")
        usage = {"input_tokens": len(text.split()), "output_tokens": len(answer.split())}
        if not body.get("stream"):
            return JSONResponse(
                {
                    "id": "msg_fake",
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [{"type": "text", "text": answer}],
                    "stop_reason": "end_turn",
                    "usage": usage,
                }
            )

        def event(name: str, data: dict[str, Any]) -> bytes:
            return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n".encode()

        async def events() -> AsyncIterator[bytes]:
            yield event(
                "message_start",
                {
                    "message": {
                        "id": "msg_fake",
                        "type": "message",
                        "role": "assistant",
                        "model": model,
                        "content": [],
                        "usage": {"input_tokens": usage["input_tokens"], "output_tokens": 0},
                    }
                },
            )
            yield event(
                "content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}
            )
            chunks = self._chunks(answer)
            if "[[drip]]" in text:
                chunks = chunks[:5]
            async for i in self._pace(text):
                if i >= len(chunks):
                    break
                if "[[stream-error]]" in text and i == 2:
                    yield event(
                        "error", {"error": {"type": "overloaded_error", "message": "Overloaded"}}
                    )
                    return
                yield event(
                    "content_block_delta",
                    {"index": 0, "delta": {"type": "text_delta", "text": chunks[i]}},
                )
            yield event("content_block_stop", {"index": 0})
            yield event(
                "message_delta",
                {
                    "delta": {"stop_reason": "end_turn"},
                    "usage": {"output_tokens": usage["output_tokens"]},
                },
            )
            yield event("message_stop", {})

        return StreamingResponse(events(), media_type="text/event-stream")
