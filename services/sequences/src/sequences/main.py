from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from sequences.config import Settings
from sequences.keyframes import Keyframes
from sequences.models import SCHEMA, assets_table, event_tables, project_replica, rate_limits
from sequences.productions import Productions
from sequences.rigging.routes import router as rigging_router
from sequences.rigging.service import Rigs, make_rig_jobs
from sequences.routes import router
from sequences.service import Sequences, make_jobs
from sequences.state import SequencesState
from storycore_shared.app import Runtime, ServiceSpec, create_service_app
from storycore_shared.assets import Assets, asset_store
from storycore_shared.events.consumer import EventConsumer
from storycore_shared.events.contracts import productions as production_commands
from storycore_shared.events.contracts import sequences as sequence_events
from storycore_shared.events.contracts.projects import ProjectDeleted
from storycore_shared.ratelimit import RateLimiter
from storycore_shared.replicas.projects import ProjectDirectory

MIGRATIONS = Path(__file__).parent / "migrations"


async def _close_store(runtime: Runtime) -> None:
    assert isinstance(runtime.state, SequencesState)
    await runtime.state.keyframes.assets.store.close()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()  # read from the environment
    directory = ProjectDirectory(project_replica, settings.PROJECTS_URL)

    def state(runtime: Runtime) -> SequencesState:
        store = asset_store(settings, runtime.broker, settings.KEYFRAME_BUCKET)
        assets = Assets(store, assets_table)
        sequences = Sequences(directory, settings, make_jobs(settings))
        return SequencesState(
            sequences=sequences,
            keyframes=Keyframes(assets),
            rigs=Rigs(directory, settings, make_rig_jobs(settings), sequences.jobs, assets),
            limiter=RateLimiter(
                rate_limits, limit=settings.RATE_LIMIT_PER_MINUTE, window_seconds=60
            ),
            sessionmaker=runtime.sessionmaker,
        )

    def consumers(runtime: Runtime) -> list[EventConsumer]:
        state = runtime.state
        assert isinstance(state, SequencesState)  # built before the consumers

        async def cascade(session: AsyncSession, data: ProjectDeleted) -> None:
            """The project's assets (keyframes, sheets, rig files) and rigs go; jobs stay."""
            await state.keyframes.on_project_deleted(session, data)
            await state.rigs.on_project_deleted(session, data)

        return [
            directory.consumer(runtime, name="sequences-projects", on_deleted=cascade),
            # The saga's commands: a handler queues a job (or cancels some) in its transaction;
            # a slow one (a busy database, a cancel waiting for a worker's step) must not be
            # redelivered meanwhile.
            EventConsumer(
                name="sequences-productions",
                stream=production_commands.STREAM,
                handlers=Productions(state.sequences).handlers(),
                sessionmaker=runtime.sessionmaker,
                tables=runtime.tables,
                broker=runtime.broker,
                ack_wait=60.0,
            ),
        ]

    return create_service_app(
        ServiceSpec(
            name="sequences",
            schema=SCHEMA,
            settings=settings,
            routers=[router, rigging_router],
            migrations=MIGRATIONS,
            tables=event_tables,
            publishes=[sequence_events.STREAM],
            consumers=consumers,
            state=state,
            on_shutdown=_close_store,
            title="StoryCore sequences",
            description=(
                "Storyboard generation jobs (queue, progress over SSE, keyframes) and character "
                "rigs made from sheets."
            ),
        )
    )
