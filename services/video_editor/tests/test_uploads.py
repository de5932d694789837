"""Streamed multipart uploads: bytes, hash, limits, clean-up on every failure, memory."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import psutil
import pytest

from video_editor.uploads import (
    HEADERS_ALLOWANCE,
    ReceivedUpload,
    UploadInvalid,
    UploadTooLarge,
    receive_upload,
)

BOUNDARY = "----StoryCoreBoundary7MA4YWxkTrZu0gW"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def part(name: str, data: bytes, *, filename: str | None = None, ctype: str | None = None) -> bytes:
    disposition = f'Content-Disposition: form-data; name="{name}"'
    if filename is not None:
        disposition += f'; filename="{filename}"'
    headers = disposition + "\r\n" + (f"Content-Type: {ctype}\r\n" if ctype else "") + "\r\n"
    return f"--{BOUNDARY}\r\n".encode() + headers.encode() + data + b"\r\n"


def body(*parts: bytes) -> bytes:
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


class Source:
    """An async byte stream that counts the chunks pulled from it."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self.chunks = iter(chunks)
        self.pulled = 0

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        await asyncio.sleep(0)
        try:
            chunk = next(self.chunks)
        except StopIteration:
            raise StopAsyncIteration from None
        self.pulled += 1
        return chunk


def files(folder: Path) -> list[Path]:
    """What is in the upload folder (a plain function: the listing is blocking)."""
    return sorted(folder.iterdir())


def sliced(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("chunk_size", [7, 64 * 1024])
async def test_the_file_part_is_written_whole(tmp_path: Path, chunk_size: int) -> None:
    # bytes that look like boundaries and CRLFs inside the payload must come through untouched
    payload = os.urandom(150_000) + f"\r\n--{BOUNDARY[:-1]}\r\n".encode() + os.urandom(1000)
    data = body(
        part("note", b"hello"),
        part("file", payload, filename="clip one.mp4", ctype="video/mp4"),
        part("after", b"x"),
    )
    source = Source(sliced(data, chunk_size))

    upload = await receive_upload(source, CONTENT_TYPE, directory=tmp_path, max_bytes=10**6)

    assert isinstance(upload, ReceivedUpload)
    assert upload.path.parent == tmp_path
    assert upload.path.read_bytes() == payload
    assert upload.size == len(payload)
    assert upload.sha256 == hashlib.sha256(payload).hexdigest()
    assert upload.filename == "clip one.mp4"
    assert upload.declared_type == "video/mp4"
    assert files(tmp_path) == [upload.path]


async def test_another_field_name_and_an_empty_file(tmp_path: Path) -> None:
    data = body(part("media", b"", filename="empty.bin"))
    upload = await receive_upload(
        Source([data]), CONTENT_TYPE, directory=tmp_path, max_bytes=10, field="media"
    )
    assert upload.size == 0
    assert upload.sha256 == hashlib.sha256(b"").hexdigest()
    assert upload.filename == "empty.bin"
    assert upload.declared_type is None


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("../../etc/passwd", "passwd"),
        ("été ü.mp4", "été ü.mp4"),
        ("dir/sub/clip.webm", "clip.webm"),
        ("tab\there.wav", "tabhere.wav"),
        ("../", None),
    ],
)
async def test_the_filename_loses_its_directories(
    tmp_path: Path, sent: str, kept: str | None
) -> None:
    data = body(part("file", b"abc", filename=sent))
    upload = await receive_upload(Source([data]), CONTENT_TYPE, directory=tmp_path, max_bytes=10)
    assert upload.filename == kept


async def test_exactly_the_limit_is_accepted(tmp_path: Path) -> None:
    payload = os.urandom(4096)
    data = body(part("file", payload, filename="a.bin", ctype="application/octet-stream"))
    upload = await receive_upload(
        Source(sliced(data, 1000)), CONTENT_TYPE, directory=tmp_path, max_bytes=4096
    )
    assert upload.size == 4096


async def test_past_the_limit_the_stream_is_cut_and_nothing_kept(tmp_path: Path) -> None:
    payload = os.urandom(2 * 1024 * 1024)
    chunks = sliced(body(part("file", payload, filename="big.mp4")), 64 * 1024)
    source = Source(chunks)

    with pytest.raises(UploadTooLarge) as caught:
        await receive_upload(source, CONTENT_TYPE, directory=tmp_path, max_bytes=256 * 1024)

    assert caught.value.limit == 256 * 1024
    assert files(tmp_path) == []
    # 256 KiB is 4-5 chunks of 64 KiB: the rest of the 33 chunks were never read
    assert source.pulled <= 6
    assert source.pulled < len(chunks)


async def test_a_huge_other_field_counts_against_the_body_limit(tmp_path: Path) -> None:
    data = body(part("note", b"x" * (300 * 1024)), part("file", b"small", filename="a.txt"))
    chunks = sliced(data, 16 * 1024)
    source = Source(chunks)
    with pytest.raises(UploadTooLarge):
        await receive_upload(source, CONTENT_TYPE, directory=tmp_path, max_bytes=100 * 1024)
    assert files(tmp_path) == []
    assert source.pulled * 16 * 1024 <= 100 * 1024 + HEADERS_ALLOWANCE + 16 * 1024
    assert source.pulled < len(chunks)


async def test_a_stream_failing_midway_leaves_no_file(tmp_path: Path) -> None:
    data = body(part("file", os.urandom(3 * 1024 * 1024), filename="a.bin"))

    async def failing() -> AsyncIterator[bytes]:
        for index, chunk in enumerate(sliced(data, 64 * 1024)):
            if index == 25:  # past the first 1 MiB flush: the file exists on disk by now
                raise ConnectionResetError("client went away")
            yield chunk

    with pytest.raises(ConnectionResetError):
        await receive_upload(failing(), CONTENT_TYPE, directory=tmp_path, max_bytes=10**8)
    assert files(tmp_path) == []


async def test_cancellation_leaves_no_file(tmp_path: Path) -> None:
    started = asyncio.Event()

    async def stalled() -> AsyncIterator[bytes]:
        yield f"--{BOUNDARY}\r\n".encode()
        yield b'Content-Disposition: form-data; name="file"; filename="a"\r\n\r\n'
        yield os.urandom(2 * 1024 * 1024)
        started.set()
        await asyncio.Event().wait()  # the client stalls forever
        yield b""

    task = asyncio.create_task(
        receive_upload(stalled(), CONTENT_TYPE, directory=tmp_path, max_bytes=10**8)
    )
    await asyncio.wait_for(started.wait(), 5)
    assert len(files(tmp_path)) == 1  # the temporary file, being written
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert files(tmp_path) == []


@pytest.mark.parametrize(
    ("content_type", "message"),
    [
        (None, "missing Content-Type"),
        ("", "missing Content-Type"),
        ("application/json", "not multipart/form-data"),
        ("multipart/form-data", "Boundary not found"),
        ("multipart/form-data; charset=utf-8", "Boundary not found"),
    ],
)
async def test_bad_content_types_are_refused(
    tmp_path: Path, content_type: str | None, message: str
) -> None:
    data = body(part("file", b"abc", filename="a"))
    with pytest.raises(UploadInvalid, match=message):
        await receive_upload(Source([data]), content_type, directory=tmp_path, max_bytes=100)
    assert files(tmp_path) == []


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (body(part("note", b"no file here")), "no 'file' part"),
        (b"", "no 'file' part"),
        (b"this is not multipart at all, no delimiter anywhere", "malformed multipart"),
        (part("file", b"abc" * 100, filename="a")[:-20], "ended before the file part"),
        (
            body(part("file", b"one", filename="a"), part("file", b"two", filename="b")),
            "more than one file part",
        ),
    ],
    ids=["no-file-part", "empty-body", "garbage", "truncated", "two-files"],
)
async def test_malformed_bodies_are_refused(tmp_path: Path, data: bytes, message: str) -> None:
    with pytest.raises(UploadInvalid, match=message):
        await receive_upload(
            Source(sliced(data, 11) or [b""]), CONTENT_TYPE, directory=tmp_path, max_bytes=10**6
        )
    assert files(tmp_path) == []


async def test_fifty_megabytes_stream_through_in_bounded_memory(tmp_path: Path) -> None:
    block = os.urandom(64 * 1024)
    count = 800  # 50 MiB
    expected = hashlib.sha256()
    process = psutil.Process()
    baseline = process.memory_info().rss
    peak = baseline

    def chunks() -> Iterable[bytes]:
        nonlocal peak
        yield part("file", b"", filename="big.webm", ctype="video/webm")[:-2]
        for index in range(count):
            expected.update(block)
            if index % 32 == 0:
                peak = max(peak, process.memory_info().rss)
            yield block
        yield f"\r\n--{BOUNDARY}--\r\n".encode()

    upload = await receive_upload(
        Source(chunks()), CONTENT_TYPE, directory=tmp_path, max_bytes=60 * 1024 * 1024
    )
    peak = max(peak, process.memory_info().rss)

    assert upload.size == count * len(block)
    assert upload.path.stat().st_size == upload.size
    assert upload.sha256 == expected.hexdigest()
    assert peak - baseline < 20 * 1024 * 1024, f"RSS grew by {(peak - baseline) / 2**20:.1f} MiB"
