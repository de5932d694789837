from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from storycore_shared.app import Runtime, ServiceSpec, create_service_app
from storycore_shared.assets import Assets, asset_store
from storycore_shared.events.consumer import EventConsumer
from storycore_shared.events.contracts import StreamSpec
from storycore_shared.events.contracts import audio as audio_events
from storycore_shared.events.contracts import productions as production_commands
from storycore_shared.events.contracts import sequences as sequence_events
from storycore_shared.events.contracts import video as video_events
from storycore_shared.events.contracts.audio import AudioDeleted
from storycore_shared.events.contracts.productions import FilmRequested, ProductionCancelled
from storycore_shared.events.contracts.projects import ProjectDeleted
from storycore_shared.events.contracts.sequences import SequenceGenerated
from storycore_shared.ratelimit import RateLimiter
from storycore_shared.replicas.projects import ProjectDirectory
from video_editor import events
from video_editor.config import Settings
from video_editor.exports import Exports, make_jobs
from video_editor.media_service import Media
from video_editor.models import SCHEMA, assets_table, event_tables, project_replica, rate_limits
from video_editor.productions import Productions
from video_editor.routes import UPLOAD_PATH, router
from video_editor.state import VideoEditorState
from video_editor.storyboards import Storyboards
from video_editor.timeline_routes import router as timeline_router
from video_editor.timelines import Timelines

MIGRATIONS = Path(__file__).parent / "migrations"


async def _close_store(runtime: Runtime) -> None:
    assert isinstance(runtime.state, VideoEditorState)
    await runtime.state.media.assets.store.close()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()  # read from the environment
    directory = ProjectDirectory(project_replica, settings.PROJECTS_URL)

    def state(runtime: Runtime) -> VideoEditorState:
        assets = Assets(asset_store(settings, runtime.broker, settings.BUCKET), assets_table)
        media = Media(settings, assets)
        timelines = Timelines(directory, on_delete=media.delete_timeline_files)
        return VideoEditorState(
            timelines=timelines,
            media=media,
            exports=Exports(settings, make_jobs(settings), assets),
            storyboards=Storyboards(timelines, media),
            limiter=RateLimiter(
                rate_limits, limit=settings.RATE_LIMIT_PER_MINUTE, window_seconds=60
            ),
            sessionmaker=runtime.sessionmaker,
        )

    def consumers(runtime: Runtime) -> list[EventConsumer]:
        state = runtime.state
        assert isinstance(state, VideoEditorState)  # built before the consumers

        async def cascade(session: AsyncSession, data: ProjectDeleted) -> None:
            """Timelines (tracks, clips, media rows), storyboards, export records and every
            stored byte of the project go; export jobs stay as the record of work done."""
            await events.delete_project(session, data.project_id)
            await state.exports.on_project_deleted(session, data)
            await state.media.assets.delete_project(session, data.project_id)

        def consumer(
            name: str, stream: StreamSpec, handlers: dict[Any, Any], **options: Any
        ) -> EventConsumer:
            return EventConsumer(
                name=name,
                stream=stream,
                handlers=handlers,
                sessionmaker=runtime.sessionmaker,
                tables=runtime.tables,
                broker=runtime.broker,
                **options,
            )

        productions = Productions(state.timelines, state.media, state.storyboards, state.exports)

        return [
            directory.consumer(runtime, name="video-editor-projects", on_deleted=cascade),
            consumer(
                "video-editor-sequences",
                sequence_events.STREAM,
                {SequenceGenerated: events.on_sequence_generated},
            ),
            consumer(
                "video-editor-audio", audio_events.STREAM, {AudioDeleted: events.on_audio_deleted}
            ),
            # A film fetches its keyframes and mix in its transaction: seconds, not the default
            # 10 s of ack_wait; one command per transaction, and a watchdog that leaves such a
            # handler running (by default it restarts a loop silent for 30 s).
            consumer(
                "video-editor-productions",
                production_commands.STREAM,
                {
                    FilmRequested: productions.on_film_requested,
                    ProductionCancelled: productions.on_cancelled,
                },
                ack_wait=60.0,
                stall_after=60.0,
                batch_size=1,
            ),
        ]

    return create_service_app(
        ServiceSpec(
            name="video-editor",
            schema=SCHEMA,
            settings=settings,
            routers=[timeline_router, router],
            migrations=MIGRATIONS,
            tables=event_tables,
            publishes=[video_events.STREAM],
            consumers=consumers,
            state=state,
            on_shutdown=_close_store,
            streamed_bodies=(UPLOAD_PATH,),
            title="StoryCore video editor",
            description=(
                "Timelines of a project (tracks, clips, transitions), streamed media uploads and "
                "imports, storyboards laid out from generated sequences, and exports rendered by "
                "scalable workers."
            ),
        )
    )
