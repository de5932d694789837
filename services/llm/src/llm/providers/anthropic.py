"""Anthropic: ``/v1/messages`` with its streaming events, ``/v1/models``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from llm.providers import Chunk, Completion, Done, HttpProvider, Prompt, Usage

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 1024  # the API requires max_tokens


class AnthropicProvider(HttpProvider):
    name = "anthropic"

    def __init__(self, base_url: str, model: str, timeout: float, api_key: str | None) -> None:
        super().__init__(base_url, model, timeout)
        self.api_key = api_key

    def headers(self) -> dict[str, str]:
        headers = {"anthropic-version": API_VERSION}
        if self.api_key:
            headers["x-api-key"] = self.api_key
        return headers

    def _body(self, prompt: Prompt, *, stream: bool) -> dict[str, Any]:
        system = prompt.system
        if prompt.json_mode:  # no JSON mode here: ask, then validate what comes back
            system = (system + "\n\n" if system else "") + "Answer with one JSON object only."
        body: dict[str, Any] = {
            "model": prompt.model,
            "max_tokens": prompt.max_tokens or DEFAULT_MAX_TOKENS,
            "messages": [{"role": m.role, "content": m.content} for m in prompt.conversation],
            "stream": stream,
        }
        if system:
            body["system"] = system
        if prompt.temperature is not None:
            body["temperature"] = prompt.temperature
        return body

    async def complete(self, prompt: Prompt) -> Completion:
        answer = await self.post_json("/v1/messages", self._body(prompt, stream=False))
        if answer.get("type") == "error":
            raise self._bad(str((answer.get("error") or {}).get("message")))
        content = answer.get("content")
        if not isinstance(content, list):
            raise self._bad("answer has no content list")
        text = "".join(str(b.get("text", "")) for b in content if b.get("type") == "text")
        usage = answer.get("usage") or {}
        return Completion(
            text,
            str(answer.get("model", prompt.model)),
            Usage(int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0)),
            str(answer.get("stop_reason") or "stop"),
        )

    async def stream(self, prompt: Prompt) -> AsyncIterator[Chunk | Done]:
        usage = Usage()
        finish = "stop"
        async with self.open_stream("/v1/messages", self._body(prompt, stream=True)) as lines:
            async for line in lines:
                if not line.startswith("data:"):
                    continue
                event = self.decode(line[5:].strip())
                kind = event.get("type")
                if kind == "error":
                    raise self._bad(str((event.get("error") or {}).get("message")))
                if kind == "message_start":
                    start_usage = (event.get("message") or {}).get("usage") or {}
                    usage.prompt_tokens = int(start_usage.get("input_tokens") or 0)
                elif kind == "content_block_delta":
                    delta = event.get("delta") or {}
                    if delta.get("type") == "text_delta" and delta.get("text"):
                        yield Chunk(str(delta["text"]))
                elif kind == "message_delta":
                    usage.completion_tokens = int(
                        (event.get("usage") or {}).get("output_tokens") or 0
                    )
                    finish = str((event.get("delta") or {}).get("stop_reason") or finish)
                elif kind == "message_stop":
                    yield Done(usage, finish)
                    return
        raise self._bad("the stream ended without message_stop")

    async def models(self) -> list[str]:
        answer = await self.get_json("/v1/models")
        return [str(m["id"]) for m in answer.get("data", []) if "id" in m]
