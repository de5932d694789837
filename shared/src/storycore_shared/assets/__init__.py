"""Binary assets (keyframes, audio, uploads, exports): one store API for every service.

- :class:`AssetStore`: ``put`` (streamed, hashed, size-limited), ``stat``, ``read`` (a byte
  range, streamed), ``delete``, ``exists``; backed by the NATS JetStream object store
  (:class:`NatsAssetStore`, one bucket per owning service) or an S3-compatible service
  (``s3_store.S3AssetStore``, the service's bucket name as a key prefix in one bucket);
- :func:`asset_table` and :class:`Assets`: the ``asset`` table a service makes concrete, kept in
  step with the store in the caller's session, with ``delete_project`` for ``project.deleted``;
- :func:`~storycore_shared.assets.http.asset_response`: a download with ``Range``, ``ETag``
  and ``Content-Disposition``.

A service opens its store in the lifespan and closes it on the way out::

    store = asset_store(settings, broker, "shots")
    assets = Assets(store, asset_table(Base.metadata), max_bytes=100 * 2**20)
    ...
    await store.close()
"""

from __future__ import annotations

from storycore_shared.assets.base import (
    AssetNotFound,
    AssetStore,
    StoredObject,
    download_to,
    file_chunks,
    one_chunk,
)
from storycore_shared.assets.nats_store import NatsAssetStore
from storycore_shared.assets.records import AssetRecord, Assets, asset_table
from storycore_shared.config import ServiceSettings
from storycore_shared.events.broker import Broker

__all__ = [
    "AssetNotFound",
    "AssetRecord",
    "AssetStore",
    "Assets",
    "NatsAssetStore",
    "StoredObject",
    "asset_store",
    "asset_table",
    "download_to",
    "file_chunks",
    "one_chunk",
]


def asset_store(settings: ServiceSettings, broker: Broker, bucket: str) -> AssetStore:
    """The store ``settings.ASSET_BACKEND`` names, for the assets of the service ``bucket``.

    With ``nats``, ``bucket`` is the object store bucket; with ``s3`` it is the key prefix
    inside ``S3_BUCKET`` (settings validation has already refused missing S3 settings)::

        store = asset_store(settings, broker, "shots")
    """
    if settings.ASSET_BACKEND == "nats":
        return NatsAssetStore(broker, bucket)
    # Imported only here: aiobotocore weighs on every process's memory, and most use NATS.
    from storycore_shared.assets.s3_store import S3AssetStore

    endpoint, s3_bucket = settings.S3_ENDPOINT_URL, settings.S3_BUCKET
    key_id, secret = settings.S3_ACCESS_KEY_ID, settings.S3_SECRET_ACCESS_KEY
    if endpoint is None or s3_bucket is None or key_id is None or secret is None:
        raise ValueError("ASSET_BACKEND is s3 but the S3 settings are incomplete")
    return S3AssetStore(
        endpoint_url=endpoint,
        bucket=s3_bucket,
        prefix=bucket,
        access_key_id=key_id.get_secret_value(),
        secret_access_key=secret.get_secret_value(),
        region=settings.S3_REGION,
    )
