"""Any OpenAI-compatible server: ``/v1/chat/completions`` with SSE streaming, ``/v1/models``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from llm.providers import Chunk, Completion, Done, HttpProvider, Prompt, Usage


class OpenAIProvider(HttpProvider):
    name = "openai"

    def __init__(self, base_url: str, model: str, timeout: float, api_key: str | None) -> None:
        super().__init__(base_url, model, timeout)
        self.api_key = api_key

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def _body(self, prompt: Prompt, *, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": prompt.model,
            "messages": [{"role": m.role, "content": m.content} for m in prompt.messages],
            "stream": stream,
        }
        if prompt.temperature is not None:
            body["temperature"] = prompt.temperature
        if prompt.max_tokens is not None:
            body["max_tokens"] = prompt.max_tokens
        if prompt.json_mode:
            body["response_format"] = {"type": "json_object"}
        if stream:
            body["stream_options"] = {"include_usage": True}
        return body

    @staticmethod
    def _usage(raw: dict[str, Any] | None) -> Usage:
        raw = raw or {}
        return Usage(int(raw.get("prompt_tokens") or 0), int(raw.get("completion_tokens") or 0))

    async def complete(self, prompt: Prompt) -> Completion:
        answer = await self.post_json("/v1/chat/completions", self._body(prompt, stream=False))
        try:
            choice = answer["choices"][0]
            text = choice["message"]["content"] or ""
        except (KeyError, IndexError, TypeError) as exc:
            raise self._bad("answer has no choices[0].message") from exc
        return Completion(
            str(text),
            str(answer.get("model", prompt.model)),
            self._usage(answer.get("usage")),
            str(choice.get("finish_reason") or "stop"),
        )

    async def stream(self, prompt: Prompt) -> AsyncIterator[Chunk | Done]:
        usage = Usage()
        finish = "stop"
        async with self.open_stream(
            "/v1/chat/completions", self._body(prompt, stream=True)
        ) as lines:
            async for line in lines:
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    yield Done(usage, finish)
                    return
                piece = self.decode(data)
                if "error" in piece:
                    error = piece["error"]
                    message = error.get("message") if isinstance(error, dict) else error
                    raise self._bad(str(message))
                if piece.get("usage"):
                    usage = self._usage(piece["usage"])
                for choice in piece.get("choices") or []:
                    if text := (choice.get("delta") or {}).get("content"):
                        yield Chunk(str(text))
                    if choice.get("finish_reason"):
                        finish = str(choice["finish_reason"])
        raise self._bad("the stream ended without [DONE]")

    async def models(self) -> list[str]:
        answer = await self.get_json("/v1/models")
        return [str(m["id"]) for m in answer.get("data", []) if "id" in m]
