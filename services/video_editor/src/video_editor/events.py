"""Handlers of the events the video editor consumes; the kit's consumer runs each in one
transaction with its inbox row, so a redelivery changes nothing."""

from __future__ import annotations

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from storycore_shared.events.contracts.audio import AudioDeleted
from storycore_shared.events.contracts.sequences import SequenceGenerated
from video_editor.models import clip, media, storyboard, timeline


async def on_sequence_generated(session: AsyncSession, data: SequenceGenerated) -> None:
    """A storyboard is available to the project: the frontend can offer a timeline from it."""
    await session.execute(
        insert(storyboard)
        .values(
            sequence_job_id=data.job_id,
            project_id=data.project_id,
            owner_id=data.owner_id,
            shot_count=len(data.shots),
            total_duration=round(sum(s.duration_seconds for s in data.shots), 6),
        )
        .on_conflict_do_nothing(index_elements=[storyboard.c.sequence_job_id])
    )


async def on_audio_deleted(session: AsyncSession, data: AudioDeleted) -> None:
    """Clips that played that audio show missing media (the imported copy stays playable
    until the editor removes it: the record the clip came from is gone)."""
    imported = select(media.c.id).where(media.c.source_ref["audio_id"].astext == str(data.audio_id))
    await session.execute(
        update(clip).where(clip.c.media_id.in_(imported)).values(missing_media=True)
    )


async def delete_project(session: AsyncSession, project_id: object) -> None:
    """The project's timelines go, with their tracks, clips and media rows (cascade) and its
    storyboards."""
    await session.execute(delete(timeline).where(timeline.c.project_id == project_id))
    await session.execute(delete(storyboard).where(storyboard.c.project_id == project_id))
