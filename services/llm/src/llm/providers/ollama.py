"""Ollama: ``/api/generate`` and ``/api/chat``, NDJSON streaming, ``/api/tags``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from llm.providers import Chunk, Completion, Done, HttpProvider, Prompt, Usage


class OllamaProvider(HttpProvider):
    name = "ollama"

    def _request(self, prompt: Prompt, *, stream: bool) -> tuple[str, dict[str, Any]]:
        options: dict[str, Any] = {}
        if prompt.temperature is not None:  # 0 is a temperature
            options["temperature"] = prompt.temperature
        if prompt.max_tokens is not None:
            options["num_predict"] = prompt.max_tokens
        body: dict[str, Any] = {"model": prompt.model, "stream": stream, "options": options}
        if prompt.json_mode:
            body["format"] = "json"
        conversation = prompt.conversation
        if len(conversation) == 1 and conversation[0].role == "user":
            body["prompt"] = conversation[0].content
            if prompt.system:
                body["system"] = prompt.system
            return "/api/generate", body
        body["messages"] = [{"role": m.role, "content": m.content} for m in prompt.messages]
        return "/api/chat", body

    @staticmethod
    def _text(piece: dict[str, Any]) -> str:
        if "message" in piece:
            return str((piece["message"] or {}).get("content", ""))
        return str(piece.get("response", ""))

    @staticmethod
    def _usage(piece: dict[str, Any]) -> Usage:
        return Usage(int(piece.get("prompt_eval_count") or 0), int(piece.get("eval_count") or 0))

    async def complete(self, prompt: Prompt) -> Completion:
        path, body = self._request(prompt, stream=False)
        answer = await self.post_json(path, body)
        if "error" in answer:
            raise self._bad(str(answer["error"]))
        if "message" not in answer and "response" not in answer:
            raise self._bad("answer has neither message nor response")
        return Completion(
            self._text(answer),
            str(answer.get("model", prompt.model)),
            self._usage(answer),
            str(answer.get("done_reason", "stop")),
        )

    async def stream(self, prompt: Prompt) -> AsyncIterator[Chunk | Done]:
        path, body = self._request(prompt, stream=True)
        async with self.open_stream(path, body) as lines:
            async for line in lines:
                if not line.strip():
                    continue
                piece = self.decode(line)
                if "error" in piece:
                    raise self._bad(str(piece["error"]))
                if text := self._text(piece):
                    yield Chunk(text)
                if piece.get("done"):
                    yield Done(self._usage(piece), str(piece.get("done_reason", "stop")))
                    return
        raise self._bad("the stream ended without done")

    async def models(self) -> list[str]:
        answer = await self.get_json("/api/tags")
        return [str(m["name"]) for m in answer.get("models", []) if "name" in m]
