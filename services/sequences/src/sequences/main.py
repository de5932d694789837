from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from sequences.config import Settings
from sequences.models import SCHEMA, event_tables, project_replica, rate_limits
from sequences.routes import StreamSlots, router
from sequences.service import Sequences
from storycore_shared.app import Runtime, ServiceSpec, create_service_app
from storycore_shared.events.consumer import EventConsumer
from storycore_shared.events.contracts import sequences as sequence_events
from storycore_shared.ratelimit import RateLimiter
from storycore_shared.replicas.projects import ProjectDirectory

MIGRATIONS = Path(__file__).parent / "migrations"


async def _no_cascade(*_: object) -> None:
    """Jobs are kept when their project goes: they are the record of work done."""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()  # read from the environment
    directory = ProjectDirectory(project_replica, settings.PROJECTS_URL)

    def consumers(runtime: Runtime) -> list[EventConsumer]:
        return [directory.consumer(runtime, name="sequences-projects", on_deleted=_no_cascade)]

    async def on_startup(app: FastAPI, _: Runtime) -> None:
        app.state.settings = settings
        app.state.sequences = Sequences(directory, settings)
        app.state.limiter = RateLimiter(
            rate_limits, limit=settings.RATE_LIMIT_PER_MINUTE, window_seconds=60
        )
        app.state.stream_slots = StreamSlots(settings.MAX_STREAMS)

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
            on_startup=on_startup,
            title="StoryCore sequences",
            description="Storyboard generation jobs: queue, progress over SSE, keyframes.",
        )
    )
