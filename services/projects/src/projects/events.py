"""Handlers for events the projects service consumes: counters kept from shot events."""

from __future__ import annotations

from sqlalchemy import func, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from projects.models import Project
from storycore_shared.events.contracts.sequences import SequenceGenerated
from storycore_shared.events.contracts.shots import ShotCreated, ShotDeleted


async def on_shot_created(session: AsyncSession, data: ShotCreated) -> None:
    # A counter is derived state: it changes neither the project's version nor updated_at.
    await session.execute(
        update(Project)
        .where(col(Project.id) == data.project_id)
        .values(shot_count=Project.shot_count + 1)
    )


async def on_sequence_generated(session: AsyncSession, data: SequenceGenerated) -> None:
    await session.execute(
        update(Project)
        .where(col(Project.id) == data.project_id)
        .values(sequence_count=Project.sequence_count + 1)
    )


async def on_shot_deleted(session: AsyncSession, data: ShotDeleted) -> None:
    await session.execute(
        update(Project)
        .where(col(Project.id) == data.project_id)
        .values(shot_count=func.greatest(Project.shot_count - 1, 0))
    )
