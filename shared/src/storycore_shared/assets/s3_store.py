"""The asset store on an S3-compatible service (AWS S3, MinIO, Ceph RGW, R2...), via aiobotocore.

All services share one bucket; each service's bucket name becomes a key prefix inside it
(``shots/keyframes/k1.png``). Content up to ``part_size`` goes up in one ``PutObject``; larger
content goes up as a multipart upload, one part in memory at a time.

S3 learns an object's metadata when the upload starts, before the content, so the sha256 of a
large upload (only known at its end) cannot be attached to it directly. A large upload is
therefore staged under ``<prefix>/.staging/`` and then copied, server-side, to its key with
the digest in its metadata (``x-amz-meta-sha256``); the key never shows content without its
digest. Give the bucket a lifecycle rule that aborts incomplete multipart uploads and expires
``*/.staging/`` after a day, for what a crashed process leaves behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from typing import TYPE_CHECKING, Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import ClientError

from storycore_shared.assets.base import (
    DEFAULT_CONTENT_TYPE,
    AssetNotFound,
    AssetStore,
    Digest,
    StoredObject,
    check_key,
    fixed_chunks,
    run_cleanup,
)

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

DEFAULT_PART_SIZE = 8 * 1024 * 1024  # S3's minimum part is 5 MiB
COPY_PART_SIZE = 512 * 1024 * 1024  # S3's maximum part is 5 GiB
READ_CHUNK_SIZE = 256 * 1024
SHA256_METADATA = "sha256"
_MISSING = {"404", "NoSuchKey", "NotFound"}


class S3AssetStore(AssetStore):
    """Assets under ``prefix/`` in one bucket of an S3-compatible service.

    ::

        store = S3AssetStore(
            endpoint_url="http://127.0.0.1:9000", bucket="storycore", prefix="shots",
            access_key_id="...", secret_access_key="...",
        )
        stored = await store.put("k1.png", chunks, content_type="image/png")
        await store.close()

    The HTTP client opens on first use; :meth:`close` it in the service's lifespan.
    """

    def __init__(
        self,
        *,
        endpoint_url: str,
        bucket: str,
        prefix: str,
        access_key_id: str,
        secret_access_key: str,
        region: str = "us-east-1",
        part_size: int = DEFAULT_PART_SIZE,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
    ) -> None:
        if part_size < 5 * 1024 * 1024:
            raise ValueError("S3 multipart parts must be at least 5 MiB")
        self.endpoint_url = endpoint_url
        self.bucket = bucket
        self.prefix = check_key(prefix)
        self.region = region
        self.part_size = part_size
        self._credentials = (access_key_id, secret_access_key)
        self._config = AioConfig(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"max_attempts": 3, "mode": "standard"},
            # Checksums beyond Content-Length only where S3 requires them: many S3-compatible
            # servers reject the newer flexible-checksum headers.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        self._client: S3Client | None = None
        self._exit = contextlib.AsyncExitStack()
        self._lock = asyncio.Lock()

    async def client(self) -> S3Client:
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    self._client = await self._exit.enter_async_context(
                        get_session().create_client(
                            "s3",
                            endpoint_url=self.endpoint_url,
                            region_name=self.region,
                            aws_access_key_id=self._credentials[0],
                            aws_secret_access_key=self._credentials[1],
                            config=self._config,
                        )
                    )
        return self._client

    async def close(self) -> None:
        self._client = None
        await self._exit.aclose()

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{check_key(key)}"

    async def put(
        self,
        key: str,
        chunks: AsyncIterable[bytes],
        *,
        content_type: str = DEFAULT_CONTENT_TYPE,
        max_bytes: int | None = None,
    ) -> StoredObject:
        target = self._key(key)
        client = await self.client()
        digest = Digest(max_bytes)
        parts = fixed_chunks(chunks, self.part_size)
        async with contextlib.aclosing(parts):
            first = await anext(parts, b"")
            digest.update(first)
            if len(first) < self.part_size:
                await client.put_object(
                    Bucket=self.bucket,
                    Key=target,
                    Body=first,
                    ContentType=content_type,
                    Metadata={SHA256_METADATA: digest.sha256},
                )
            else:
                staging = f"{self.prefix}/.staging/{uuid.uuid4().hex}"
                try:
                    await self._upload(client, staging, first, parts, digest, content_type)
                    await self._copy(client, staging, target, digest, content_type)
                finally:
                    await run_cleanup(lambda: client.delete_object(Bucket=self.bucket, Key=staging))
        return StoredObject(key, digest.size, digest.sha256, content_type)

    async def _upload(
        self,
        client: S3Client,
        key: str,
        first: bytes,
        rest: AsyncIterator[bytes],
        digest: Digest,
        content_type: str,
    ) -> None:
        upload = await client.create_multipart_upload(
            Bucket=self.bucket, Key=key, ContentType=content_type
        )
        upload_id = upload["UploadId"]
        done: list[Any] = []
        try:
            number, part = 1, first
            while part:
                answer = await client.upload_part(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=part
                )
                done.append({"PartNumber": number, "ETag": answer["ETag"]})
                part = await anext(rest, b"")
                digest.update(part)
                number += 1
            await client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": done}
            )
        except BaseException:
            await run_cleanup(
                lambda: client.abort_multipart_upload(
                    Bucket=self.bucket, Key=key, UploadId=upload_id
                )
            )
            raise

    async def _copy(
        self, client: S3Client, source: str, target: str, digest: Digest, content_type: str
    ) -> None:
        """Copy ``source`` to ``target`` server-side (in parts: any size), adding the digest."""
        upload = await client.create_multipart_upload(
            Bucket=self.bucket,
            Key=target,
            ContentType=content_type,
            Metadata={SHA256_METADATA: digest.sha256},
        )
        upload_id = upload["UploadId"]
        done: list[Any] = []
        try:
            for number, begin in enumerate(range(0, digest.size, COPY_PART_SIZE), start=1):
                last = min(begin + COPY_PART_SIZE, digest.size) - 1
                answer = await client.upload_part_copy(
                    Bucket=self.bucket,
                    Key=target,
                    UploadId=upload_id,
                    PartNumber=number,
                    CopySource={"Bucket": self.bucket, "Key": source},
                    CopySourceRange=f"bytes={begin}-{last}",
                )
                done.append({"PartNumber": number, "ETag": answer["CopyPartResult"]["ETag"]})
            await client.complete_multipart_upload(
                Bucket=self.bucket, Key=target, UploadId=upload_id, MultipartUpload={"Parts": done}
            )
        except BaseException:
            await run_cleanup(
                lambda: client.abort_multipart_upload(
                    Bucket=self.bucket, Key=target, UploadId=upload_id
                )
            )
            raise

    async def stat(self, key: str) -> StoredObject | None:
        client = await self.client()
        try:
            head = await client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if _code(exc) in _MISSING:
                return None
            raise
        return StoredObject(
            key,
            head["ContentLength"],
            head.get("Metadata", {}).get(SHA256_METADATA, ""),
            head.get("ContentType") or DEFAULT_CONTENT_TYPE,
        )

    async def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        target = self._key(key)
        if start < 0 or (end is not None and end < start):
            raise ValueError(f"bad byte range [{start}, {end})")
        if end == start:
            return
        client = await self.client()
        byte_range = f"bytes={start}-{'' if end is None else end - 1}"
        try:
            answer = await client.get_object(Bucket=self.bucket, Key=target, Range=byte_range)
        except ClientError as exc:
            if _code(exc) in _MISSING:
                raise AssetNotFound(f"no asset {key!r}") from exc
            if _code(exc) == "InvalidRange":  # starts at or past the end: nothing to read
                return
            raise
        async with answer["Body"] as body:
            async for chunk in body.iter_chunks(READ_CHUNK_SIZE):
                yield chunk

    async def delete(self, key: str) -> None:
        client = await self.client()
        await client.delete_object(Bucket=self.bucket, Key=self._key(key))


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
