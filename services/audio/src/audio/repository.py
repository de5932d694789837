"""Every SQL statement about audio records and mix configurations. A record's status and error
are its job's (``job_id``)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import RowMapping, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from audio.models import audio, job_tables, mix_configuration
from storycore_shared.db import utcnow

job = job_tables.job
# The record with its job's state.
AUDIO_VIEW = (*audio.c, job.c.status, job.c.error)


def _view() -> Any:
    return select(*AUDIO_VIEW).join(job, job.c.id == audio.c.job_id)


async def add(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    await session.execute(insert(audio), list(rows))


async def get(
    session: AsyncSession, audio_id: uuid.UUID, *, lock: bool = False
) -> RowMapping | None:
    statement = _view().where(audio.c.id == audio_id)
    if lock:
        statement = statement.with_for_update(of=audio)
    return (await session.execute(statement)).mappings().first()


async def get_many(session: AsyncSession, ids: Sequence[uuid.UUID]) -> list[RowMapping]:
    statement = _view().where(audio.c.id.in_(ids))
    return list((await session.execute(statement)).mappings().all())


async def of_job(session: AsyncSession, job_id: uuid.UUID) -> list[RowMapping]:
    """The job's records (a multitrack's stems in their order)."""
    statement = _view().where(audio.c.job_id == job_id).order_by(audio.c.created_at, audio.c.name)
    return list((await session.execute(statement)).mappings().all())


async def list_owned(
    session: AsyncSession,
    *,
    owner_id: uuid.UUID,
    project_id: uuid.UUID,
    kind: str | None,
    offset: int,
    limit: int,
) -> tuple[list[RowMapping], int]:
    where = [audio.c.owner_id == owner_id, audio.c.project_id == project_id]
    if kind is not None:
        where.append(audio.c.type == kind)
    total = (
        await session.execute(select(func.count()).select_from(audio).where(*where))
    ).scalar_one()
    statement = (
        _view()
        .where(*where)
        .order_by(audio.c.created_at.desc(), audio.c.id)
        .offset(offset)
        .limit(limit)
    )
    return list((await session.execute(statement)).mappings().all()), total


async def set_rendered(session: AsyncSession, audio_id: uuid.UUID, **values: Any) -> bool:
    """Record the stored file and its measures; False when the record is gone."""
    result = await session.execute(
        update(audio)
        .where(audio.c.id == audio_id)
        .values(**values, updated_at=utcnow())
        .returning(audio.c.id)
    )
    return result.first() is not None


async def remove(session: AsyncSession, audio_id: uuid.UUID) -> None:
    await session.execute(delete(audio).where(audio.c.id == audio_id))


async def count_of_job(session: AsyncSession, job_id: uuid.UUID) -> int:
    statement = select(func.count()).select_from(audio).where(audio.c.job_id == job_id)
    return int((await session.execute(statement)).scalar_one())


async def remove_project(session: AsyncSession, project_id: uuid.UUID) -> None:
    await session.execute(delete(audio).where(audio.c.project_id == project_id))
    await session.execute(
        delete(mix_configuration).where(mix_configuration.c.project_id == project_id)
    )


async def add_configuration(session: AsyncSession, **values: Any) -> None:
    await session.execute(insert(mix_configuration).values(**values))


async def get_configuration(
    session: AsyncSession, configuration_id: uuid.UUID
) -> RowMapping | None:
    statement = select(mix_configuration).where(mix_configuration.c.id == configuration_id)
    return (await session.execute(statement)).mappings().first()
