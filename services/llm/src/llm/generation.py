"""Generation use cases: provider choice, per-user cache, real usage records, streaming.

Database work happens in short transactions of its own, never around a provider call, so a
slow model never holds a connection.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from llm import repository
from llm.models import UsageRecord
from llm.providers import Chunk, Done, Message, Prompt, Provider, Usage
from llm.providers.registry import Providers
from llm.schemas import (
    ChatChoice,
    ChatRequest,
    ChatResponse,
    GenerateRequest,
    GenerateResponse,
    UsagePublic,
)
from storycore_shared.auth import Principal
from storycore_shared.db import transaction
from storycore_shared.errors import ServiceError

if TYPE_CHECKING:
    from sse_starlette.sse import EventSourceResponse

logger = logging.getLogger(__name__)


def cache_key(principal: Principal, provider: Provider, prompt: Prompt, endpoint: str) -> str:
    material = {
        "user": str(principal.user_id),
        "provider": provider.name,
        "endpoint": endpoint,
        **prompt.fingerprint(),
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def _usage(usage: Usage) -> UsagePublic:
    return UsagePublic(**usage.as_dict())


class Generation:
    def __init__(
        self,
        providers: Providers,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        cache_ttl: int,
    ) -> None:
        self.providers = providers
        self.sessionmaker = sessionmaker
        self.cache_ttl = cache_ttl

    def _prompt(
        self,
        provider: Provider,
        messages: list[Message],
        model: str | None,
        temperature: float | None,
        max_tokens: int | None,
    ) -> Prompt:
        return Prompt(
            messages=messages,
            model=model or provider.default_model,
            temperature=temperature,
            max_tokens=max_tokens,
        )

    async def record(
        self,
        principal: Principal,
        endpoint: str,
        provider: Provider,
        model: str,
        usage: Usage,
        *,
        cached: bool,
        latency_ms: float,
    ) -> None:
        async with transaction(self.sessionmaker) as session:
            session.add(
                UsageRecord(
                    user_id=principal.user_id,
                    endpoint=endpoint,
                    provider=provider.name,
                    model=model,
                    prompt_tokens=usage.prompt_tokens,
                    completion_tokens=usage.completion_tokens,
                    cached=cached,
                    latency_ms=round(latency_ms, 2),
                )
            )

    async def generate(self, principal: Principal, request: GenerateRequest) -> GenerateResponse:
        provider = self.providers.select(request.provider)
        messages = [Message(m.role, m.content) for m in request.context]
        prompt = self._prompt(
            provider,
            [*messages, Message("user", request.prompt)],
            request.model,
            request.temperature,
            request.max_tokens,
        )
        key = cache_key(principal, provider, prompt, "generate")
        started = time.perf_counter()
        if request.use_cache:
            async with transaction(self.sessionmaker) as session:
                hit = await repository.cache_get(session, key, datetime.now(UTC))
            if hit is not None:
                latency = (time.perf_counter() - started) * 1000
                # A cached answer spends no tokens, and the usage says so.
                await self.record(
                    principal,
                    "generate",
                    provider,
                    hit.model,
                    Usage(),
                    cached=True,
                    latency_ms=latency,
                )
                return GenerateResponse(
                    text=hit.text,
                    model=hit.model,
                    provider=provider.name,
                    usage=_usage(Usage()),
                    cached=True,
                    latency_ms=round(latency, 2),
                    mock=provider.mock,
                )
        completion = await provider.complete(prompt)
        latency = (time.perf_counter() - started) * 1000
        if request.use_cache:
            async with transaction(self.sessionmaker) as session:
                now = datetime.now(UTC)
                await repository.cache_put(
                    session,
                    {
                        "key": key,
                        "user_id": principal.user_id,
                        "provider": provider.name,
                        "model": completion.model,
                        "text": completion.text,
                        "created_at": now,
                        "expires_at": now + timedelta(seconds=self.cache_ttl),
                    },
                )
        await self.record(
            principal,
            "generate",
            provider,
            completion.model,
            completion.usage,
            cached=False,
            latency_ms=latency,
        )
        return GenerateResponse(
            text=completion.text,
            model=completion.model,
            provider=provider.name,
            usage=_usage(completion.usage),
            cached=False,
            latency_ms=round(latency, 2),
            mock=provider.mock,
        )

    async def chat(self, principal: Principal, request: ChatRequest) -> ChatResponse:
        provider = self.providers.select(request.provider)
        prompt = self._prompt(
            provider,
            [Message(m.role, m.content) for m in request.messages],
            request.model,
            request.temperature,
            request.max_tokens,
        )
        started = time.perf_counter()
        completion = await provider.complete(prompt)
        await self.record(
            principal,
            "chat",
            provider,
            completion.model,
            completion.usage,
            cached=False,
            latency_ms=(time.perf_counter() - started) * 1000,
        )
        return ChatResponse(
            choices=[
                ChatChoice(
                    message={"role": "assistant", "content": completion.text},
                    finish_reason=completion.finish_reason,
                )
            ],
            model=completion.model,
            provider=provider.name,
            usage=_usage(completion.usage),
            mock=provider.mock,
        )

    async def generate_or_stream(
        self, principal: Principal, request: GenerateRequest, *, stream: bool
    ) -> EventSourceResponse | GenerateResponse:
        """An SSE response when the caller accepts ``text/event-stream``, else one answer."""
        if not stream:
            return await self.generate(principal, request)
        from sse_starlette.sse import EventSourceResponse  # on first use: see jobs.routes

        frames = await self.stream(principal, request)
        return EventSourceResponse(frames, ping=15, headers={"X-Accel-Buffering": "no"})

    async def stream(
        self, principal: Principal, request: GenerateRequest
    ) -> AsyncIterator[dict[str, str]]:
        """SSE frames ``start, chunk*, usage, done``, or ``error`` once the stream is open.

        The provider's first answer is awaited here, so a provider that is down, slow or
        wrong before anything was sent is an ordinary 503/504/502 problem instead of a stream.
        """
        provider = self.providers.select(request.provider)
        messages = [Message(m.role, m.content) for m in request.context]
        prompt = self._prompt(
            provider,
            [*messages, Message("user", request.prompt)],
            request.model,
            request.temperature,
            request.max_tokens,
        )
        started = time.perf_counter()
        upstream = provider.stream(prompt)
        first: Chunk | Done | None = await anext(upstream, None)
        return self._frames(principal, provider, prompt, upstream, first, started)

    async def _frames(
        self,
        principal: Principal,
        provider: Provider,
        prompt: Prompt,
        upstream: AsyncIterator[Chunk | Done],
        first: Chunk | Done | None,
        started: float,
    ) -> AsyncIterator[dict[str, str]]:
        def frame(kind: str, **data: Any) -> dict[str, str]:
            return {"data": json.dumps({"type": kind, **data})}

        yield frame("start", provider=provider.name, model=prompt.model, mock=provider.mock)
        usage = Usage()
        item = first
        try:
            while item is not None:
                if isinstance(item, Chunk):
                    yield frame("chunk", text=item.text)
                else:
                    usage = item.usage
                    break
                item = await anext(upstream, None)
            yield frame("usage", **usage.as_dict())
            yield frame("done", finish_reason=item.finish_reason if item else "stop")
            await self.record(
                principal,
                "stream",
                provider,
                prompt.model,
                usage,
                cached=False,
                latency_ms=(time.perf_counter() - started) * 1000,
            )
        except ServiceError as exc:
            logger.warning("llm.stream.failed", extra={"code": exc.code, "detail": exc.detail})
            yield frame(
                "error", error={"status": exc.status, "code": exc.code, "detail": exc.detail}
            )
        finally:
            aclose = getattr(upstream, "aclose", None)
            if aclose is not None:
                await aclose()
