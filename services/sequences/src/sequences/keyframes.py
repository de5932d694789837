"""Keyframes live in the NATS JetStream object store, addressed by key (never a file path)."""

from __future__ import annotations

import uuid

from nats.js.client import JetStreamContext
from nats.js.errors import BucketNotFoundError, NotFoundError, ObjectNotFoundError
from nats.js.object_store import ObjectStore


def keyframe_key(job_id: uuid.UUID, index: int) -> str:
    return f"{job_id}-{index:03d}.png"


def keyframe_url(job_id: uuid.UUID, index: int) -> str:
    return f"/api/sequences/{job_id}/keyframes/{index}"


async def bucket(js: JetStreamContext, name: str) -> ObjectStore:
    try:
        return await js.object_store(name)
    except (BucketNotFoundError, NotFoundError):
        return await js.create_object_store(name)


async def exists(store: ObjectStore, key: str) -> bool:
    try:
        info = await store.get_info(key)
    except (ObjectNotFoundError, NotFoundError):
        return False
    return not info.deleted


async def read(store: ObjectStore, key: str) -> bytes | None:
    try:
        result = await store.get(key)
    except (ObjectNotFoundError, NotFoundError):
        return None
    return bytes(result.data or b"")
