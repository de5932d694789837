from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from llm.config import Settings
from llm.generation import Generation
from llm.models import SCHEMA, event_tables, rate_limits
from llm.providers.registry import Providers
from llm.routes import router
from llm.scenario import production
from llm.scenario.routes import router as scenario_router
from llm.state import LlmState
from storycore_shared.app import Runtime, ServiceSpec, create_service_app
from storycore_shared.events.consumer import EventConsumer
from storycore_shared.events.contracts import llm as llm_events
from storycore_shared.events.contracts import productions as production_commands
from storycore_shared.events.contracts.productions import ScenarioRequested
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

    async def on_scenario_requested(session: AsyncSession, data: ScenarioRequested) -> None:
        await production.on_scenario_requested(session, data, providers=providers)

    def consumers(runtime: Runtime) -> list[EventConsumer]:
        # A command can wait on a model for minutes: it is not redelivered, nor is the fetch
        # loop restarted as stalled, while its handler may still be running.
        longest = production.handler_seconds(settings)
        return [
            EventConsumer(
                name="llm-productions",
                stream=production_commands.STREAM,
                handlers={ScenarioRequested: on_scenario_requested},
                sessionmaker=runtime.sessionmaker,
                tables=runtime.tables,
                broker=runtime.broker,
                ack_wait=max(60.0, longest),
                stall_after=max(30.0, longest),
            )
        ]

    return create_service_app(
        ServiceSpec(
            name="llm",
            schema=SCHEMA,
            settings=settings,
            routers=[router, scenario_router],
            migrations=MIGRATIONS,
            tables=event_tables,
            publishes=[llm_events.STREAM],
            consumers=consumers,
            state=state,
            title="StoryCore llm",
            description="Language models: generation, chat, streaming, templates, usage, "
            "the shot planner, story-to-scenario and the productions' scenario step.",
        )
    )
