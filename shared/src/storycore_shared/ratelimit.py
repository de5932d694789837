"""Per-user rate limits that hold across replicas (a fixed-window counter in Postgres).

The count is committed in its own short transaction, so a request that fails afterwards still
counts, and every replica sees the same numbers::

    limiter = RateLimiter(rate_limit_table(Base.metadata), limit=30, window_seconds=60)
    await limiter.hit(sessionmaker, f"llm.generate:{principal.user_id}")   # 429 past the limit
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime

from sqlalchemy import BigInteger, Column, DateTime, Integer, MetaData, String, Table, delete
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storycore_shared.errors import TooManyRequests


def rate_limit_table(metadata: MetaData) -> Table:
    return Table(
        "rate_limit",
        metadata,
        Column("key", String(255), primary_key=True),
        Column("window_start", BigInteger, primary_key=True),
        Column("count", Integer, nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
    )


class RateLimiter:
    def __init__(self, table: Table, *, limit: int, window_seconds: int) -> None:
        self.table = table
        self.limit = limit
        self.window = window_seconds
        self._last_cleanup = 0.0

    async def hit(self, sessionmaker: async_sessionmaker[AsyncSession], key: str) -> int:
        """Count one request for ``key``; raise 429 with ``Retry-After`` past the limit."""
        now = time.time()
        window_start = int(now // self.window) * self.window
        values = insert(self.table).values(
            key=key, window_start=window_start, count=1, updated_at=datetime.now(UTC)
        )
        statement = values.on_conflict_do_update(
            index_elements=[self.table.c.key, self.table.c.window_start],
            set_={"count": self.table.c.count + 1, "updated_at": datetime.now(UTC)},
        ).returning(self.table.c.count)
        async with sessionmaker() as session, session.begin():
            count = int((await session.execute(statement)).scalar_one())
            if now - self._last_cleanup > self.window:
                self._last_cleanup = now
                await session.execute(
                    delete(self.table).where(self.table.c.window_start < window_start - self.window)
                )
        if count > self.limit:
            retry_after = max(1, math.ceil(window_start + self.window - now))
            raise TooManyRequests(
                f"More than {self.limit} requests in {self.window} s; retry in {retry_after} s.",
                headers={"Retry-After": str(retry_after)},
            )
        return count
