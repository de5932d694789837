"""The mock provider: deterministic, offline, and labelled ``provider: "mock"`` everywhere."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

from llm.providers import Chunk, Completion, Done, Prompt, Provider, Usage


class MockProvider(Provider):
    name = "mock"
    default_model = "mock-1"
    mock = True

    def _answer(self, prompt: Prompt) -> str:
        last = prompt.conversation[-1].content if prompt.conversation else ""
        digest = hashlib.sha256(repr(prompt.fingerprint()).encode()).hexdigest()[:8]
        words = last.split()
        gist = " ".join(words[:40]) + (" …" if len(words) > 40 else "")
        return f"[mock {digest}] A deterministic answer to: {gist}"

    def _usage(self, prompt: Prompt, text: str) -> Usage:
        asked = sum(len(m.content.split()) for m in prompt.messages)
        return Usage(prompt_tokens=asked, completion_tokens=len(text.split()))

    async def complete(self, prompt: Prompt) -> Completion:
        text = self._answer(prompt)
        return Completion(text, prompt.model, self._usage(prompt, text))

    async def stream(self, prompt: Prompt) -> AsyncIterator[Chunk | Done]:
        text = self._answer(prompt)
        words = text.split(" ")
        for i, word in enumerate(words):
            yield Chunk(word + (" " if i < len(words) - 1 else ""))
        yield Done(self._usage(prompt, text))

    async def models(self) -> list[str]:
        return [self.default_model]
