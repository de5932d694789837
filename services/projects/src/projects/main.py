from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from projects.config import Settings
from projects.models import SCHEMA, event_tables
from projects.routes import router
from storycore_shared.app import ServiceSpec, create_service_app
from storycore_shared.events.contracts import projects as project_events

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()  # read from the environment
    return create_service_app(
        ServiceSpec(
            name="projects",
            schema=SCHEMA,
            settings=settings,
            routers=[router],
            migrations=MIGRATIONS,
            tables=event_tables,
            publishes=[project_events.STREAM],
            title="StoryCore projects",
            description="Projects: ownership, visibility, versioned updates and their events.",
        )
    )
