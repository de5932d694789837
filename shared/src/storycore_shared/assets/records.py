"""The ``asset`` table a service makes concrete, and :class:`Assets`, which keeps it and the
store in step.

``shared`` declares no table itself; a service makes this one concrete on its own metadata::

    asset = asset_table(Base.metadata)
    assets = Assets(asset_store(settings, broker, "shots"), asset, max_bytes=200 * 2**20)
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CHAR,
    BigInteger,
    Column,
    DateTime,
    MetaData,
    String,
    Table,
    Text,
    Uuid,
    delete,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from storycore_shared.assets.base import DEFAULT_CONTENT_TYPE, AssetStore, run_cleanup


def asset_table(metadata: MetaData) -> Table:
    """Declare the ``asset`` table on ``metadata`` (in the service's schema)."""
    return Table(
        "asset",
        metadata,
        Column("key", Text, primary_key=True),
        Column("owner_id", Uuid, nullable=False),
        Column("project_id", Uuid, nullable=True, index=True),
        Column("content_type", String(255), nullable=False),
        Column("size_bytes", BigInteger, nullable=False),
        Column("sha256", CHAR(64), nullable=False),
        Column("filename", Text, nullable=True),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


@dataclass(frozen=True)
class AssetRecord:
    """One row of the ``asset`` table."""

    key: str
    owner_id: uuid.UUID
    project_id: uuid.UUID | None
    content_type: str
    size_bytes: int
    sha256: str
    filename: str | None
    created_at: datetime

    @property
    def etag(self) -> str:
        return f'"{self.sha256}"'

    @classmethod
    def from_row(cls, row: Any) -> AssetRecord:
        return cls(**{name: getattr(row, name) for name in cls.__dataclass_fields__})


class Assets:
    """An asset store and its ``asset`` table, written together in the caller's session.

    Rows go through the caller's session, which is never committed here: the request (or
    event handler) that owns it commits. Bytes are written before their row and deleted before
    it. A failed insert removes the bytes it had just written; a transaction rolled back after
    a save leaves bytes without a row (waste, not harm); one rolled back after a delete leaves
    a row without bytes until the delete is retried, as a redelivered event does.

    ::

        record = await assets.save(
            session, key=f"{project_id}/{uuid4()}.png", chunks=request.stream(),
            content_type="image/png", owner_id=principal.user_id, project_id=project_id,
            filename="castle.png",
        )
        ...
        async def on_project_deleted(session: AsyncSession, data: ProjectDeleted) -> None:
            await assets.delete_project(session, data.id)
    """

    def __init__(
        self,
        store: AssetStore,
        table: Table,
        *,
        max_bytes: int | None = None,
        delete_concurrency: int = 8,
    ) -> None:
        self.store = store
        self.table = table
        self.max_bytes = max_bytes
        self.delete_concurrency = delete_concurrency

    async def save(
        self,
        session: AsyncSession,
        *,
        key: str,
        chunks: AsyncIterable[bytes],
        owner_id: uuid.UUID,
        content_type: str = DEFAULT_CONTENT_TYPE,
        project_id: uuid.UUID | None = None,
        filename: str | None = None,
        max_bytes: int | None = None,
    ) -> AssetRecord:
        """Stream ``chunks`` into the store under ``key``, then insert (or replace) its row.

        More than ``max_bytes`` (default: the limit given to :class:`Assets`) raises
        :class:`~storycore_shared.errors.PayloadTooLarge` and keeps nothing.
        """
        limit = max_bytes if max_bytes is not None else self.max_bytes
        stored = await self.store.put(key, chunks, content_type=content_type, max_bytes=limit)
        values = {
            "owner_id": owner_id,
            "project_id": project_id,
            "content_type": stored.content_type,
            "size_bytes": stored.size,
            "sha256": stored.sha256,
            "filename": filename,
        }
        statement = (
            insert(self.table)
            .values(key=key, **values)
            .on_conflict_do_update(index_elements=[self.table.c.key], set_=values)
            .returning(*self.table.c)
        )
        try:
            row = (await session.execute(statement)).one()
        except BaseException:
            await run_cleanup(lambda: self.store.delete(key))
            raise
        return AssetRecord.from_row(row)

    async def get(self, session: AsyncSession, key: str) -> AssetRecord | None:
        row = (await session.execute(select(self.table).where(self.table.c.key == key))).first()
        return None if row is None else AssetRecord.from_row(row)

    async def delete(self, session: AsyncSession, key: str) -> bool:
        """Delete the bytes, then the row; True if there was a row. Idempotent."""
        await self.store.delete(key)
        statement = delete(self.table).where(self.table.c.key == key).returning(self.table.c.key)
        return (await session.execute(statement)).first() is not None

    async def delete_project(self, session: AsyncSession, project_id: uuid.UUID) -> int:
        """Delete every asset of the project, bytes then rows; the number of rows deleted.

        Idempotent, so a redelivered ``project.deleted`` is harmless (the second call
        returns 0).
        """
        keys = list(
            await session.scalars(
                select(self.table.c.key)
                .where(self.table.c.project_id == project_id)
                .order_by(self.table.c.key)
            )
        )
        deleted = 0
        for at in range(0, len(keys), 500):  # bounded bind parameters and tasks per round
            batch = keys[at : at + 500]
            await self._delete_bytes(batch)
            result = await session.execute(
                delete(self.table).where(self.table.c.key.in_(batch)).returning(self.table.c.key)
            )
            deleted += len(result.all())
        return deleted

    async def _delete_bytes(self, keys: Sequence[str]) -> None:
        limit = asyncio.Semaphore(self.delete_concurrency)

        async def one(key: str) -> None:
            async with limit:
                await self.store.delete(key)

        async with asyncio.TaskGroup() as group:
            for key in keys:
                group.create_task(one(key))
