from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from projects.config import Settings
from projects.events import on_sequence_generated, on_shot_deleted, shot_created
from projects.models import SCHEMA, event_tables
from projects.production_routes import jobs_router
from projects.production_routes import router as productions_router
from projects.productions import Productions
from projects.routes import router
from storycore_shared.app import Runtime, ServiceSpec, create_service_app
from storycore_shared.events.consumer import EventConsumer
from storycore_shared.events.contracts import audio as audio_events
from storycore_shared.events.contracts import llm as llm_events
from storycore_shared.events.contracts import productions as production_commands
from storycore_shared.events.contracts import projects as project_events
from storycore_shared.events.contracts import sequences as sequence_events
from storycore_shared.events.contracts import shots as shot_events
from storycore_shared.events.contracts import video as video_events
from storycore_shared.events.contracts.audio import (
    AudioCancelled,
    AudioFailed,
    AudioGenerated,
    AudioMixed,
)
from storycore_shared.events.contracts.llm import ScenarioPlanFailed, ScenarioPlanned
from storycore_shared.events.contracts.sequences import (
    SequenceCancelled,
    SequenceFailed,
    SequenceGenerated,
)
from storycore_shared.events.contracts.shots import ShotCreated, ShotDeleted
from storycore_shared.events.contracts.video import ExportCancelled, ExportFailed, VideoExported
from storycore_shared.media import MediaSigner

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()  # read from the environment

    def state(_runtime: Runtime) -> Productions:
        return Productions(settings, MediaSigner.from_settings(settings))

    sweeper: list[asyncio.Task[None]] = []

    async def start_sweeping(_app: FastAPI, runtime: Runtime) -> None:
        saga = runtime.state
        assert isinstance(saga, Productions)
        sweeper.append(
            asyncio.create_task(
                saga.sweep_forever(
                    runtime.sessionmaker,
                    step_timeout=settings.PRODUCTION_STEP_TIMEOUT_SECONDS,
                    every=settings.PRODUCTION_SWEEP_SECONDS,
                )
            )
        )

    async def stop_sweeping(_runtime: Runtime) -> None:
        for task in sweeper:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def consumers(runtime: Runtime) -> list[EventConsumer]:
        saga = runtime.state
        assert isinstance(saga, Productions)  # built before the consumers

        async def sequence_generated(session: AsyncSession, data: SequenceGenerated) -> None:
            await on_sequence_generated(session, data)  # the project's counter
            await saga.on_sequence_generated(session, data)  # a production's storyboard

        def consumer(
            name: str, stream: object, handlers: dict[type, object], *, linger: float = 0.0
        ) -> EventConsumer:
            return EventConsumer(
                name=name,
                stream=stream,  # type: ignore[arg-type]
                handlers=handlers,  # type: ignore[arg-type]
                sessionmaker=runtime.sessionmaker,
                tables=event_tables,
                broker=runtime.broker,
                linger=linger,
            )

        return [
            consumer(  # the shot counts: a copy of shots' data, like a replica
                "projects-shots",
                shot_events.STREAM,
                {ShotCreated: shot_created, ShotDeleted: on_shot_deleted},
                linger=settings.REPLICA_LINGER_SECONDS,
            ),
            consumer(
                "projects-sequences",
                sequence_events.STREAM,
                {
                    SequenceGenerated: sequence_generated,
                    SequenceFailed: saga.on_sequence_failed,
                    SequenceCancelled: saga.on_sequence_cancelled,
                },
            ),
            consumer(
                "projects-llm",
                llm_events.STREAM,
                {
                    ScenarioPlanned: saga.on_scenario_planned,
                    ScenarioPlanFailed: saga.on_scenario_plan_failed,
                },
            ),
            consumer(
                "projects-audio",
                audio_events.STREAM,
                {
                    AudioGenerated: saga.on_audio_made,
                    AudioMixed: saga.on_audio_made,
                    AudioFailed: saga.on_audio_failed,
                    AudioCancelled: saga.on_audio_cancelled,
                },
            ),
            consumer(
                "projects-video",
                video_events.STREAM,
                {
                    VideoExported: saga.on_video_exported,
                    ExportFailed: saga.on_export_failed,
                    ExportCancelled: saga.on_export_cancelled,
                },
            ),
        ]

    return create_service_app(
        ServiceSpec(
            name="projects",
            schema=SCHEMA,
            settings=settings,
            routers=[router, productions_router, jobs_router],
            migrations=MIGRATIONS,
            tables=event_tables,
            publishes=[project_events.STREAM, production_commands.STREAM],
            consumers=consumers,
            state=state,
            on_startup=start_sweeping,
            on_shutdown=stop_sweeping,
            title="StoryCore projects",
            description=(
                "Projects: ownership, visibility, versioned updates and their events; "
                "productions, the story-to-film saga."
            ),
        )
    )
