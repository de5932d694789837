"""Handlers for events the projects service consumes: counters kept from shot events.

A counter is derived state: it changes neither the project's version nor ``updated_at``. The
statements are built once, on the table itself (no ORM session bookkeeping per event).
"""

from __future__ import annotations

from collections import Counter

from sqlalchemy import bindparam, func, update
from sqlalchemy.ext.asyncio import AsyncSession

from projects.models import project_table
from storycore_shared.db import DriverConnection, Prepared, executemany
from storycore_shared.events.consumer import Batched
from storycore_shared.events.contracts.sequences import SequenceGenerated
from storycore_shared.events.contracts.shots import ShotCreated, ShotDeleted

_this_project = project_table.c.id == bindparam("project_id")
_SHOTS_CREATED = (
    update(project_table)
    .where(_this_project)
    .values(shot_count=project_table.c.shot_count + bindparam("n"))
)
_SHOT_DELETED = (
    update(project_table)
    .where(_this_project)
    .values(shot_count=func.greatest(project_table.c.shot_count - 1, 0))
)
_SEQUENCE_GENERATED = (
    update(project_table)
    .where(_this_project)
    .values(sequence_count=project_table.c.sequence_count + 1)
)


async def on_shot_created(session: AsyncSession, data: ShotCreated) -> None:
    await session.execute(_SHOTS_CREATED, {"project_id": data.project_id, "n": 1})


async def on_shots_created(db: AsyncSession | DriverConnection, items: list[ShotCreated]) -> None:
    """A run of ``shot.created``: each project's count raised once, by its number of shots.
    (Only creates are gathered: a delete's floor at zero does not commute with them.)"""
    counts = Counter(data.project_id for data in items)
    rows = [{"project_id": project_id, "n": n} for project_id, n in counts.items()]
    await executemany(db, _SHOTS_CREATED_PREPARED, rows)


_SHOTS_CREATED_PREPARED = Prepared(_SHOTS_CREATED)
shot_created = Batched(on_shot_created, on_shots_created, driver=True)


async def on_sequence_generated(session: AsyncSession, data: SequenceGenerated) -> None:
    await session.execute(_SEQUENCE_GENERATED, {"project_id": data.project_id})


async def on_shot_deleted(session: AsyncSession, data: ShotDeleted) -> None:
    await session.execute(_SHOT_DELETED, {"project_id": data.project_id})
