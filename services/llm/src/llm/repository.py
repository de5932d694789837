"""Every SQL statement of the llm service."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import case, delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from llm.models import ResponseCache, Scenario, UsageRecord, event_tables


async def cache_get(session: AsyncSession, key: str, now: datetime) -> ResponseCache | None:
    return (
        await session.scalars(
            select(ResponseCache).where(
                col(ResponseCache.key) == key, col(ResponseCache.expires_at) > now
            )
        )
    ).first()


async def cache_put(session: AsyncSession, values: dict[str, Any]) -> None:
    statement = insert(ResponseCache).values(**values)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["key"],
            set_={k: statement.excluded[k] for k in values if k != "key"},
        )
    )


async def cache_clear(session: AsyncSession, user_id: uuid.UUID) -> int:
    result = await session.execute(
        delete(ResponseCache).where(col(ResponseCache.user_id) == user_id)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def usage_totals(session: AsyncSession, user_id: uuid.UUID) -> dict[str, Any]:
    mine = col(UsageRecord.user_id) == user_id
    row = (
        await session.execute(
            select(
                func.count(),
                func.coalesce(func.sum(case((col(UsageRecord.cached), 1), else_=0)), 0),
                func.coalesce(func.sum(UsageRecord.prompt_tokens), 0),
                func.coalesce(func.sum(UsageRecord.completion_tokens), 0),
                func.min(UsageRecord.created_at),
            ).where(mine)
        )
    ).one()
    provider, model = col(UsageRecord.provider), col(UsageRecord.model)
    by_model = (
        await session.execute(
            select(
                provider,
                model,
                func.count(),
                func.sum(col(UsageRecord.prompt_tokens) + col(UsageRecord.completion_tokens)),
            )
            .where(mine)
            .group_by(provider, model)
            .order_by(provider, model)
        )
    ).all()
    return {
        "requests": row[0],
        "cached_requests": row[1],
        "prompt_tokens": row[2],
        "completion_tokens": row[3],
        "since": row[4],
        "by_model": [
            {"provider": p, "model": m, "requests": n, "total_tokens": t} for p, m, n, t in by_model
        ],
    }


async def get_scenario(
    session: AsyncSession, scenario_id: uuid.UUID, user_id: uuid.UUID
) -> Scenario | None:
    return (
        await session.scalars(
            select(Scenario).where(
                col(Scenario.id) == scenario_id, col(Scenario.user_id) == user_id
            )
        )
    ).first()


async def find_scenario(session: AsyncSession, scenario_id: uuid.UUID) -> Scenario | None:
    """The scenario ``scenario_id`` whoever owns it: the caller checks the owner."""
    return (await session.scalars(select(Scenario).where(col(Scenario.id) == scenario_id))).first()


async def list_scenarios(
    session: AsyncSession, user_id: uuid.UUID, *, offset: int, limit: int
) -> tuple[list[Scenario], int]:
    mine = col(Scenario.user_id) == user_id
    total = await session.scalar(select(func.count()).select_from(Scenario).where(mine))
    rows = await session.scalars(
        select(Scenario)
        .where(mine)
        .order_by(col(Scenario.created_at).desc())
        .offset(offset)
        .limit(limit)
    )
    return list(rows.all()), int(total or 0)


async def event_added(session: AsyncSession, event_type: str, data_id: uuid.UUID) -> bool:
    """Whether the outbox holds an event ``event_type`` whose data's id is ``data_id`` (the
    envelope's own id is random; published rows are kept for days)."""
    outbox = event_tables.outbox
    found = await session.scalar(
        select(outbox.c.seq)
        .where(
            outbox.c.subject == event_type, outbox.c.payload["data"]["id"].astext == str(data_id)
        )
        .limit(1)
    )
    return found is not None
