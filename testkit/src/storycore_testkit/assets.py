"""An asset store on the test NATS for a service's unit tests: its own bucket, removed after::

@pytest.fixture
async def assets(nats_url: str, unique_name: str) -> AsyncIterator[Assets]:
    async with nats_assets(nats_url, unique_name, assets_table) as assets:
        yield assets
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from sqlalchemy import Table

from storycore_shared.assets import Assets, NatsAssetStore
from storycore_shared.events.broker import Broker


@contextlib.asynccontextmanager
async def nats_assets(nats_url: str, bucket: str, table: Table) -> AsyncIterator[Assets]:
    broker = Broker(nats_url, name=f"assets-test-{bucket}")
    await broker.start()
    await asyncio.wait_for(broker.connected(), timeout=10)
    try:
        yield Assets(NatsAssetStore(broker, bucket), table)
    finally:
        js = await broker.jetstream()
        with contextlib.suppress(Exception):  # never created: nothing was stored
            await js.delete_object_store(bucket)
        await broker.close()
