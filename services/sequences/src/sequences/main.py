from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from sequences.config import Settings
from sequences.keyframes import Keyframes
from sequences.models import SCHEMA, assets_table, event_tables, project_replica, rate_limits
from sequences.routes import router
from sequences.service import Sequences, make_jobs
from sequences.state import SequencesState
from storycore_shared.app import Runtime, ServiceSpec, create_service_app
from storycore_shared.assets import Assets, asset_store
from storycore_shared.events.consumer import EventConsumer
from storycore_shared.events.contracts import sequences as sequence_events
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
        return SequencesState(
            sequences=Sequences(directory, settings, make_jobs(settings)),
            keyframes=Keyframes(Assets(store, assets_table)),
            limiter=RateLimiter(
                rate_limits, limit=settings.RATE_LIMIT_PER_MINUTE, window_seconds=60
            ),
            sessionmaker=runtime.sessionmaker,
        )

    def consumers(runtime: Runtime) -> list[EventConsumer]:
        assert isinstance(runtime.state, SequencesState)  # built before the consumers
        cascade = runtime.state.keyframes.on_project_deleted
        return [directory.consumer(runtime, name="sequences-projects", on_deleted=cascade)]

    return create_service_app(
        ServiceSpec(
            name="sequences",
            schema=SCHEMA,
            settings=settings,
            routers=[router],
            migrations=MIGRATIONS,
            tables=event_tables,
            publishes=[sequence_events.STREAM],
            consumers=consumers,
            state=state,
            on_shutdown=_close_store,
            title="StoryCore sequences",
            description="Storyboard generation jobs: queue, progress over SSE, keyframes.",
        )
    )
