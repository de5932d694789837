"""The asset store interface, what it answers, and the pieces both backends share."""

from __future__ import annotations

import abc
import asyncio
import hashlib
import logging
import re
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import anyio

from storycore_shared.errors import NotFound, PayloadTooLarge

logger = logging.getLogger(__name__)

DEFAULT_CONTENT_TYPE = "application/octet-stream"

# Keys are paths of plain segments; a segment starting with "." is reserved for the store's own
# bookkeeping (S3 stages large uploads under ``.staging/``).
_SEGMENT = re.compile(r"^[A-Za-z0-9_\-=@+,][A-Za-z0-9_\-=@+,.]*$")
MAX_KEY_BYTES = 900


class AssetNotFound(NotFound):
    code = "asset_not_found"
    title = "Asset not found"


@dataclass(frozen=True)
class StoredObject:
    """What a store knows about one stored object.

    ``sha256`` is the lowercase hex digest of the whole content; ``etag`` is that digest quoted,
    a strong validator that is the same on every backend. ``sha256`` is empty only for an S3
    object written by another tool, without this store's metadata.
    """

    key: str
    size: int
    sha256: str
    content_type: str

    @property
    def etag(self) -> str:
        return f'"{self.sha256}"'


class AssetStore(abc.ABC):
    """Binary objects addressed by key, streamed in and out, never held whole in memory.

    Two backends implement it, :class:`~storycore_shared.assets.NatsAssetStore` and
    :class:`~storycore_shared.assets.S3AssetStore`; a service gets one from
    :func:`~storycore_shared.assets.asset_store` and closes it in its lifespan::

        store = asset_store(settings, broker, "shots")
        stored = await store.put("keyframes/k1.png", request.stream(), content_type="image/png")
        async for chunk in store.read("keyframes/k1.png", start=0, end=1024):
            ...
        await store.close()
    """

    @abc.abstractmethod
    async def put(
        self,
        key: str,
        chunks: AsyncIterable[bytes],
        *,
        content_type: str = DEFAULT_CONTENT_TYPE,
        max_bytes: int | None = None,
    ) -> StoredObject:
        """Store ``chunks`` under ``key``, replacing what was there; hash and size as they pass.

        More than ``max_bytes`` raises :class:`~storycore_shared.errors.PayloadTooLarge`. On that
        error, any other error, or cancellation, nothing of the new content is kept (and the
        previous content of the key, if any, is unchanged).
        """

    @abc.abstractmethod
    async def stat(self, key: str) -> StoredObject | None:
        """The object's size, digest and content type, or None when there is no such key."""

    @abc.abstractmethod
    def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Yield the bytes ``[start, end)`` of the object in chunks (``end=None``: to its end).

        A missing key raises :class:`AssetNotFound` on the first iteration; so does an object
        replaced or deleted while it is read. ``start``/``end`` past the end are clipped.
        """

    @abc.abstractmethod
    async def delete(self, key: str) -> None:
        """Delete the object; a missing key is not an error."""

    async def exists(self, key: str) -> bool:
        return await self.stat(key) is not None

    async def close(self) -> None:  # noqa: B027 - a no-op unless the backend holds a client
        """Release what the store holds (connections); the broker is the caller's to close."""


def check_key(key: str) -> str:
    """Keys are ``/``-separated segments (``<project_id>/keyframes/1.png``) of ASCII letters,
    digits and ``_-=@+,.``, not starting with ``.``; at most ``MAX_KEY_BYTES``.
    """
    if not key or len(key.encode()) > MAX_KEY_BYTES:
        raise ValueError(f"asset key must be 1..{MAX_KEY_BYTES} bytes: {key!r}")
    if not all(_SEGMENT.match(segment) for segment in key.split("/")):
        raise ValueError(f"not a valid asset key: {key!r}")
    return key


def check_range(size: int, start: int, end: int | None) -> tuple[int, int]:
    """Clip ``[start, end)`` to an object of ``size`` bytes."""
    if start < 0 or (end is not None and end < start):
        raise ValueError(f"bad byte range [{start}, {end})")
    stop = size if end is None else min(end, size)
    return min(start, stop), stop


class Digest:
    """sha256 and size of the bytes that pass, refusing more than ``max_bytes``."""

    def __init__(self, max_bytes: int | None) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._sha = hashlib.sha256()

    def update(self, data: bytes) -> None:
        self.size += len(data)
        if self.max_bytes is not None and self.size > self.max_bytes:
            raise PayloadTooLarge(f"the file is larger than the limit of {self.max_bytes} bytes")
        self._sha.update(data)

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()


async def fixed_chunks(chunks: AsyncIterable[bytes], size: int) -> AsyncGenerator[bytes, None]:
    """Re-cut a stream into pieces of exactly ``size`` bytes (the last may be shorter)."""
    buffer = bytearray()
    async for chunk in chunks:
        buffer += chunk
        while len(buffer) >= size:
            yield bytes(buffer[:size])
            # Deleting from the front of a bytearray is amortised O(1): no copy of the rest.
            del buffer[:size]
    if buffer:
        yield bytes(buffer)


FILE_CHUNK = 256 * 1024


async def one_chunk(data: bytes) -> AsyncIterator[bytes]:
    """Bytes already in memory (a PNG, a .glb) as the chunks :meth:`AssetStore.put` streams."""
    yield data


async def file_chunks(path: Path, size: int = FILE_CHUNK) -> AsyncIterator[bytes]:
    """A local file as the chunks :meth:`AssetStore.put` streams (never whole in memory)."""
    async with await anyio.open_file(path, "rb") as source:
        while chunk := await source.read(size):
            yield chunk


async def download_to(store: AssetStore, key: str, path: Path) -> None:
    """Copy the object ``key`` into the local file ``path`` (for a decoder that needs a file);
    :class:`AssetNotFound` when it is gone."""
    async with await anyio.open_file(path, "wb") as out:
        async for chunk in store.read(key):
            await out.write(chunk)


CLEANUP_TIMEOUT = 30.0
_cleanups: set[asyncio.Task[None]] = set()


async def run_cleanup(cleanup: Callable[[], Awaitable[object]]) -> None:
    """Run ``cleanup`` to its end even when the caller is being cancelled.

    The work runs in its own task: a cancellation of the caller interrupts only the wait, never
    the clean-up (a half-written object must not stay behind because a client went away).
    """

    async def bounded() -> None:
        await asyncio.wait_for(cleanup(), CLEANUP_TIMEOUT)

    task = asyncio.create_task(bounded())
    _cleanups.add(task)
    task.add_done_callback(_cleanups.discard)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # the caller re-raises the error that made the clean-up necessary
        logger.warning("assets.cleanup_failed", extra={"error": repr(exc)})
