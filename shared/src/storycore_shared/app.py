"""The application skeleton every service shares.

A service describes itself with a :class:`ServiceSpec`; :func:`create_service_app` builds the
FastAPI app whose lifespan migrates (under the advisory lock), opens the engine, NATS, the
outbox relay and the consumers, and closes them in reverse order. Nothing connects at import::

    def create_app(settings: Settings | None = None) -> FastAPI:
        settings = settings or Settings()
        return create_service_app(ServiceSpec(name="projects", settings=settings, ...))

What a service builds for its routes is one dataclass, made by ``ServiceSpec.state`` once the
runtime exists and stored once on the app; routes get it, type-checked, from
:func:`state_dependency`::

    @dataclass(frozen=True)
    class ShotsState:
        shots: Shots

    ServiceSpec(..., state=lambda runtime: ShotsState(Shots(directory)))
    ShotsStateDep = Annotated[ShotsState, Depends(state_dependency(ShotsState))]
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.requests import HTTPConnection

from storycore_shared import health
from storycore_shared.auth import TokenVerifier
from storycore_shared.bodies import RequestBodyMiddleware
from storycore_shared.config import ServiceSettings
from storycore_shared.db import create_engine, create_sessionmaker
from storycore_shared.errors import SHARED_PROBLEMS, install_error_handlers
from storycore_shared.events.broker import Broker
from storycore_shared.events.consumer import EventConsumer
from storycore_shared.events.contracts import StreamSpec
from storycore_shared.events.relay import OutboxRelay
from storycore_shared.events.tables import EventTables
from storycore_shared.logs import configure_logging
from storycore_shared.middleware import AdmissionMiddleware, RequestContextMiddleware
from storycore_shared.migrations import migrate
from storycore_shared.token_keys import codec

logger = logging.getLogger(__name__)


StateT = TypeVar("StateT")


@dataclass
class Runtime:
    """What a running service holds open, stored once on the app; read it with :func:`runtime_of`.

    ``state`` is what the service's own ``ServiceSpec.state`` built (None when it has none).
    """

    settings: ServiceSettings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    broker: Broker
    relay: OutboxRelay
    tables: EventTables
    verifier: TokenVerifier
    # What /readyz says about the database: checked in the background, never through the pool.
    readiness: health.DatabaseReadiness
    consumers: list[EventConsumer] = field(default_factory=list)
    state: object = None


@dataclass
class ServiceSpec(Generic[StateT]):
    """A service's declaration. ``state`` builds the service's typed state from the runtime;
    it runs before the consumers are made and started, and must not connect to anything.

    ``on_startup`` is for start-up work that must await, after the consumers have started.
    """

    name: str
    schema: str
    settings: ServiceSettings
    routers: list[APIRouter]
    migrations: Path
    tables: EventTables
    publishes: list[StreamSpec]
    consumers: Callable[[Runtime], list[EventConsumer]] = lambda _: []
    verifier: Callable[[ServiceSettings], TokenVerifier] | None = None
    state: Callable[[Runtime], StateT] | None = None
    on_startup: Callable[[FastAPI, Runtime], Awaitable[None]] | None = None
    # Releases what ``state`` opened (an asset store's client), before NATS and the engine.
    on_shutdown: Callable[[Runtime], Awaitable[None]] | None = None
    # Paths (regular expressions) whose routes stream the request body under a limit of their
    # own (media uploads): the service-wide body limit and strict JSON do not apply there.
    streamed_bodies: tuple[str, ...] = ()
    title: str = ""
    description: str = ""


def runtime_of(connection: HTTPConnection) -> Runtime:
    """The runtime of the app serving ``connection`` (a request or a websocket)."""
    runtime = getattr(connection.app.state, "runtime", None)
    if not isinstance(runtime, Runtime):
        raise RuntimeError("the app has no runtime: build it with create_service_app and start it")
    return runtime


def service_state(connection: HTTPConnection, kind: type[StateT]) -> StateT:
    """The service's state, checked to be a ``kind`` (a wrong type is a wiring bug, not a 4xx)."""
    state = runtime_of(connection).state
    if not isinstance(state, kind):
        raise TypeError(f"the service state is a {type(state).__name__}, not a {kind.__name__}")
    return state


def state_dependency(kind: type[StateT]) -> Callable[[HTTPConnection], Awaitable[StateT]]:
    """A FastAPI dependency returning the service's state, checked to be a ``kind``.

    Declare it once per service, as an ``Annotated`` alias::

        ShotsStateDep = Annotated[ShotsState, Depends(state_dependency(ShotsState))]
    """

    async def dependency(request: HTTPConnection) -> StateT:
        return service_state(request, kind)

    dependency.__name__ = f"{kind.__name__}_dependency"
    return dependency


def default_verifier(settings: ServiceSettings) -> TokenVerifier:
    return TokenVerifier(
        issuer=settings.JWT_ISSUER,
        audience=settings.JWT_AUDIENCE,
        jwks_url=settings.JWKS_URL,
        oidc_issuer_url=settings.OIDC_ISSUER_URL,
        max_lifetime=settings.ACCESS_TOKEN_TTL_SECONDS,
    )


def create_service_app(spec: ServiceSpec[Any]) -> FastAPI:
    settings = spec.settings

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(spec.name, level=settings.LOG_LEVEL, json_output=settings.LOG_JSON)
        logger.info("service.starting", extra=settings.public_summary())
        await migrate(settings.direct_database_url, spec.schema, spec.migrations)
        engine = create_engine(settings, spec.schema)
        broker = Broker(settings.NATS_URL, name=spec.name)
        relay = OutboxRelay(
            database_url=settings.direct_database_url,
            tables=spec.tables,
            broker=broker,
            streams=spec.publishes,
            retention_days=settings.OUTBOX_RETENTION_DAYS,
        )
        runtime = Runtime(
            settings,
            engine,
            create_sessionmaker(engine),
            broker,
            relay,
            spec.tables,
            (spec.verifier or default_verifier)(settings),
            health.DatabaseReadiness(
                database_url=settings.direct_database_url,
                schema=spec.schema,
                name=spec.name,
                timeout=settings.DATABASE_TIMEOUT_SECONDS,
            ),
        )
        if spec.state is not None:
            runtime.state = spec.state(runtime)
        codec()  # PyJWT and the signature checks load at start, not in the first request
        runtime.consumers = spec.consumers(runtime)
        app.state.runtime = runtime
        await runtime.readiness.start()
        await broker.start()
        await relay.start()
        for consumer in runtime.consumers:
            await consumer.start()
        if spec.on_startup is not None:
            await spec.on_startup(app, runtime)
        tune_garbage_collector()
        logger.info("service.ready")
        try:
            yield
        finally:
            for consumer in reversed(runtime.consumers):
                await consumer.stop()
            if spec.on_shutdown is not None:
                await spec.on_shutdown(runtime)
            await relay.stop()
            await broker.close()
            await runtime.readiness.stop()
            await engine.dispose()
            logger.info("service.stopped")

    production = settings.ENVIRONMENT == "production"
    app = FastAPI(
        title=spec.title or f"StoryCore {spec.name}",
        description=spec.description,
        lifespan=lifespan,
        docs_url=None,  # below: Swagger UI with the gateway's own files, no CDN
        redoc_url=None,
        openapi_url=None if production else f"/api/{spec.name}/openapi.json",
    )
    # Outermost first: request id and access log, the catch-all 500, admission in arrival
    # order, then the body checks.
    app.add_middleware(
        RequestBodyMiddleware,
        max_body_bytes=settings.MAX_BODY_BYTES,
        streamed=spec.streamed_bodies,
    )
    app.add_middleware(
        AdmissionMiddleware,
        service=spec.name,
        limit=settings.admission_limit,
        lease=settings.ADMISSION_LEASE_SECONDS,
    )
    install_error_handlers(app)
    app.add_middleware(RequestContextMiddleware, service=spec.name)
    app.include_router(health.router)
    if not production:
        app.include_router(_docs_router(spec.name, app.title))
    for router in spec.routers:
        app.include_router(router, responses=SHARED_PROBLEMS)
    if settings.ENVIRONMENT == "test":
        app.include_router(_diagnostics_router(spec.name))
    return app


# Young objects a service allocates between two collections of the cyclic garbage collector
# (Python's default is 700). See tune_garbage_collector.
GC_YOUNG_THRESHOLD = 10_000


def tune_garbage_collector() -> None:
    """Once a service has started: what start-up built (modules, models, routes, tables) is
    frozen out of the collector's way, and the youngest generation is collected every
    ``GC_YOUNG_THRESHOLD`` allocations instead of every 700.

    A request allocates hundreds of objects and refcounting frees almost all of them; what a
    young collection traverses is what is still alive then, mostly the requests in flight,
    about the same whatever the threshold, so fewer collections cost less. Under updates at
    c = 32 the collector took 6-7 % of the projects service's CPU (py-spy ``--native``), 7 %
    with the freeze alone, and no sample at all with both. Cyclic garbage waits a little
    longer; refcounting frees everything else as before.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 10, 10)


# Swagger UI's files, served by the gateway's fallback app (storycore_shared.fallback) at
# /api/docs/assets: every docs page works offline, none loads from a CDN.
SWAGGER_ASSETS_URL = "/api/docs/assets"


def _docs_router(name: str, title: str) -> APIRouter:
    """``GET /api/<name>/docs``: FastAPI's Swagger UI page, on the suite's local assets."""
    router = APIRouter(include_in_schema=False)

    @router.get(f"/api/{name}/docs")
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=f"/api/{name}/openapi.json",
            title=f"{title} - Swagger UI",
            swagger_js_url=f"{SWAGGER_ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{SWAGGER_ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{SWAGGER_ASSETS_URL}/favicon-32x32.png",
        )

    return router


def _diagnostics_router(name: str) -> APIRouter:
    """Test mode only: ``POST /api/<name>/_diagnostics/unhandled-error`` raises an unexpected
    exception, so the suite can check what a real 500 does to the connection behind it."""
    router = APIRouter(include_in_schema=False)

    @router.post(f"/api/{name}/_diagnostics/unhandled-error")
    async def raise_unhandled_error() -> None:
        raise RuntimeError("deliberate failure (test mode diagnostics)")

    return router
