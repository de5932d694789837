from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from shots.config import Settings
from shots.models import SCHEMA, event_tables, project_replica
from shots.routes import router
from shots.service import Shots, create_generated_shots, delete_project_shots
from shots.state import ShotsState
from storycore_shared.app import Runtime, ServiceSpec, create_service_app
from storycore_shared.events.consumer import EventConsumer
from storycore_shared.events.contracts import sequences as sequence_events
from storycore_shared.events.contracts import shots as shot_events
from storycore_shared.events.contracts.sequences import SequenceGenerated
from storycore_shared.media import MediaSigner
from storycore_shared.replicas.projects import ProjectDirectory

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()  # read from the environment
    directory = ProjectDirectory(project_replica, settings.PROJECTS_URL)

    def consumers(runtime: Runtime) -> list[EventConsumer]:
        return [
            directory.consumer(runtime, name="shots-projects", on_deleted=delete_project_shots),
            EventConsumer(
                name="shots-sequences",
                stream=sequence_events.STREAM,
                handlers={SequenceGenerated: create_generated_shots},
                sessionmaker=runtime.sessionmaker,
                tables=event_tables,
                broker=runtime.broker,
            ),
        ]

    return create_service_app(
        ServiceSpec(
            name="shots",
            schema=SCHEMA,
            settings=settings,
            routers=[router],
            migrations=MIGRATIONS,
            tables=event_tables,
            publishes=[shot_events.STREAM],
            consumers=consumers,
            state=lambda _: ShotsState(
                shots=Shots(directory), signer=MediaSigner.from_settings(settings)
            ),
            title="StoryCore shots",
            description="Shots of a project: order, framing, camera, regeneration requests.",
        )
    )
