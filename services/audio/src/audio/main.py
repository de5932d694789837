from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from audio.config import Settings
from audio.models import SCHEMA, assets_table, event_tables, project_replica, rate_limits
from audio.productions import Productions
from audio.routes import projects_router, router
from audio.service import Audio, make_jobs
from audio.state import AudioState
from storycore_shared.app import Runtime, ServiceSpec, create_service_app
from storycore_shared.assets import Assets, asset_store
from storycore_shared.events.consumer import EventConsumer
from storycore_shared.events.contracts import audio as audio_events
from storycore_shared.events.contracts import productions as production_commands
from storycore_shared.events.contracts.projects import ProjectDeleted
from storycore_shared.ratelimit import RateLimiter
from storycore_shared.replicas.projects import ProjectDirectory

MIGRATIONS = Path(__file__).parent / "migrations"


async def _close_store(runtime: Runtime) -> None:
    assert isinstance(runtime.state, AudioState)
    await runtime.state.audio.assets.store.close()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()  # read from the environment
    directory = ProjectDirectory(project_replica, settings.PROJECTS_URL)

    def state(runtime: Runtime) -> AudioState:
        store = asset_store(settings, runtime.broker, settings.BUCKET)
        return AudioState(
            audio=Audio(directory, settings, make_jobs(settings), Assets(store, assets_table)),
            limiter=RateLimiter(
                rate_limits, limit=settings.RATE_LIMIT_PER_MINUTE, window_seconds=60
            ),
            sessionmaker=runtime.sessionmaker,
        )

    def consumers(runtime: Runtime) -> list[EventConsumer]:
        state = runtime.state
        assert isinstance(state, AudioState)  # built before the consumers

        async def cascade(session: AsyncSession, data: ProjectDeleted) -> None:
            await state.audio.on_project_deleted(session, data)

        return [
            directory.consumer(runtime, name="audio-projects", on_deleted=cascade),
            # The saga's commands: a handler queues a render (or cancels some) in its
            # transaction; a slow one (a busy database, a cancel waiting for a worker's step)
            # must not be redelivered meanwhile.
            EventConsumer(
                name="audio-productions",
                stream=production_commands.STREAM,
                handlers=Productions(state.audio).handlers(),
                sessionmaker=runtime.sessionmaker,
                tables=runtime.tables,
                broker=runtime.broker,
                ack_wait=60.0,
            ),
        ]

    return create_service_app(
        ServiceSpec(
            name="audio",
            schema=SCHEMA,
            settings=settings,
            routers=[router, projects_router],
            migrations=MIGRATIONS,
            tables=event_tables,
            publishes=[audio_events.STREAM],
            consumers=consumers,
            state=state,
            on_shutdown=_close_store,
            title="StoryCore audio",
            description=(
                "Voice, music, effects and ambience rendered by scalable workers; mixdowns with "
                "ducking, a limiter and loudness normalisation; waveforms."
            ),
        )
    )
