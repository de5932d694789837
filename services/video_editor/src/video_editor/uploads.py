"""Streamed multipart uploads: one file part written to a temporary file, bounded in size.

The body is parsed incrementally (streaming-form-data) as chunks arrive; the file's bytes go to
a temporary file in ``directory`` through a small buffer (at most ``_FLUSH_BYTES`` plus one
chunk in memory) that is written and hashed in a worker thread. Past ``max_bytes`` the stream
is not read any further. Whatever goes wrong, the temporary file is removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import anyio.to_thread
from streaming_form_data import ParseFailedException, StreamingFormDataParser
from streaming_form_data.targets import BaseTarget

__all__ = ["ReceivedUpload", "UploadInvalid", "UploadTooLarge", "receive_upload"]

HEADERS_ALLOWANCE = 64 * 1024
"""Bytes of the body allowed beyond ``max_bytes`` for the boundaries, part headers and fields."""

_FLUSH_BYTES = 1024 * 1024


class UploadTooLarge(Exception):
    """The file (or the whole body) passed the limit; the caller answers 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the upload is larger than the limit of {limit} bytes")
        self.limit = limit


class UploadInvalid(Exception):
    """Not a usable multipart/form-data body; the caller answers 422."""


@dataclass
class ReceivedUpload:
    """A file received whole: where it is and what the client said about it.

    ``filename`` is the client's, reduced to its last path component (still untrusted);
    ``declared_type`` is the part's Content-Type as sent, never to be trusted (see media.sniff).
    """

    path: Path
    filename: str | None
    declared_type: str | None
    size: int
    sha256: str


class _FileTarget(BaseTarget):  # type: ignore[misc]  # streaming_form_data has no type hints
    """Collects the file part's bytes in a small buffer the receiver flushes to disk."""

    def __init__(self) -> None:
        super().__init__()
        self.buffer = bytearray()
        self.size = 0
        self.started = False
        self.finished = False

    def on_start(self) -> None:
        if self.started:
            raise UploadInvalid("more than one file part in the body")
        self.started = True

    def on_data_received(self, chunk: bytes) -> None:
        self.size += len(chunk)
        self.buffer += chunk

    def on_finish(self) -> None:
        self.finished = True


def _clean_filename(name: str | None) -> str | None:
    """The client's file name without any directory part or control characters (None if empty)."""
    if name is None:
        return None
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(c for c in base if c.isprintable()).strip()[:255]
    return cleaned or None


def _write(file: IO[bytes], digest: hashlib._Hash, data: bytes) -> None:
    digest.update(data)
    file.write(data)


def _parser(content_type: str | None) -> StreamingFormDataParser:
    if not content_type:
        raise UploadInvalid("missing Content-Type: expected multipart/form-data with a boundary")
    try:
        return StreamingFormDataParser({"Content-Type": content_type})
    except ParseFailedException as exc:
        raise UploadInvalid(f"invalid Content-Type for an upload ({exc})") from exc


async def receive_upload(
    stream: AsyncIterator[bytes],
    content_type: str | None,
    *,
    directory: Path,
    max_bytes: int,
    field: str = "file",
) -> ReceivedUpload:
    """Receive the ``field`` part of a multipart/form-data body into a new file in ``directory``.

    Raises UploadTooLarge past ``max_bytes`` of file (or ``max_bytes`` + 64 KiB of body), the
    rest of the stream left unread; UploadInvalid for a malformed body or no ``field`` part.
    The caller owns (and eventually deletes) the returned file; the stream stays the caller's
    (it is not closed).
    """
    parser = _parser(content_type)
    target = _FileTarget()
    parser.register(field, target)
    body_limit = max_bytes + HEADERS_ALLOWANCE
    digest = hashlib.sha256()
    fd, name = tempfile.mkstemp(prefix="upload-", suffix=".part", dir=directory)
    path = Path(name)
    kept = False
    try:
        with os.fdopen(fd, "wb") as file:
            received = 0
            async for chunk in stream:
                received += len(chunk)
                if received > body_limit:
                    raise UploadTooLarge(max_bytes)
                try:
                    parser.data_received(chunk)
                except ParseFailedException as exc:
                    raise UploadInvalid(f"malformed multipart body ({exc})") from exc
                if target.size > max_bytes:
                    raise UploadTooLarge(max_bytes)
                if len(target.buffer) >= _FLUSH_BYTES:
                    data, target.buffer = bytes(target.buffer), bytearray()
                    await anyio.to_thread.run_sync(_write, file, digest, data)
            if not target.started:
                raise UploadInvalid(f"no '{field}' part in the multipart body")
            if not target.finished:
                raise UploadInvalid("the multipart body ended before the file part was complete")
            data, target.buffer = bytes(target.buffer), bytearray()
            await anyio.to_thread.run_sync(_write, file, digest, data)
        kept = True
        return ReceivedUpload(
            path=path,
            filename=_clean_filename(target.multipart_filename),
            declared_type=target.multipart_content_type,
            size=target.size,
            sha256=digest.hexdigest(),
        )
    finally:
        if not kept:  # synchronously: an await here could itself be cancelled
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
