"""The sequences side of the production saga: the ``sequences-productions`` consumer.

The projects service (the saga) commands a storyboard from shots it has planned already, and
cancels a production's jobs. Every command names the owner the projects service verified: the
job is theirs, created with the id the saga chose, so a redelivered or re-issued command finds
it and creates nothing twice. The kit's consumer runs each handler in one transaction with its
inbox row.

A command that can never succeed (another owner's or a deleted project, an image backend that is
not configured here, a request the job table cannot hold) is answered with ``sequence.failed``
in the same transaction, so the saga learns why; only transient trouble (the database) raises,
and the consumer retries.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from sequences.models import event_tables, job_tables
from sequences.service import KIND, SOURCE, Sequences
from storycore_shared.auth import Principal
from storycore_shared.events.contracts import EventData
from storycore_shared.events.contracts.productions import ProductionCancelled, StoryboardRequested
from storycore_shared.events.contracts.sequences import SequenceFailed, SequenceRequested
from storycore_shared.events.outbox import add_event
from storycore_shared.jobs import repository as jobs_repository
from storycore_shared.jobs.errors import JobNotCancellable, JobNotFound
from storycore_shared.types import json_problem

# What the job's columns and the renderers take: the API's style length, a project's resolution
# bounds (the projects service's).
MAX_STYLE = 200
MIN_SIDE, MAX_WIDTH, MAX_HEIGHT = 16, 7680, 4320

Handler = Callable[[AsyncSession, Any], Awaitable[None]]


def request_refusal(command: StoryboardRequested) -> str | None:
    """Why the job table or the renderers cannot take ``command``'s request, or None."""
    if command.style is not None and len(command.style) > MAX_STYLE:
        return f"the style is longer than {MAX_STYLE} characters"
    if not (MIN_SIDE <= command.width <= MAX_WIDTH and MIN_SIDE <= command.height <= MAX_HEIGHT):
        return (
            f"the size {command.width}x{command.height} is outside "
            f"{MIN_SIDE}x{MIN_SIDE}..{MAX_WIDTH}x{MAX_HEIGHT}"
        )
    if problem := json_problem(command.model_dump(mode="json")):
        return f"the request cannot be stored: {problem[1]}"
    return None


class Productions:
    """Storyboards commanded by the saga: sequence jobs with their plan already made."""

    def __init__(self, sequences: Sequences) -> None:
        self.sequences = sequences

    def handlers(self) -> dict[type[EventData], Handler]:
        return {
            StoryboardRequested: self.on_storyboard_requested,
            ProductionCancelled: self.on_cancelled,
        }

    async def on_storyboard_requested(
        self, session: AsyncSession, command: StoryboardRequested
    ) -> None:
        """Queue the sequence job ``job_id`` for the owner, its ``plan`` set to the commanded
        shots: the worker skips planning and renders exactly these. No rate limit: the saga
        paces its own commands."""
        if await jobs_repository.get(session, job_tables, command.job_id) is not None:
            return  # queued already: a redelivered or re-issued command
        backend = self.sequences.settings.IMAGE_BACKEND
        refusal = (
            await self.sequences.directory.refusal(session, command.project_id, command.owner_id)
            or self.sequences.unavailable(backend)
            or request_refusal(command)
        )
        if refusal is not None:
            await add_event(
                session,
                event_tables,
                SequenceFailed(
                    id=command.job_id,
                    project_id=command.project_id,
                    job_id=command.job_id,
                    error=refusal,
                ),
                source=SOURCE,
                actor=command.owner_id,
            )
            return
        await self.sequences.jobs.create(
            session,
            principal=Principal(user_id=command.owner_id),
            project_id=command.project_id,
            request=SequenceRequested,
            kind=KIND,
            job_id=command.job_id,
            prompt=command.prompt,
            shot_count=len(command.shots),
            style=command.style,
            mood=None,
            characters=[],
            settings={},
            image_backend=backend,
            width=command.width,
            height=command.height,
            plan=[shot.model_dump() for shot in command.shots],
        )

    async def on_cancelled(self, session: AsyncSession, command: ProductionCancelled) -> None:
        """Cancel those of ``jobs`` that are the owner's sequence jobs and still pending or
        processing (each records its cancel and publishes ``sequence.cancelled``). Any other
        id (another service's job, another owner's, a rig) or a job already finished is left
        as it is."""
        principal = Principal(user_id=command.owner_id)
        for job_id in dict.fromkeys(command.jobs):
            with contextlib.suppress(JobNotFound, JobNotCancellable):
                await self.sequences.jobs.cancel(session, principal=principal, job_id=job_id)
