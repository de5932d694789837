"""Language-model providers behind one interface.

Each provider turns a :class:`Prompt` into a :class:`Completion`, or a stream of
:class:`Chunk` and one final :class:`Done`. Transport failures become honest errors: 503 when
the provider is unreachable, 504 on timeout, 502 for an answer that is not its format.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from llm.errors import ProviderBadAnswer, ProviderTimeout, ProviderUnavailable
from storycore_shared import outbound


@dataclass(frozen=True)
class Message:
    role: str
    content: str


@dataclass(frozen=True)
class Prompt:
    messages: list[Message]
    model: str
    temperature: float | None = None
    max_tokens: int | None = None
    json_mode: bool = False

    @property
    def system(self) -> str:
        return "\n\n".join(m.content for m in self.messages if m.role == "system")

    @property
    def conversation(self) -> list[Message]:
        return [m for m in self.messages if m.role != "system"]

    def fingerprint(self) -> dict[str, Any]:
        """Every generation parameter, for the cache key."""
        return {
            "messages": [[m.role, m.content] for m in self.messages],
            "model": self.model,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "json_mode": self.json_mode,
        }


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def as_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


@dataclass
class Completion:
    text: str
    model: str
    usage: Usage
    finish_reason: str = "stop"


@dataclass(frozen=True)
class Chunk:
    text: str


@dataclass
class Done:
    usage: Usage = field(default_factory=Usage)
    finish_reason: str = "stop"


class Provider(ABC):
    name: str
    default_model: str
    mock: bool = False

    @abstractmethod
    async def complete(self, prompt: Prompt) -> Completion: ...

    @abstractmethod
    def stream(self, prompt: Prompt) -> AsyncIterator[Chunk | Done]: ...

    @abstractmethod
    async def models(self) -> list[str]: ...


class HttpProvider(Provider):
    """Shared transport: one timeout for the whole call, errors mapped to 502/503/504."""

    def __init__(self, base_url: str, model: str, timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.default_model = model
        self.timeout = timeout

    def headers(self) -> dict[str, str]:
        return {}

    def _client(self) -> httpx.AsyncClient:
        return outbound.client(
            base_url=self.base_url,
            timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, 5.0)),
            headers=self.headers(),
        )

    def _bad(self, detail: str) -> ProviderBadAnswer:
        return ProviderBadAnswer(f"{self.name}: {detail}")

    async def post_json(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            async with self._client() as client:
                answer = await client.post(path, json=body)
        except httpx.TimeoutException as exc:
            raise ProviderTimeout(f"{self.name} did not answer within {self.timeout:g} s.") from exc
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(f"{self.name} is unreachable at {self.base_url}.") from exc
        return self._json(answer)

    async def get_json(self, path: str) -> dict[str, Any]:
        try:
            async with self._client() as client:
                answer = await client.get(path)
        except httpx.TimeoutException as exc:
            raise ProviderTimeout(f"{self.name} did not answer in time.") from exc
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(f"{self.name} is unreachable.") from exc
        return self._json(answer)

    def _json(self, answer: httpx.Response) -> dict[str, Any]:
        if answer.status_code >= 400:
            raise self._bad(f"answered HTTP {answer.status_code}")
        try:
            body = answer.json()
        except ValueError as exc:
            raise self._bad("answered something that is not JSON") from exc
        if not isinstance(body, dict):
            raise self._bad("answered JSON that is not an object")
        return body

    @asynccontextmanager
    async def open_stream(
        self, path: str, body: dict[str, Any]
    ) -> AsyncIterator[AsyncIterator[str]]:
        """POST ``body`` and yield the answer's lines; errors mapped as for ``post_json``."""
        client = self._client()
        try:
            try:
                request = client.build_request("POST", path, json=body)
                answer = await client.send(request, stream=True)
            except httpx.TimeoutException as exc:
                raise ProviderTimeout(f"{self.name} did not start answering in time.") from exc
            except httpx.HTTPError as exc:
                raise ProviderUnavailable(f"{self.name} is unreachable.") from exc
            try:
                if answer.status_code >= 400:
                    raise self._bad(f"answered HTTP {answer.status_code}")
                yield self._lines(answer)
            finally:
                await answer.aclose()
        finally:
            await client.aclose()

    async def _lines(self, answer: httpx.Response) -> AsyncIterator[str]:
        try:
            async for line in answer.aiter_lines():
                yield line
        except httpx.TimeoutException as exc:
            raise ProviderTimeout(f"{self.name} stopped answering mid-stream.") from exc
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(f"{self.name} dropped the stream.") from exc

    def decode(self, raw: str) -> dict[str, Any]:
        try:
            value = json.loads(raw)
        except ValueError as exc:
            raise self._bad("streamed something that is not JSON") from exc
        if not isinstance(value, dict):
            raise self._bad("streamed JSON that is not an object")
        return value
