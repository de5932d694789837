from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from llm.config import Settings
from llm.generation import Generation
from llm.models import SCHEMA, event_tables, rate_limits
from llm.providers.registry import Providers
from llm.routes import router
from llm.scenario.routes import router as scenario_router
from llm.state import LlmState
from storycore_shared.app import Runtime, ServiceSpec, create_service_app
from storycore_shared.events.contracts import llm as llm_events
from storycore_shared.ratelimit import RateLimiter

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()  # read from the environment
    providers = Providers(settings)

    def state(runtime: Runtime) -> LlmState:
        return LlmState(
            settings=settings,
            providers=providers,
            generation=Generation(
                providers, runtime.sessionmaker, cache_ttl=settings.CACHE_TTL_SECONDS
            ),
            limiter=RateLimiter(
                rate_limits, limit=settings.RATE_LIMIT_PER_MINUTE, window_seconds=60
            ),
            sessionmaker=runtime.sessionmaker,
        )

    return create_service_app(
        ServiceSpec(
            name="llm",
            schema=SCHEMA,
            settings=settings,
            routers=[router, scenario_router],
            migrations=MIGRATIONS,
            tables=event_tables,
            publishes=[llm_events.STREAM],
            state=state,
            title="StoryCore llm",
            description="Language models: generation, chat, streaming, templates, usage, "
            "the shot planner and story-to-scenario.",
        )
    )
