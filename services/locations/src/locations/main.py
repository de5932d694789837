from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from locations.config import Settings
from locations.models import SCHEMA, event_tables, project_replica
from locations.routes import router
from locations.service import Locations, delete_project_locations
from locations.state import LocationsState
from storycore_shared.app import Runtime, ServiceSpec, create_service_app
from storycore_shared.events.consumer import EventConsumer
from storycore_shared.events.contracts import locations as location_events
from storycore_shared.replicas.projects import ProjectDirectory

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()  # read from the environment
    directory = ProjectDirectory(project_replica, settings.PROJECTS_URL)

    def consumers(runtime: Runtime) -> list[EventConsumer]:
        return [
            directory.consumer(
                runtime, name="locations-projects", on_deleted=delete_project_locations
            )
        ]

    return create_service_app(
        ServiceSpec(
            name="locations",
            schema=SCHEMA,
            settings=settings,
            routers=[router],
            migrations=MIGRATIONS,
            tables=event_tables,
            publishes=[location_events.STREAM],
            consumers=consumers,
            state=lambda _: LocationsState(locations=Locations(directory)),
            title="StoryCore locations",
            description="Places of a story, owned by a user and optionally a project.",
        )
    )
