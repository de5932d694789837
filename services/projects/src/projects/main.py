from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from projects.config import Settings
from projects.events import on_sequence_generated, on_shot_created, on_shot_deleted
from projects.models import SCHEMA, event_tables
from projects.routes import router
from storycore_shared.app import Runtime, ServiceSpec, create_service_app
from storycore_shared.events.consumer import EventConsumer
from storycore_shared.events.contracts import projects as project_events
from storycore_shared.events.contracts import sequences as sequence_events
from storycore_shared.events.contracts import shots as shot_events
from storycore_shared.events.contracts.sequences import SequenceGenerated
from storycore_shared.events.contracts.shots import ShotCreated, ShotDeleted

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()  # read from the environment

    def consumers(runtime: Runtime) -> list[EventConsumer]:
        return [
            EventConsumer(
                name="projects-shots",
                stream=shot_events.STREAM,
                handlers={ShotCreated: on_shot_created, ShotDeleted: on_shot_deleted},
                sessionmaker=runtime.sessionmaker,
                tables=event_tables,
                broker=runtime.broker,
            ),
            EventConsumer(
                name="projects-sequences",
                stream=sequence_events.STREAM,
                handlers={SequenceGenerated: on_sequence_generated},
                sessionmaker=runtime.sessionmaker,
                tables=event_tables,
                broker=runtime.broker,
            ),
        ]

    return create_service_app(
        ServiceSpec(
            name="projects",
            schema=SCHEMA,
            settings=settings,
            routers=[router],
            migrations=MIGRATIONS,
            tables=event_tables,
            publishes=[project_events.STREAM],
            consumers=consumers,
            title="StoryCore projects",
            description="Projects: ownership, visibility, versioned updates and their events.",
        )
    )
