"""The asset store on the NATS JetStream object store: one bucket per owning service.

Objects are stored in the object store's own layout (chunks on ``$O.<bucket>.C.<nuid>``, the
metadata on ``$O.<bucket>.M.<name>``), so any NATS client and the ``nats object`` CLI can read
what this store writes. Two things are done here rather than by nats.py's ``ObjectStore``:

- ``put`` publishes the chunks itself, straight from the async stream, with a window of
  unacknowledged publishes: nats.py's ``put`` wants a sync file object and waits for each
  chunk's ack in turn (16 s for 300 MB on a local server that fsyncs, against under 4 s here).
- ``read`` fetches chunks one by one with direct gets (``next_by_subj``), a few requests ahead,
  instead of nats.py's ``get``, which either buffers the whole object in memory or needs a sync
  file. A direct get makes no consumer on the server, so the many short ``Range`` requests of
  a ``<video>`` element cost the server nothing to set up. To start a range in the middle of an
  object without fetching what comes before it, ``put`` records where its chunks landed in the
  stream (the sequence of each run of consecutive chunks) in the object's headers.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import contextlib
import json
import logging
import math
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from nats.js import api
from nats.js.client import JetStreamContext
from nats.js.errors import BadRequestError, BucketNotFoundError, NotFoundError
from nats.js.kv import MSG_ROLLUP_SUBJECT
from nats.js.object_store import (
    OBJ_CHUNKS_PRE_TEMPLATE,
    OBJ_DIGEST_TYPE,
    OBJ_META_PRE_TEMPLATE,
    OBJ_STREAM_TEMPLATE,
    VALID_BUCKET_RE,
    ObjectStore,
)
from nats.nuid import NUID

from storycore_shared.assets.base import (
    DEFAULT_CONTENT_TYPE,
    AssetNotFound,
    AssetStore,
    Digest,
    StoredObject,
    check_key,
    check_range,
    fixed_chunks,
    run_cleanup,
)
from storycore_shared.events.broker import Broker

logger = logging.getLogger(__name__)

CONTENT_TYPE_HEADER = "Content-Type"
SEQUENCE_HEADER = "Storycore-Chunk-Seqs"
DEFAULT_CHUNK_SIZE = 128 * 1024


class BucketNotProvisioned(RuntimeError):
    """The bucket is missing and this identity may not create it: provisioning has not run."""


async def provision_bucket(
    js: JetStreamContext, bucket: str, *, replicas: int = 1, update: bool = False
) -> ObjectStore:
    """The bucket, created when it is missing (the provisioning step's job). With ``update``,
    an existing bucket is brought to ``replicas`` copies (its stream, ``OBJ_<bucket>``)."""
    try:
        store = await js.object_store(bucket)
    except BucketNotFoundError:
        pass
    else:
        if update:
            info = await js.stream_info(f"OBJ_{bucket}")
            if info.config.num_replicas != replicas:
                await js.update_stream(replace(info.config, num_replicas=replicas))
        return store
    config = api.ObjectStoreConfig(storage=api.StorageType.FILE, replicas=replicas)
    try:
        return await js.create_object_store(bucket, config=config)
    except BadRequestError:  # another process created it first
        return await js.object_store(bucket)


@dataclass(frozen=True)
class _Bucket:
    js: JetStreamContext
    store: ObjectStore
    stream: str
    direct: bool


class NatsAssetStore(AssetStore):
    """Assets in the JetStream object store bucket ``bucket``.

    The bucket is looked up, never changed: on the suite's bus the provisioning step creates it
    (:mod:`storycore_shared.events.provision`) and a service may only use it. On a bus without
    permissions (the kit's tests) a missing bucket is created on first use.

    ::

        store = NatsAssetStore(broker, "shots")
        stored = await store.put("k1.png", chunks, content_type="image/png")
        assert stored.size == (await store.stat("k1.png")).size

    ``publish_window`` chunks may be in flight unacknowledged while writing and ``read_ahead``
    while reading, so memory stays near ``chunk_size`` times the larger of the two (4 MiB).
    """

    def __init__(
        self,
        broker: Broker,
        bucket: str,
        *,
        replicas: int = 1,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        publish_window: int = 32,
        read_ahead: int = 8,
        ack_timeout: float = 30.0,
    ) -> None:
        if not VALID_BUCKET_RE.match(bucket):
            raise ValueError(f"not a valid object store bucket name: {bucket!r}")
        self.broker = broker
        self.bucket = bucket
        self.replicas = replicas
        self.chunk_size = chunk_size
        self.publish_window = publish_window
        self.read_ahead = read_ahead
        self.ack_timeout = ack_timeout
        self._bucket: _Bucket | None = None
        self._lock = asyncio.Lock()

    async def _open(self) -> _Bucket:
        if self._bucket is not None:
            return self._bucket
        async with self._lock:
            if self._bucket is None:
                js = await self.broker.jetstream()
                try:
                    store = await js.object_store(self.bucket)
                except BucketNotFoundError:
                    store = await self._create(js)
                stream = OBJ_STREAM_TEMPLATE.format(bucket=self.bucket)
                info = await js.stream_info(stream)
                self._bucket = _Bucket(js, store, stream, bool(info.config.allow_direct))
            return self._bucket

    async def _create(self, js: JetStreamContext) -> ObjectStore:
        """Only on a bus without permissions (the kit's tests): on the suite's bus the bucket is
        the provisioning step's, and this identity may only look it up and use it."""
        try:
            return await provision_bucket(js, self.bucket, replicas=self.replicas)
        except TimeoutError as exc:  # a permission violation is an error line, then silence
            raise BucketNotProvisioned(
                f"object store bucket {self.bucket} does not exist and this identity may not "
                "create it: provision the bus first (python -m storycore_shared.events.provision)"
            ) from exc

    async def _info(self, bucket: _Bucket, key: str) -> Any:
        try:
            return await bucket.store.get_info(key)
        except NotFoundError:
            return None

    async def put(
        self,
        key: str,
        chunks: AsyncIterable[bytes],
        *,
        content_type: str = DEFAULT_CONTENT_TYPE,
        max_bytes: int | None = None,
    ) -> StoredObject:
        check_key(key)
        bucket = await self._open()
        js = bucket.js
        previous = await self._info(bucket, key)
        nuid = NUID().next().decode()
        chunk_subject = OBJ_CHUNKS_PRE_TEMPLATE.format(bucket=self.bucket, obj=nuid)
        digest = Digest(max_bytes)
        sequences = _SequenceIndex()
        acks: deque[asyncio.Future[Any]] = deque()

        async def next_ack() -> None:
            # Shielded, so that on cancellation the ack stays pending for undo() to wait on.
            ack = await asyncio.wait_for(asyncio.shield(acks[0]), self.ack_timeout)
            acks.popleft()
            sequences.add(ack.seq)

        try:
            async for piece in fixed_chunks(chunks, self.chunk_size):
                digest.update(piece)
                acks.append(await js.publish_async(chunk_subject, piece))
                if len(acks) >= self.publish_window:
                    await next_ack()
            while acks:
                await next_ack()
            info = api.ObjectInfo(
                name=key,
                bucket=self.bucket,
                nuid=nuid,
                size=digest.size,
                chunks=sequences.count,
                mtime=datetime.now(UTC).isoformat(),
                digest=OBJ_DIGEST_TYPE + _b64(bytes.fromhex(digest.sha256)),
                headers={
                    CONTENT_TYPE_HEADER: [content_type],
                    SEQUENCE_HEADER: [sequences.encode()],
                },
                options=api.ObjectMetaOptions(max_chunk_size=self.chunk_size),
            )
            await self._publish_meta(bucket, key, info)
        except BaseException:
            unacked = list(acks)

            async def undo() -> None:
                # A purge can overtake publishes still in flight: let them land first.
                if unacked:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(
                            asyncio.gather(*unacked, return_exceptions=True), self.ack_timeout
                        )
                current = await self._info(bucket, key)
                if current is not None and current.nuid == nuid:
                    # The metadata landed although its ack did not reach us: put back what the
                    # key held before (its chunks are still there) or mark it deleted.
                    if previous is not None:
                        await self._publish_meta(bucket, key, previous)
                    else:
                        await bucket.store.delete(key)
                await js.purge_stream(bucket.stream, subject=chunk_subject)

            await run_cleanup(undo)
            raise
        if previous is not None and previous.nuid != nuid:
            old = OBJ_CHUNKS_PRE_TEMPLATE.format(bucket=self.bucket, obj=previous.nuid)
            await run_cleanup(lambda: js.purge_stream(bucket.stream, subject=old))
        return StoredObject(key, digest.size, digest.sha256, content_type)

    async def _publish_meta(self, bucket: _Bucket, key: str, info: Any) -> None:
        subject = OBJ_META_PRE_TEMPLATE.format(bucket=self.bucket, obj=_b64(key.encode()))
        await bucket.js.publish(
            subject,
            json.dumps(info.as_dict()).encode(),
            headers={api.Header.ROLLUP: MSG_ROLLUP_SUBJECT},
        )

    async def stat(self, key: str) -> StoredObject | None:
        check_key(key)
        info = await self._info(await self._open(), key)
        return None if info is None else _stored(key, info)

    async def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        check_key(key)
        bucket = await self._open()
        info = await self._info(bucket, key)
        if info is None:
            raise AssetNotFound(f"no asset {key!r}")
        lo, hi = check_range(info.size or 0, start, end)
        if lo >= hi:
            return
        subject = OBJ_CHUNKS_PRE_TEMPLATE.format(bucket=self.bucket, obj=info.nuid)
        located = _SequenceIndex.locate(_header(info, SEQUENCE_HEADER), lo // self._chunk(info))
        if located is None:  # written by another client: chunk sizes unknown, read from the top
            first_chunk, seq, skip = 0, 1, 0
        else:
            first_chunk, (seq, skip) = lo // self._chunk(info), located
        offset = first_chunk * self._chunk(info)
        count = (info.chunks or 0) - first_chunk
        async with contextlib.aclosing(self._chunks(bucket, subject, seq, skip, count)) as it:
            async for data in it:
                piece = data[max(lo - offset, 0) : hi - offset]
                offset += len(data)
                if piece:
                    yield piece
                if offset >= hi:
                    return
        if offset < hi:
            raise AssetNotFound(f"asset {key!r} was replaced or deleted while it was read")

    def _chunk(self, info: Any) -> int:
        options = info.options
        return int(options.max_chunk_size) if options and options.max_chunk_size else 1

    async def _chunks(
        self, bucket: _Bucket, subject: str, seq: int, skip: int, count: int
    ) -> AsyncGenerator[bytes, None]:
        """From the first chunk of ``subject`` at or after sequence ``seq``, skip ``skip`` chunks
        and yield the next ``count`` (fewer if the object disappears meanwhile).

        Requests go out ``read_ahead`` at a time, each for "the first chunk at or after sequence
        n" for consecutive n. When the object's chunks are consecutive in the stream each answer
        is the next chunk; when other objects' chunks sit between them an answer can repeat the
        previous one, which is dropped, and the requests made redundant by it are cancelled.
        """
        last = seq - 1
        next_seq = seq
        wanted = skip + count
        pending: deque[tuple[int, asyncio.Task[Any]]] = deque()
        try:
            while wanted > 0:
                while len(pending) < min(self.read_ahead, wanted):
                    task = asyncio.create_task(self._get(bucket, subject, next_seq))
                    pending.append((next_seq, task))
                    next_seq += 1
                _, task = pending.popleft()
                msg = await task
                if msg is None:
                    return  # the object is gone; the caller sees the missing bytes
                if msg.seq <= last:
                    continue
                last = msg.seq
                while pending and pending[0][0] <= last:
                    _drop(pending.popleft()[1])
                next_seq = max(next_seq, last + 1)
                wanted -= 1
                if skip:
                    skip -= 1
                    continue
                yield msg.data
        finally:
            for _, task in pending:
                _drop(task)

    async def _get(self, bucket: _Bucket, subject: str, seq: int) -> Any:
        try:
            return await bucket.js.get_msg(
                bucket.stream, seq=seq, subject=subject, next=True, direct=bucket.direct
            )
        except NotFoundError:
            return None

    async def delete(self, key: str) -> None:
        check_key(key)
        bucket = await self._open()
        with contextlib.suppress(NotFoundError):
            await bucket.store.delete(key)


class _SequenceIndex:
    """Where an object's chunks sit in the stream: ``chunk:sequence`` at the start of each run.

    Within a run, chunk ``c`` is at ``sequence + (c - chunk)``, so a range can start with a
    direct get of exactly the chunk it needs. Past ``MAX_RUNS`` runs (many writers interleaved)
    only every n-th run start is kept and the index is marked ``sparse``: a read then starts at
    the nearest known chunk before the one it needs and skips forward.
    """

    MAX_RUNS = 256

    def __init__(self) -> None:
        self.runs: list[tuple[int, int]] = []
        self.count = 0
        self._last = -1

    def add(self, seq: int) -> None:
        if seq != self._last + 1:
            self.runs.append((self.count, seq))
        self._last = seq
        self.count += 1

    def encode(self) -> str:
        runs, kind = self.runs, "exact"
        if len(runs) > self.MAX_RUNS:
            runs, kind = runs[:: math.ceil(len(runs) / self.MAX_RUNS)], "sparse"
        return " ".join([kind, *(f"{chunk}:{seq}" for chunk, seq in runs)])

    @staticmethod
    def locate(encoded: str | None, chunk: int) -> tuple[int, int] | None:
        """``(sequence to read from, chunks to skip there)`` to reach ``chunk``."""
        if not encoded:
            return None
        kind, *pairs = encoded.split()
        runs = [pair.split(":") for pair in pairs]
        at = bisect.bisect_right([int(first) for first, _ in runs], chunk) - 1
        if at < 0:
            return (1, chunk)
        first, seq = int(runs[at][0]), int(runs[at][1])
        return (seq + chunk - first, 0) if kind == "exact" else (seq, chunk - first)


def _drop(task: asyncio.Task[Any]) -> None:
    """Cancel a read-ahead nobody needs; an error it already had is not worth a log line."""
    task.cancel()
    task.add_done_callback(lambda done: done.cancelled() or done.exception())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode()


def _header(info: Any, name: str) -> str | None:
    value = (info.headers or {}).get(name)
    if isinstance(value, list):
        return str(value[0]) if value else None
    return None if value is None else str(value)


def _stored(key: str, info: Any) -> StoredObject:
    digest = (info.digest or "").split("=", 1)[-1]
    sha256 = base64.urlsafe_b64decode(digest + "=" * (-len(digest) % 4)).hex()
    content_type = _header(info, CONTENT_TYPE_HEADER) or DEFAULT_CONTENT_TYPE
    return StoredObject(key, int(info.size or 0), sha256, content_type)
