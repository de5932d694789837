"""The asset store on both backends: real NATS JetStream, a real S3 server, real Postgres."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import itertools
import logging
import os
import random
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import psutil
import pytest
from fastapi import APIRouter, FastAPI, Request, Response
from sqlalchemy import MetaData, Table, func, select, text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from storycore_shared.assets import (
    AssetNotFound,
    AssetRecord,
    Assets,
    AssetStore,
    NatsAssetStore,
    asset_store,
    asset_table,
)
from storycore_shared.assets.http import asset_response, content_disposition, file_route
from storycore_shared.assets.nats_store import SEQUENCE_HEADER, _SequenceIndex
from storycore_shared.assets.s3_store import S3AssetStore
from storycore_shared.config import ServiceSettings
from storycore_shared.db import sqlalchemy_url
from storycore_shared.errors import PayloadTooLarge, install_error_handlers
from storycore_shared.events.broker import Broker
from storycore_testkit.s3_server import S3Endpoint

logger = logging.getLogger(__name__)
MiB = 1024 * 1024


@dataclass
class Backend:
    name: str
    store: AssetStore
    leftovers: Callable[[], Awaitable[int]]  # messages / objects / uploads the store still holds


@pytest.fixture(params=["nats", "s3"])
async def backend(
    request: pytest.FixtureRequest, broker: Broker, s3_server: S3Endpoint, unique_name: str
) -> AsyncIterator[Backend]:
    if request.param == "nats":
        nats_store = NatsAssetStore(broker, unique_name)
        js = await broker.jetstream()

        async def nats_leftovers() -> int:
            info = await js.stream_info(f"OBJ_{unique_name}")
            return int(info.state.messages)

        yield Backend("nats", nats_store, nats_leftovers)
        await js.delete_object_store(unique_name)
        return
    s3_store = S3AssetStore(
        endpoint_url=s3_server.url,
        bucket=unique_name,
        prefix="svc",
        access_key_id=s3_server.access_key_id,
        secret_access_key=s3_server.secret_access_key,
        region=s3_server.region,
        part_size=5 * MiB,
    )
    client = await s3_store.client()
    await client.create_bucket(Bucket=unique_name)

    async def s3_leftovers() -> int:
        listed = await client.list_objects_v2(Bucket=unique_name)
        uploads = await client.list_multipart_uploads(Bucket=unique_name)
        return len(listed.get("Contents", [])) + len(uploads.get("Uploads", []))

    yield Backend("s3", s3_store, s3_leftovers)
    for item in (await client.list_objects_v2(Bucket=unique_name)).get("Contents", []):
        await client.delete_object(Bucket=unique_name, Key=item["Key"])
    await client.delete_bucket(Bucket=unique_name)
    await s3_store.close()


async def stream(data: bytes, sizes: Iterable[int]) -> AsyncIterator[bytes]:
    """``data`` in pieces of the given sizes, cycled."""
    at, pieces = 0, itertools.cycle(sizes)
    while at < len(data):
        step = next(pieces)
        yield data[at : at + step]
        at += step
        await asyncio.sleep(0)


ODD_SIZES = (1, 65_537, 333_333, 7, 1_048_573, 12_289)


async def read_all(store: AssetStore, key: str, start: int = 0, end: int | None = None) -> bytes:
    return b"".join([chunk async for chunk in store.read(key, start, end)])


async def test_round_trip_streams_hashes_and_reads_ranges(backend: Backend):
    store = backend.store
    data = random.randbytes(11 * MiB + 12_345)  # several NATS chunks, three S3 parts
    stored = await store.put("media/clip.bin", stream(data, ODD_SIZES), content_type="video/mp4")

    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert stored.size == len(data)
    assert await store.stat("media/clip.bin") == stored
    assert stored.etag == f'"{stored.sha256}"'
    assert await store.exists("media/clip.bin")
    assert await read_all(store, "media/clip.bin") == data
    chunk = 128 * 1024
    for start, end in [
        (0, 1),
        (chunk - 1, chunk + 1),  # across a NATS chunk boundary
        (5 * chunk + 17, 9 * chunk),
        (5 * MiB - 3, 5 * MiB + 3),  # across an S3 part boundary
        (len(data) - 10, None),
        (len(data) - 10, len(data) + 100),  # clipped at the end
        (len(data) + 5, None),  # past the end: nothing
        (100, 100),
    ]:
        assert await read_all(store, "media/clip.bin", start, end) == data[start:end], (start, end)


async def test_small_empty_replaced_and_deleted_objects(backend: Backend):
    store = backend.store
    empty = await store.put("empty", stream(b"", [1]), content_type="text/plain")
    assert (empty.size, empty.sha256) == (0, hashlib.sha256(b"").hexdigest())
    assert await store.stat("empty") == empty
    assert await read_all(store, "empty") == b""

    await store.put("doc.txt", stream(b"first version", [5]), content_type="text/plain")
    second = await store.put("doc.txt", stream(b"second", [2]), content_type="text/markdown")
    assert await store.stat("doc.txt") == second
    assert second.content_type == "text/markdown"
    assert await read_all(store, "doc.txt") == b"second"

    await store.delete("doc.txt")
    await store.delete("doc.txt")  # idempotent
    await store.delete("never-was")
    assert await store.stat("doc.txt") is None
    assert not await store.exists("doc.txt")
    with pytest.raises(AssetNotFound):
        await read_all(store, "doc.txt")
    await store.delete("empty")
    assert await backend.leftovers() == (0 if backend.name == "s3" else 2)  # 2 delete markers


async def test_over_limit_put_raises_413_and_keeps_nothing(backend: Backend):
    store = backend.store
    data = random.randbytes(7 * MiB)
    for limit in (1 * MiB, 6 * MiB):  # inside the first S3 part, and past it
        with pytest.raises(PayloadTooLarge) as caught:
            await store.put("big.bin", stream(data, ODD_SIZES), max_bytes=limit)
        assert caught.value.status == 413
        assert caught.value.code == "payload_too_large"
        assert await store.stat("big.bin") is None
        assert await backend.leftovers() == 0

    exact = await store.put("big.bin", stream(data, ODD_SIZES), max_bytes=len(data))
    assert exact.size == len(data)


async def test_failed_or_cancelled_put_keeps_nothing_and_the_previous_version(backend: Backend):
    store = backend.store
    await store.put("keep.bin", stream(b"the old content", [4]))

    async def failing() -> AsyncIterator[bytes]:
        yield random.randbytes(6 * MiB)
        raise RuntimeError("the client went away")

    with pytest.raises(RuntimeError):
        await store.put("keep.bin", failing())
    assert await read_all(store, "keep.bin") == b"the old content"

    started = asyncio.Event()

    async def stalling() -> AsyncIterator[bytes]:
        yield random.randbytes(6 * MiB)
        started.set()
        await asyncio.Event().wait()
        yield b""  # never reached

    for key in ("keep.bin", "new.bin"):
        started.clear()
        task = asyncio.create_task(store.put(key, stalling()))
        await asyncio.wait_for(started.wait(), 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert await store.stat("new.bin") is None
    assert await read_all(store, "keep.bin") == b"the old content"
    await store.delete("keep.bin")
    assert await backend.leftovers() == (0 if backend.name == "s3" else 1)  # 1 delete marker


# -- NATS specifics --------------------------------------------------------------------------------


@pytest.fixture
async def nats_store(broker: Broker, unique_name: str) -> AsyncIterator[NatsAssetStore]:
    yield NatsAssetStore(broker, unique_name, publish_window=4)
    await (await broker.jetstream()).delete_object_store(unique_name)


async def test_nats_ranges_of_objects_written_side_by_side(
    nats_store: NatsAssetStore, monkeypatch: pytest.MonkeyPatch
):
    """Concurrent puts interleave their chunks in the stream; ranges must still be exact."""
    chunk = nats_store.chunk_size
    blobs = {f"side/{n}": random.randbytes(40 * chunk + 999) for n in range(3)}
    for max_runs in (256, 2):  # an exact sequence index, then a sparse one
        monkeypatch.setattr(_SequenceIndex, "MAX_RUNS", max_runs)
        await asyncio.gather(
            *(nats_store.put(key, stream(data, [chunk // 3])) for key, data in blobs.items())
        )
        bucket = await nats_store._open()
        headers = [(await bucket.store.get_info(key)).headers for key in blobs]
        indexes = [h[SEQUENCE_HEADER][0] for h in headers]
        assert any(len(index.split()) > 2 for index in indexes), indexes  # they did interleave
        assert any(index.startswith("sparse") for index in indexes) == (max_runs == 2)
        for key, data in blobs.items():
            for start, end in [(0, None), (17 * chunk + 5, 31 * chunk), (len(data) - 1, None)]:
                assert await read_all(nats_store, key, start, end) == data[start:end]


async def test_nats_objects_are_interchangeable_with_nats_py(nats_store: NatsAssetStore):
    data = random.randbytes(3 * MiB + 7)
    await nats_store.put("ours", stream(data, ODD_SIZES))
    bucket = await nats_store._open()
    assert (await bucket.store.get("ours")).data == data  # nats.py checks the digest too

    await bucket.store.put("theirs", data)  # no sequence index: read from the first chunk
    stat = await nats_store.stat("theirs")
    assert stat is not None
    assert stat.sha256 == hashlib.sha256(data).hexdigest()
    for start, end in [(0, None), (MiB + 3, 2 * MiB), (len(data) - 5, None)]:
        assert await read_all(nats_store, "theirs", start, end) == data[start:end]


# -- HTTP -----------------------------------------------------------------------------------------


def download_app(store: AssetStore) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    router = APIRouter()

    @file_route(router, "/assets/{key:path}")
    async def get_asset(key: str, request: Request) -> Response:
        """Download an asset."""
        stored = await store.stat(key)
        if stored is None:
            raise AssetNotFound()
        return asset_response(request, store, stored, filename='Straße №1 "final".png')

    app.include_router(router)

    @app.get("/gone/{key:path}")
    async def get_deleted_meanwhile(key: str, request: Request) -> Response:
        """Found, then deleted before its bytes are read (a project's cascade, say)."""
        stored = await store.stat(key)
        assert stored is not None
        await store.delete(key)
        return asset_response(request, store, stored)

    @app.get("/records/{key:path}")
    async def get_record(key: str, request: Request) -> Response:
        """Download an asset through its (here made-up) row."""
        stored = await store.stat(key)
        assert stored is not None
        record = AssetRecord(
            key=key,
            owner_id=uuid.uuid4(),
            project_id=None,
            content_type=stored.content_type,
            size_bytes=stored.size,
            sha256=stored.sha256,
            filename="clip.png",
            created_at=datetime.now(UTC),
        )
        return asset_response(request, store, record, inline=False, max_age=60)

    return app


async def test_an_asset_deleted_before_its_bytes_are_read_is_a_404_problem(backend: Backend):
    """Not a "200" whose connection is then cut."""
    await backend.store.put("img/gone.png", stream(b"x" * 1000, [100]), content_type="image/png")
    transport = httpx.ASGITransport(app=download_app(backend.store))
    async with httpx.AsyncClient(transport=transport, base_url="http://assets") as http:
        answer = await http.get("/gone/img/gone.png")
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["code"] == "asset_not_found"


async def test_a_file_route_answers_head_with_the_files_headers_and_no_bytes(backend: Backend):
    """``HEAD`` on a file route: what ``GET`` would say of the file, without it (FastAPI's own
    ``GET`` route answers a ``HEAD`` 405). The OpenAPI document lists the ``GET`` only."""
    data = os.urandom(3000)
    await backend.store.put("img/h.png", stream(data, [1000]), content_type="image/png")
    app = download_app(backend.store)
    assert list(app.openapi()["paths"]["/assets/{key}"]) == ["get"]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://assets") as http:
        got = await http.get("/assets/img/h.png")
        head = await http.head("/assets/img/h.png")
        missing = await http.head("/assets/img/none.png")
        not_a_file = await http.head("/records/img/h.png")  # a plain GET route
    assert got.content == data
    assert head.status_code == 200
    assert head.content == b""
    for name in ("content-length", "content-type", "etag", "accept-ranges", "content-disposition"):
        assert head.headers[name] == got.headers[name], name
    assert head.headers["content-length"] == str(len(data))
    assert missing.status_code == 404
    assert not_a_file.status_code == 405


async def test_downloads_honour_range_etag_and_disposition(backend: Backend):
    data = random.randbytes(1 * MiB + 999)
    size = len(data)
    stored = await backend.store.put("img/a.png", stream(data, ODD_SIZES), content_type="image/png")
    transport = httpx.ASGITransport(app=download_app(backend.store))
    async with httpx.AsyncClient(transport=transport, base_url="http://assets") as http:
        whole = await http.get("/assets/img/a.png")
        assert whole.status_code == 200
        assert whole.content == data
        assert whole.headers["content-length"] == str(size)
        assert whole.headers["content-type"] == "image/png"
        assert whole.headers["accept-ranges"] == "bytes"
        assert whole.headers["etag"] == f'"{stored.sha256}"'
        assert whole.headers["cache-control"].startswith("private, max-age=")
        assert whole.headers["content-disposition"] == (
            'inline; filename="Stra_e _1 _final_.png"; '
            "filename*=UTF-8''Stra%C3%9Fe%20%E2%84%961%20%22final%22.png"
        )

        for header, first, last in [
            ("bytes=0-99", 0, 99),
            ("bytes=131000-263000", 131_000, 263_000),
            ("bytes=1000000-", 1_000_000, size - 1),
            ("bytes=-500", size - 500, size - 1),
            ("bytes=-99999999", 0, size - 1),
            ("bytes=5-99999999", 5, size - 1),
        ]:
            part = await http.get("/assets/img/a.png", headers={"Range": header})
            assert part.status_code == 206, header
            assert part.content == data[first : last + 1], header
            assert part.headers["content-range"] == f"bytes {first}-{last}/{size}"
            assert part.headers["content-length"] == str(last - first + 1)

        for unsatisfiable in (f"bytes={size}-", f"bytes={size + 10}-{size + 20}", "bytes=-0"):
            refused = await http.get("/assets/img/a.png", headers={"Range": unsatisfiable})
            assert refused.status_code == 416, unsatisfiable
            assert refused.headers["content-range"] == f"bytes */{size}"
            assert refused.headers["content-type"] == "application/problem+json"
            assert refused.json()["code"] == "range_not_satisfiable"

        for ignored in ("bytes=0-1,5-6", "bytes=10-5", "items=0-5"):
            answer = await http.get("/assets/img/a.png", headers={"Range": ignored})
            assert answer.status_code == 200, ignored
            assert answer.content == data

        etag = whole.headers["etag"]
        for match in (etag, f'"other", W/{etag}', "*"):
            cached = await http.get("/assets/img/a.png", headers={"If-None-Match": match})
            assert cached.status_code == 304, match
            assert cached.content == b""
            assert cached.headers["etag"] == etag
        assert (
            await http.get("/assets/img/a.png", headers={"If-None-Match": '"x"'})
        ).status_code == 200

        same = await http.get("/assets/img/a.png", headers={"Range": "bytes=0-9", "If-Range": etag})
        assert same.status_code == 206
        changed = await http.get(
            "/assets/img/a.png", headers={"Range": "bytes=0-9", "If-Range": '"old"'}
        )
        assert changed.status_code == 200
        assert changed.content == data

        head = await http.head("/assets/img/a.png", headers={"Range": "bytes=10-19"})
        assert head.status_code == 206
        assert head.headers["content-length"] == "10"
        assert head.content == b""

        missing = await http.get("/assets/img/none.png")
        assert missing.status_code == 404
        assert missing.json()["code"] == "asset_not_found"

        via_record = await http.get("/records/img/a.png", headers={"Range": "bytes=-3"})
        assert via_record.status_code == 206
        assert via_record.content == data[-3:]
        assert via_record.headers["content-disposition"] == (
            "attachment; filename=\"clip.png\"; filename*=UTF-8''clip.png"
        )
        assert via_record.headers["cache-control"] == "private, max-age=60"
        assert via_record.headers["etag"] == etag


def test_content_disposition_plain_and_attachment():
    assert content_disposition(None) == "inline"
    assert content_disposition("a.pdf", inline=False) == (
        "attachment; filename=\"a.pdf\"; filename*=UTF-8''a.pdf"
    )
    assert "\r" not in content_disposition("evil\r\nSet-Cookie: x=1")
    assert content_disposition("../../etc/passwd").startswith('inline; filename=".._.._etc_passwd"')


# -- memory ---------------------------------------------------------------------------------------


class PeakRss:
    """The process's resident memory, sampled every few milliseconds in a thread."""

    def __init__(self) -> None:
        self.process = psutil.Process()
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __enter__(self) -> PeakRss:
        gc.collect()
        self.baseline = self.process.memory_info().rss
        self.peak = self.baseline
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth(self) -> int:
        return self.peak - self.baseline


async def test_300_mb_in_and_out_with_bounded_memory(backend: Backend):
    store, total, block = backend.store, 300 * MiB, os.urandom(MiB)
    sent = hashlib.sha256()

    async def generated() -> AsyncIterator[bytes]:
        for n in range(total // MiB):  # never more than one MiB of it in memory
            chunk = n.to_bytes(8, "big") + block[8:]
            sent.update(chunk)
            yield chunk

    with PeakRss() as rss:
        began = time.monotonic()
        stored = await store.put("big/video.mp4", generated(), content_type="video/mp4")
        wrote = time.monotonic() - began
        received, size = hashlib.sha256(), 0
        async for chunk in store.read("big/video.mp4"):
            received.update(chunk)
            size += len(chunk)
        read = time.monotonic() - began - wrote
    logger.info(
        "assets.memory_test backend=%s write_s=%.1f read_s=%.1f rss_growth_mib=%.1f",
        backend.name,
        wrote,
        read,
        rss.growth / MiB,
    )
    assert stored.size == size == total
    assert stored.sha256 == sent.hexdigest() == received.hexdigest()
    assert rss.growth < 64 * MiB, f"{backend.name}: RSS grew {rss.growth / MiB:.1f} MiB"


# -- the asset table ------------------------------------------------------------------------------


@dataclass
class Db:
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    table: Table


@pytest.fixture
async def db(postgres_admin_url: str, unique_name: str) -> AsyncIterator[Db]:
    metadata = MetaData(schema=unique_name)
    table = asset_table(metadata)
    engine = create_async_engine(sqlalchemy_url(postgres_admin_url))
    async with engine.begin() as conn:
        await conn.execute(text(f'create schema "{unique_name}"'))
        await conn.run_sync(metadata.create_all)
    yield Db(engine, async_sessionmaker(engine, expire_on_commit=False), table)
    async with engine.begin() as conn:
        await conn.execute(text(f'drop schema "{unique_name}" cascade'))
    await engine.dispose()


async def test_project_delete_removes_its_assets_only_and_twice_is_harmless(
    backend: Backend, db: Db
):
    assets = Assets(backend.store, db.table, max_bytes=1 * MiB)
    owner, doomed, kept = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    async with db.sessionmaker.begin() as session:
        for n in range(3):
            record = await assets.save(
                session,
                key=f"{doomed}/{n}.png",
                chunks=stream(random.randbytes(1000 + n), [300]),
                content_type="image/png",
                owner_id=owner,
                project_id=doomed,
                filename=f"frame {n}.png",
            )
            assert record.size_bytes == 1000 + n
        other = await assets.save(
            session,
            key=f"{kept}/0.wav",
            chunks=stream(b"RIFF", [4]),
            owner_id=owner,
            content_type="audio/wav",
            project_id=kept,
        )
        loose = await assets.save(
            session, key="loose.bin", chunks=stream(b"x", [1]), owner_id=owner
        )
    stat = await backend.store.stat(record.key)
    assert stat is not None
    assert stat.sha256 == record.sha256
    assert record.created_at.tzinfo is not None

    async with db.sessionmaker() as session:
        assert await assets.get(session, other.key) == other
        assert await assets.get(session, "nope") is None

    for expected in (3, 0):  # a redelivered project.deleted finds nothing left to do
        async with db.sessionmaker.begin() as session:
            assert await assets.delete_project(session, doomed) == expected
    for n in range(3):
        assert await backend.store.stat(f"{doomed}/{n}.png") is None
    async with db.sessionmaker() as session:
        keys = set(await session.scalars(select(db.table.c.key)))
        assert keys == {other.key, loose.key}
        assert await backend.store.exists(other.key)
        assert await backend.store.exists(loose.key)

    async with db.sessionmaker.begin() as session:
        assert await assets.delete(session, other.key)
        assert not await assets.delete(session, other.key)
    assert not await backend.store.exists(other.key)


async def test_save_over_the_limit_leaves_no_row_and_no_bytes(backend: Backend, db: Db):
    assets = Assets(backend.store, db.table, max_bytes=1000)
    async with db.sessionmaker() as session:
        with pytest.raises(PayloadTooLarge):
            await assets.save(
                session, key="too/big", chunks=stream(b"x" * 1001, [100]), owner_id=uuid.uuid4()
            )
        count = await session.scalar(select(func.count()).select_from(db.table))
    assert count == 0
    assert await backend.store.stat("too/big") is None


async def test_save_replaces_the_row_of_the_same_key(backend: Backend, db: Db):
    assets = Assets(backend.store, db.table)
    owner = uuid.uuid4()
    async with db.sessionmaker.begin() as session:
        first = await assets.save(session, key="k", chunks=stream(b"one", [3]), owner_id=owner)
    async with db.sessionmaker.begin() as session:
        second = await assets.save(
            session, key="k", chunks=stream(b"second", [3]), owner_id=owner, filename="s.txt"
        )
    assert second.created_at == first.created_at
    assert (second.size_bytes, second.filename) == (6, "s.txt")
    assert await read_all(backend.store, "k") == b"second"


# -- settings and factory -------------------------------------------------------------------------


class _Settings(ServiceSettings):
    NEEDS_JWKS = False


def test_s3_backend_needs_its_settings():
    base = {"DATABASE_URL": "postgresql://x", "NATS_URL": "nats://x"}
    with pytest.raises(ValueError, match="S3_BUCKET"):
        _Settings(**base, ASSET_BACKEND="s3", S3_ENDPOINT_URL="http://s3")
    settings = _Settings(
        **base,
        ASSET_BACKEND="s3",
        S3_ENDPOINT_URL="http://s3",
        S3_BUCKET="media",
        S3_ACCESS_KEY_ID="id",
        S3_SECRET_ACCESS_KEY="secret",
    )
    store = asset_store(settings, Broker("nats://x", name="t"), "shots")
    assert isinstance(store, S3AssetStore)
    assert (store.bucket, store.prefix) == ("media", "shots")
    nats = asset_store(_Settings(**base), Broker("nats://x", name="t"), "shots")
    assert isinstance(nats, NatsAssetStore)
    assert nats.bucket == "shots"
    assert "secret" not in repr(settings)


async def test_s3_prefixes_keep_services_apart(s3_server: S3Endpoint, unique_name: str):
    def store(prefix: str) -> S3AssetStore:
        return S3AssetStore(
            endpoint_url=s3_server.url,
            bucket=unique_name,
            prefix=prefix,
            access_key_id=s3_server.access_key_id,
            secret_access_key=s3_server.secret_access_key,
        )

    shots, audio = store("shots"), store("audio")
    client = await shots.client()
    await client.create_bucket(Bucket=unique_name)
    try:
        await shots.put("a", stream(b"shots", [5]))
        assert await audio.stat("a") is None
        listed = await client.list_objects_v2(Bucket=unique_name)
        assert [item["Key"] for item in listed["Contents"]] == ["shots/a"]
        await shots.delete("a")
        await client.delete_bucket(Bucket=unique_name)
    finally:
        await shots.close()
        await audio.close()
