from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from llm.config import Settings
from llm.generation import Generation
from llm.models import SCHEMA, event_tables, rate_limits
from llm.providers.registry import Providers
from llm.routes import router
from storycore_shared.app import Runtime, ServiceSpec, create_service_app
from storycore_shared.events.contracts import llm as llm_events
from storycore_shared.ratelimit import RateLimiter

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()  # read from the environment
    providers = Providers(settings)

    async def on_startup(app: FastAPI, runtime: Runtime) -> None:
        app.state.providers = providers
        app.state.generation = Generation(
            providers, runtime.sessionmaker, cache_ttl=settings.CACHE_TTL_SECONDS
        )
        app.state.limiter = RateLimiter(
            rate_limits, limit=settings.RATE_LIMIT_PER_MINUTE, window_seconds=60
        )

    return create_service_app(
        ServiceSpec(
            name="llm",
            schema=SCHEMA,
            settings=settings,
            routers=[router],
            migrations=MIGRATIONS,
            tables=event_tables,
            publishes=[llm_events.STREAM],
            on_startup=on_startup,
            title="StoryCore llm",
            description="Language models: generation, chat, streaming, templates, usage, "
            "the shot planner and story-to-scenario.",
        )
    )
