"""Business rules of the shots service. Functions flush, never commit.

Lock order is always project replica row, then shot rows, so writers never deadlock.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from shots import repository
from shots.errors import InvalidShotOrder, ShotNotFound
from shots.models import Shot, event_tables, project_replica
from shots.schemas import ShotCreate, ShotPublic, ShotUpdate
from storycore_shared.auth import Principal
from storycore_shared.db import DriverConnection, utcnow
from storycore_shared.errors import ProjectNotFound
from storycore_shared.events.contracts.projects import ProjectDeleted
from storycore_shared.events.contracts.sequences import SequenceGenerated
from storycore_shared.events.contracts.shots import (
    ShotCreated,
    ShotDeleted,
    ShotRegenerationRequested,
    ShotsReordered,
    ShotState,
    ShotUpdated,
)
from storycore_shared.events.outbox import add_event, envelope_parameters
from storycore_shared.http import check_version
from storycore_shared.replicas.projects import ProjectDirectory

SOURCE = "shots"


def _state(shot: Shot) -> dict[str, object]:
    return {field: getattr(shot, field) for field in ShotState.model_fields}


class Shots:
    """The shots use cases, bound to the project directory (replica + read-your-writes)."""

    def __init__(self, directory: ProjectDirectory) -> None:
        self.directory = directory

    async def _shot(
        self, session: AsyncSession, principal: Principal, shot_id: uuid.UUID, *, write: bool
    ) -> Shot:
        shot = await repository.get(session, shot_id)
        if shot is None:
            raise ShotNotFound(f"No shot {shot_id}.")
        try:
            await self.directory.require(session, shot.project_id, principal, write=write)
        except ProjectNotFound as exc:
            raise ShotNotFound(f"No shot {shot_id}.") from exc
        if write:
            shot = await repository.get(session, shot_id, lock=True)
            if shot is None:
                raise ShotNotFound(f"No shot {shot_id}.")
        return shot

    async def create_shot(
        self,
        connection: DriverConnection,
        *,
        principal: Principal,
        data: ShotCreate,
    ) -> ShotPublic:
        """The shot and its ``shot.created`` event in one statement, appended to the project's
        shots unless ``order_index`` is given (see ``repository.insert``).

        The statement itself takes the project's lock and checks that the replica holds the
        caller's live project. When it does not (a project created a moment ago whose event has
        not arrived, another user's, a deleted one), the project guard says why, or fills the
        replica, inside a transaction that then runs the same statement.
        """
        now = utcnow()
        row = data.model_dump() | {
            "id": uuid.uuid4(),
            "status": "pending",
            "result_url": None,
            "thumbnail_url": None,
            "created_at": now,
            "updated_at": now,
            "version": 1,
        }
        envelope = envelope_parameters(
            ShotCreated, row["id"], source=SOURCE, actor=principal.user_id
        )
        append = data.order_index is None
        owner = principal.user_id
        created = await repository.insert(
            connection, row, owner_id=owner, append=append, envelope=envelope
        )
        if created is None:
            async with connection.transaction():
                await self.directory.require(connection, data.project_id, principal, write=True)
                created = await repository.insert(
                    connection, row, owner_id=owner, append=append, envelope=envelope
                )
            if created is None:  # pragma: no cover - the guard holds the project's lock
                raise ProjectNotFound(f"No project {data.project_id}.")
        return ShotPublic.model_validate(created)

    async def get_shot(
        self,
        session: AsyncSession,
        *,
        principal: Principal,
        shot_id: uuid.UUID,
    ) -> Shot:
        return await self._shot(session, principal, shot_id, write=False)

    async def update_shot(
        self,
        session: AsyncSession,
        *,
        principal: Principal,
        shot_id: uuid.UUID,
        data: ShotUpdate,
        expected_version: int | None,
    ) -> Shot:
        shot = await self._shot(session, principal, shot_id, write=True)
        check_version("shot", shot.version, expected_version)
        changes = data.changes()
        if not changes:
            return shot
        for field, value in changes.items():
            setattr(shot, "meta" if field == "metadata" else field, value)
        shot.version += 1
        shot.updated_at = utcnow()
        await session.flush()
        await add_event(
            session,
            event_tables,
            ShotUpdated.model_validate(_state(shot)),
            source=SOURCE,
            actor=principal.user_id,
        )
        return shot

    async def delete_shot(
        self,
        session: AsyncSession,
        *,
        principal: Principal,
        shot_id: uuid.UUID,
        expected_version: int | None,
    ) -> None:
        shot = await self._shot(session, principal, shot_id, write=True)
        check_version("shot", shot.version, expected_version)
        await session.delete(shot)
        await session.flush()
        await add_event(
            session,
            event_tables,
            ShotDeleted(id=shot.id, project_id=shot.project_id),
            source=SOURCE,
            actor=principal.user_id,
        )

    async def list_shots(
        self,
        session: AsyncSession,
        *,
        principal: Principal,
        project_id: uuid.UUID,
        status: str | None,
        page: int,
        page_size: int,
    ) -> tuple[list[Shot], int]:
        await self.directory.require(session, project_id, principal, write=False)
        return await repository.list_for_project(
            session, project_id, status=status, offset=(page - 1) * page_size, limit=page_size
        )

    async def reorder_shots(
        self,
        session: AsyncSession,
        *,
        principal: Principal,
        project_id: uuid.UUID,
        shot_ids: list[uuid.UUID],
    ) -> list[Shot]:
        await self.directory.require(session, project_id, principal, write=True)
        shots, _ = await repository.list_for_project(session, project_id, lock=True)
        by_id = {shot.id: shot for shot in shots}
        if len(shot_ids) != len(set(shot_ids)) or set(shot_ids) != set(by_id):
            missing = len(set(by_id) - set(shot_ids))
            foreign = len(set(shot_ids) - set(by_id))
            repeated = len(shot_ids) - len(set(shot_ids))
            raise InvalidShotOrder(
                f"shot_ids must list the project's {len(by_id)} shots once each "
                f"({missing} missing, {foreign} not in this project, {repeated} repeated)."
            )
        now = utcnow()
        for index, shot_id in enumerate(shot_ids):
            shot = by_id[shot_id]
            if shot.order_index != index:
                shot.order_index = index
                shot.version += 1
                shot.updated_at = now
        await session.flush()
        await add_event(
            session,
            event_tables,
            ShotsReordered(id=project_id, project_id=project_id, shot_ids=shot_ids),
            source=SOURCE,
            actor=principal.user_id,
        )
        return [by_id[shot_id] for shot_id in shot_ids]

    async def regenerate_shot(
        self,
        session: AsyncSession,
        *,
        principal: Principal,
        shot_id: uuid.UUID,
        prompt: str | None,
    ) -> Shot:
        shot = await self._shot(session, principal, shot_id, write=True)
        if prompt is not None:
            shot.prompt = prompt
        shot.status = "pending"
        shot.result_url = None
        shot.thumbnail_url = None
        shot.version += 1
        shot.updated_at = utcnow()
        await session.flush()
        state = _state(shot)
        await add_event(
            session,
            event_tables,
            ShotUpdated.model_validate(state),
            source=SOURCE,
            actor=principal.user_id,
        )
        await add_event(
            session,
            event_tables,
            ShotRegenerationRequested.model_validate(state),
            source=SOURCE,
            actor=principal.user_id,
        )
        return shot


async def create_generated_shots(session: AsyncSession, data: SequenceGenerated) -> None:
    """``sequence.generated``: the storyboard's shots join the project, after its own.

    Shot ids come from the job (uuid5 of job id and index), so even a replayed event that
    slipped past the inbox could not create a shot twice.
    """
    if not await repository.lock_project(session, data.project_id, project_replica):
        return
    # Read after the lock, by a statement of its own: it counts every shot appended before.
    start = await repository.next_order_index(session, data.project_id)
    for planned in data.shots:
        if await repository.get(session, planned.id) is not None:
            continue
        shot = Shot(
            id=planned.id,
            project_id=data.project_id,
            sequence_id=data.job_id,
            name=planned.name[:255],
            prompt=planned.prompt,
            shot_type=planned.shot_type,
            framing=planned.framing,
            duration_seconds=planned.duration_seconds,
            order_index=start + planned.order_index,
            status="completed",
            result_url=planned.keyframe_url,
            thumbnail_url=planned.keyframe_url,
        )
        session.add(shot)
        await session.flush()
        await add_event(
            session,
            event_tables,
            ShotCreated.model_validate(_state(shot)),
            source=SOURCE,
            actor=data.owner_id,
        )


async def delete_project_shots(session: AsyncSession, data: ProjectDeleted) -> None:
    """Cascade of ``project.deleted``: the project's shots go with it."""
    await repository.delete_for_project(session, data.id)
