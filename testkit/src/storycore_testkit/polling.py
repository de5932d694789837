"""Deadlines and polling instead of sleeps.

await eventually(lambda: consumer_saw(5), within=5, what="five events applied")
settle(lambda: stack_answers(), within=10, what="gateway back")
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


async def eventually(check: Callable[[], Awaitable[bool]], *, within: float, what: str) -> float:
    """Poll ``check`` until it holds; return the seconds it took, fail at the deadline."""
    began = time.monotonic()
    while time.monotonic() - began < within:
        if await check():
            return time.monotonic() - began
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {within}s: {what}")


def settle(check: Callable[[], bool], *, within: float, what: str) -> float:
    """The synchronous twin of :func:`eventually`."""
    began = time.monotonic()
    while time.monotonic() - began < within:
        if check():
            return time.monotonic() - began
        time.sleep(0.05)
    raise AssertionError(f"not within {within}s: {what}")
