"""A production's commands to the video editor, on real Postgres (each test rolled back), a real
NATS object store and a real HTTP server standing in for sequences and audio: it serves PNG
keyframes and a WAV only to a valid media signature of their owner, as their byte routes do."""

from __future__ import annotations

import io
import uuid
import wave
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from pydantic import SecretStr, ValidationError
from sqlalchemy import Table, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from storycore_shared.assets import Assets
from storycore_shared.auth import Principal
from storycore_shared.errors import ServiceError
from storycore_shared.events.contracts.productions import (
    FilmRequested,
    ProductionCancelled,
    StoryboardPart,
    StoryboardShot,
)
from storycore_shared.events.contracts.sequences import GeneratedShot, SequenceGenerated
from storycore_shared.events.contracts.video import ExportRequested
from storycore_shared.jobs import repository as jobs_repository
from storycore_shared.media import InvalidMediaSignature, MediaSigner
from storycore_shared.replicas.projects import ProjectDirectory
from storycore_testkit.assets import nats_assets
from storycore_testkit.http_server import BackgroundServer
from storycore_testkit.infra.processes import free_port
from storycore_testkit.settings import unit_settings
from video_editor import events
from video_editor.config import Settings
from video_editor.exports import KIND, Exports, make_jobs
from video_editor.media_service import Media
from video_editor.models import (
    assets_table,
    clip,
    event_tables,
    export,
    job_tables,
    media,
    project_replica,
    timeline,
    track,
)
from video_editor.productions import (
    Productions,
    StoryboardNotRecorded,
    aspect_ratio,
    export_request,
    timeline_request,
)
from video_editor.schemas import FromSequenceRequest
from video_editor.storyboards import Storyboards
from video_editor.timeline_schemas import TimelineCreate
from video_editor.timelines import Timelines

KEY = "a media signing key for the production tests"
OWNER = uuid.uuid4()
STRANGER = uuid.uuid4()
AUDIO_SECONDS = 12.0


# -- the owning services, as a real HTTP server ------------------------------------------------


@dataclass
class Seen:
    path: str
    user: uuid.UUID | None  # whom the request proved to be; None when it proved nothing
    proof: str | None  # "signature" (a valid one) or "bearer"


def token(user: uuid.UUID) -> str:
    """A stand-in bearer token the fake services read as ``user``'s."""
    return f"token-{user}"


@dataclass
class Upstream:
    """What sequences and audio hold (bytes and their owner) and what they were asked."""

    signer: MediaSigner
    keyframes: dict[tuple[uuid.UUID, int], tuple[uuid.UUID, bytes]] = field(default_factory=dict)
    audio: dict[uuid.UUID, tuple[uuid.UUID, bytes]] = field(default_factory=dict)
    results: dict[uuid.UUID, tuple[uuid.UUID, dict[str, Any]]] = field(default_factory=dict)
    records: dict[uuid.UUID, dict[str, Any]] = field(default_factory=dict)
    fail_with: int | None = None
    seen: list[Seen] = field(default_factory=list)

    def reset(self) -> None:
        self.keyframes.clear()
        self.audio.clear()
        self.results.clear()
        self.records.clear()
        self.fail_with = None
        self.seen.clear()

    def caller(self, request: Request, *, signed: bool) -> tuple[uuid.UUID | None, str | None]:
        """Who the request proves to be: a bearer token, else (a byte route's
        MediaPrincipalDep) a valid signature of this path."""
        authorization = request.headers.get("authorization", "")
        if authorization.startswith("Bearer token-"):
            return uuid.UUID(authorization.removeprefix("Bearer token-")), "bearer"
        if not signed or authorization:
            return None, None
        params = request.query_params
        try:
            signer = self.signer.verify(
                request.url.path,
                expires=params.get("expires", ""),
                user=params.get("user", ""),
                sig=params.get("sig", ""),
            )
        except InvalidMediaSignature:
            return None, None
        return signer, "signature"

    def answer(
        self, request: Request, held: tuple[uuid.UUID, bytes] | None, ctype: str
    ) -> Response:
        """As a byte route: a token or a valid signature (403 otherwise), then the owner check
        (404 for another user's or a missing file)."""
        user, proof = self.caller(request, signed=True)
        self.seen.append(Seen(request.url.path, user, proof))
        if self.fail_with is not None:
            return Response(status_code=self.fail_with)
        if user is None:
            return Response(status_code=403)
        if held is None or held[0] != user:
            return Response(status_code=404)
        return Response(held[1], media_type=ctype)

    def app(self) -> Starlette:
        async def keyframe(request: Request) -> Response:
            job, index = uuid.UUID(request.path_params["job"]), int(request.path_params["index"])
            return self.answer(request, self.keyframes.get((job, index)), "image/png")

        async def download(request: Request) -> Response:
            held = self.audio.get(uuid.UUID(request.path_params["audio"]))
            return self.answer(request, held, "audio/wav")

        async def result(request: Request) -> Response:
            """A storyboard's result: bearer tokens only, like the record routes."""
            user, proof = self.caller(request, signed=False)
            self.seen.append(Seen(request.url.path, user, proof))
            found = self.results.get(uuid.UUID(request.path_params["job"]))
            if user is None:
                return Response(status_code=401)
            if found is None or found[0] != user:
                return Response(status_code=404)
            return JSONResponse(found[1])

        async def record(request: Request) -> Response:
            user, proof = self.caller(request, signed=False)
            self.seen.append(Seen(request.url.path, user, proof))
            audio_id = uuid.UUID(request.path_params["audio"])
            if user is None:
                return Response(status_code=401)
            if audio_id not in self.audio or self.audio[audio_id][0] != user:
                return Response(status_code=404)
            return JSONResponse(self.records[audio_id])

        return Starlette(
            routes=[
                Route("/api/sequences/{job}/result", result),
                Route("/api/sequences/{job}/keyframes/{index}", keyframe),
                Route("/api/audio/{audio}", record),
                Route("/api/audio/{audio}/download", download),
            ]
        )


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Upstream, str]]:
    upstream = Upstream(MediaSigner(SecretStr(KEY)))
    server = BackgroundServer(upstream.app(), port=free_port()).start()
    yield upstream, f"http://127.0.0.1:{server.port}"
    server.stop()


@pytest.fixture
def upstream(served: tuple[Upstream, str]) -> Iterator[Upstream]:
    served[0].reset()
    yield served[0]
    served[0].reset()


def png(colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 36), colour).save(out, format="PNG")
    return out.getvalue()


def wav(seconds: float) -> bytes:
    rate = 8000
    tone = 0.3 * np.sin(2 * np.pi * 220 * np.arange(round(seconds * rate)) / rate)
    out = io.BytesIO()
    with wave.open(out, "wb") as sound:
        sound.setnchannels(1)
        sound.setsampwidth(2)
        sound.setframerate(rate)
        sound.writeframes((tone * 32767).astype("<i2").tobytes())
    return out.getvalue()


# -- the service -------------------------------------------------------------------------------


@pytest.fixture
async def assets(nats_url: str, unique_name: str) -> AsyncIterator[Assets]:
    async with nats_assets(nats_url, unique_name, assets_table) as assets:
        yield assets


@pytest.fixture
def settings(served: tuple[Upstream, str], tmp_path: Path) -> Settings:
    url = served[1]
    return unit_settings(
        Settings,
        SEQUENCES_URL=url,
        AUDIO_URL=url,
        MEDIA_SIGNING_KEY=KEY,
        WORK_DIR=tmp_path,
        IMPORT_TIMEOUT_SECONDS=10.0,
    )


@pytest.fixture
def productions(settings: Settings, assets: Assets) -> Productions:
    directory = ProjectDirectory(project_replica, settings.PROJECTS_URL)
    files = Media(settings, assets)
    timelines = Timelines(directory, on_delete=files.delete_timeline_files)
    exports = Exports(settings, make_jobs(settings), assets)
    return Productions(timelines, files, Storyboards(timelines, files), exports)


@dataclass
class Film:
    """A production's ids, its two storyboards (1 shot, then 2) and its mix, held upstream."""

    project_id: uuid.UUID
    first: uuid.UUID
    second: uuid.UUID
    audio_id: uuid.UUID

    def command(self, **fields: Any) -> FilmRequested:
        values: dict[str, Any] = {
            "id": uuid.uuid4(),
            "production_id": uuid.uuid4(),
            "project_id": self.project_id,
            "owner_id": OWNER,
            "timeline_id": uuid.uuid4(),
            "export_id": uuid.uuid4(),
            "name": "The lighthouse",
            "storyboards": [
                StoryboardPart(
                    sequence_job_id=self.first,
                    shots=[StoryboardShot(index=0, duration_seconds=4.0)],
                ),
                StoryboardPart(
                    sequence_job_id=self.second,
                    shots=[
                        StoryboardShot(index=0, duration_seconds=3.0),
                        StoryboardShot(index=1, duration_seconds=2.0),
                    ],
                ),
            ],
            "audio_id": self.audio_id,
            **fields,
        }
        return FilmRequested(**values)


async def record_storyboard(
    session: AsyncSession,
    job_id: uuid.UUID,
    project_id: uuid.UUID,
    owner_id: uuid.UUID,
    durations: list[float],
) -> None:
    """What the video editor's sequences consumer records from ``sequence.generated``."""
    shots = [
        GeneratedShot(
            id=uuid.uuid4(),
            order_index=i,
            name=f"Shot {i}",
            prompt="a lighthouse at dusk",
            shot_type="wide",
            framing="landscape",
            duration_seconds=d,
            keyframe_url=f"/api/sequences/{job_id}/keyframes/{i}",
        )
        for i, d in enumerate(durations)
    ]
    await events.on_sequence_generated(
        session,
        SequenceGenerated(
            id=job_id,
            project_id=project_id,
            job_id=job_id,
            owner_id=owner_id,
            shots=shots,
            image_backend="mock",
        ),
    )


@pytest.fixture
async def film(session: AsyncSession, upstream: Upstream) -> Film:
    made = Film(uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4())
    await record_storyboard(session, made.first, made.project_id, OWNER, [4.0])
    await record_storyboard(session, made.second, made.project_id, OWNER, [3.0, 2.0])
    upstream.keyframes[(made.first, 0)] = (OWNER, png((200, 30, 30)))
    upstream.keyframes[(made.second, 0)] = (OWNER, png((30, 200, 30)))
    upstream.keyframes[(made.second, 1)] = (OWNER, png((30, 30, 200)))
    upstream.audio[made.audio_id] = (OWNER, wav(AUDIO_SECONDS))
    return made


async def count(session: AsyncSession, table: Table) -> int:
    return int((await session.execute(select(func.count()).select_from(table))).scalar_one())


async def counts(session: AsyncSession) -> dict[str, int]:
    tables = (timeline, track, clip, media, export, job_tables.job, event_tables.outbox)
    return {t.name: await count(session, t) for t in tables}


async def outbox(session: AsyncSession) -> list[tuple[str, dict[str, Any]]]:
    rows = await session.execute(
        select(event_tables.outbox.c.subject, event_tables.outbox.c.payload).order_by(
            event_tables.outbox.c.seq
        )
    )
    return [(subject, payload["data"]) for subject, payload in rows]


# -- production.film.requested -----------------------------------------------------------------


async def test_a_film_is_laid_out_from_its_storyboards_and_its_export_queued(
    session: AsyncSession, productions: Productions, upstream: Upstream, film: Film
) -> None:
    command = film.command()

    await productions.on_film_requested(session, command)

    tree = await productions.timelines.tree(session, command.timeline_id)
    row = (
        (await session.execute(select(timeline).where(timeline.c.id == command.timeline_id)))
        .mappings()
        .one()
    )
    assert (row["owner_id"], row["project_id"], row["name"]) == (
        OWNER,
        film.project_id,
        "The lighthouse",
    )
    assert (tree.aspect_ratio, tree.width, tree.height, tree.fps) == ("16:9", 1920, 1080, 24.0)
    assert [t.kind for t in tree.tracks] == ["video", "audio"]
    shots = sorted(tree.tracks[0].clips, key=lambda c: c.start)
    # Shot i owns [S_i, S_i + d_i): from the second shot of the whole film (the first of the
    # second storyboard too) a clip starts 0.5 s early with a dissolve; the Ken Burns
    # alternates along the whole film (in, out, in).
    assert [(c.start, c.duration) for c in shots] == [(0.0, 4.0), (3.5, 3.5), (6.5, 2.5)]
    assert [c.transition_in.type if c.transition_in else None for c in shots] == [
        None,
        "dissolve",
        "dissolve",
    ]
    pushes = [(c.ken_burns.from_rect.w, c.ken_burns.to_rect.w) for c in shots if c.ken_burns]
    assert pushes == [(1.0, 0.9), (0.9, 1.0), (1.0, 0.9)]
    assert tree.duration_seconds == pytest.approx(9.0)
    (sound,) = tree.tracks[1].clips
    assert sound.start == 0.0
    assert sound.duration == pytest.approx(9.0)  # the film's length: the mix lasts 12 s

    stored = (
        (await session.execute(select(media).where(media.c.timeline_id == command.timeline_id)))
        .mappings()
        .all()
    )
    by_id = {m["id"]: m for m in stored}
    assert [by_id[c.media_id]["source_ref"] for c in shots] == [
        {"sequence_job_id": str(film.first), "index": 0},
        {"sequence_job_id": str(film.second), "index": 0},
        {"sequence_job_id": str(film.second), "index": 1},
    ]
    assert {m["kind"] for m in stored} == {"image", "audio"}
    assert by_id[sound.media_id]["source_ref"] == {"audio_id": str(film.audio_id)}
    assert by_id[sound.media_id]["duration_seconds"] == pytest.approx(AUDIO_SECONDS)
    assert {m["owner_id"] for m in stored} == {OWNER}

    # Every byte was asked for with a valid signature of the owner, never a token.
    assert [s.path for s in upstream.seen] == [
        f"/api/sequences/{film.first}/keyframes/0",
        f"/api/sequences/{film.second}/keyframes/0",
        f"/api/sequences/{film.second}/keyframes/1",
        f"/api/audio/{film.audio_id}/download",
    ]
    assert {(s.user, s.proof) for s in upstream.seen} == {(OWNER, "signature")}

    queued = (
        (await session.execute(select(export).where(export.c.id == command.export_id)))
        .mappings()
        .one()
    )
    assert (queued["timeline_id"], queued["owner_id"], queued["preset"]) == (
        command.timeline_id,
        OWNER,
        "youtube_1080p",
    )
    assert (queued["format"], queued["quality"], queued["width"], queued["height"]) == (
        "mp4",
        "draft",
        1920,
        1080,
    )
    assert queued["fps"] == 24.0
    job = await jobs_repository.get(session, job_tables, command.export_id)
    assert job is not None
    assert (job["kind"], job["status"], job["owner_id"], job["project_id"]) == (
        KIND,
        "pending",
        OWNER,
        film.project_id,
    )
    assert job["params"]["timeline_id"] == str(command.timeline_id)
    assert [len(t["clips"]) for t in job["params"]["tracks"]] == [3, 1]
    assert await outbox(session) == [
        (
            ExportRequested.event_type,
            {
                "id": str(command.export_id),
                "project_id": str(film.project_id),
                "owner_id": str(OWNER),
            },
        )
    ]


async def test_the_same_command_again_makes_nothing_new(
    session: AsyncSession, productions: Productions, upstream: Upstream, film: Film
) -> None:
    command = film.command()
    await productions.on_film_requested(session, command)
    before, asked = await counts(session), len(upstream.seen)

    await productions.on_film_requested(session, command)
    await productions.on_film_requested(session, command.model_copy(update={"id": uuid.uuid4()}))

    assert await counts(session) == before
    assert len(upstream.seen) == asked
    # Its owner deleted the timeline since: the export job is the record that it was made.
    await session.execute(delete(timeline).where(timeline.c.id == command.timeline_id))
    await productions.on_film_requested(session, command)
    assert await count(session, timeline) == 0
    assert len(upstream.seen) == asked


@pytest.mark.parametrize("whose", ["another owner", "another project"])
async def test_a_storyboard_not_of_the_owners_project_fails_the_export(
    session: AsyncSession, productions: Productions, upstream: Upstream, film: Film, whose: str
) -> None:
    foreign = uuid.uuid4()
    owner, project = (STRANGER, film.project_id) if whose == "another owner" else (OWNER, None)
    await record_storyboard(session, foreign, project or uuid.uuid4(), owner, [2.0])
    upstream.keyframes[(foreign, 0)] = (OWNER, png((0, 0, 0)))
    command = film.command(
        storyboards=[
            StoryboardPart(
                sequence_job_id=film.first,
                shots=[StoryboardShot(index=0, duration_seconds=4.0)],
            ),
            StoryboardPart(
                sequence_job_id=foreign,
                shots=[StoryboardShot(index=0, duration_seconds=2.0)],
            ),
        ]
    )

    await productions.on_film_requested(session, command)

    ((subject, data),) = await outbox(session)
    assert subject == "video.export.failed"
    assert data["id"] == data["export_id"] == str(command.export_id)
    assert data["timeline_id"] == str(command.timeline_id)
    assert data["project_id"] == str(film.project_id)
    assert str(foreign) in data["error"]
    assert {k: v for k, v in (await counts(session)).items() if k != "outbox"} == dict.fromkeys(
        ("timeline", "track", "clip", "media", "export", "job"), 0
    )
    assert upstream.seen == []


async def test_a_keyframe_its_service_does_not_give_fails_the_export_and_keeps_nothing(
    session: AsyncSession, productions: Productions, upstream: Upstream, film: Film
) -> None:
    del upstream.keyframes[(film.second, 1)]  # two keyframes are imported, then a 404
    command = film.command()

    await productions.on_film_requested(session, command)

    ((subject, data),) = await outbox(session)
    assert subject == "video.export.failed"
    assert data["export_id"] == str(command.export_id)
    assert "keyframe" in data["error"]
    assert [s.path for s in upstream.seen] == [
        f"/api/sequences/{film.first}/keyframes/0",
        f"/api/sequences/{film.second}/keyframes/0",
        f"/api/sequences/{film.second}/keyframes/1",
    ]
    assert {k: v for k, v in (await counts(session)).items() if k != "outbox"} == dict.fromkeys(
        ("timeline", "track", "clip", "media", "export", "job"), 0
    )


async def test_a_mix_of_another_owner_fails_the_export(
    session: AsyncSession, productions: Productions, upstream: Upstream, film: Film
) -> None:
    upstream.audio[film.audio_id] = (STRANGER, wav(1.0))
    command = film.command()

    await productions.on_film_requested(session, command)

    ((subject, data),) = await outbox(session)
    assert (subject, data["export_id"]) == ("video.export.failed", str(command.export_id))
    assert "audio" in data["error"]
    assert await count(session, timeline) == 0


async def test_an_owning_service_in_trouble_is_retried(
    session: AsyncSession, productions: Productions, upstream: Upstream, film: Film
) -> None:
    upstream.fail_with = 503

    with pytest.raises(ServiceError) as raised:
        await productions.on_film_requested(session, film.command())

    assert raised.value.status >= 500
    assert len(upstream.seen) == 1
    assert await counts(session) == dict.fromkeys(
        ("timeline", "track", "clip", "media", "export", "job", "outbox"), 0
    )


async def test_a_storyboard_not_recorded_yet_is_retried(
    session: AsyncSession, productions: Productions, upstream: Upstream, film: Film
) -> None:
    command = film.command(
        storyboards=[
            StoryboardPart(
                sequence_job_id=uuid.uuid4(), shots=[StoryboardShot(index=0, duration_seconds=2)]
            )
        ]
    )

    with pytest.raises(StoryboardNotRecorded):
        await productions.on_film_requested(session, command)

    assert upstream.seen == []
    assert await count(session, event_tables.outbox) == 0


async def test_a_shot_the_storyboard_does_not_have_fails_the_export(
    session: AsyncSession, productions: Productions, upstream: Upstream, film: Film
) -> None:
    command = film.command(
        storyboards=[
            StoryboardPart(
                sequence_job_id=film.first, shots=[StoryboardShot(index=1, duration_seconds=2)]
            )
        ]
    )

    await productions.on_film_requested(session, command)

    ((subject, data),) = await outbox(session)
    assert subject == "video.export.failed"
    assert "no shot 1" in data["error"]
    assert upstream.seen == []


def test_the_timeline_takes_the_export_frame_and_the_nearest_ratio() -> None:
    film = Film(uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4())
    plain = film.command()
    request = export_request(plain)
    made = timeline_request(plain, request)
    assert (made.aspect_ratio, made.width, made.height, made.fps) == ("16:9", 1920, 1080, 24.0)
    assert (request.preset, request.format, request.quality) == ("youtube_1080p", "mp4", "draft")

    tall = film.command(preset="custom", width=1080, height=1920, fps=30, quality="high")
    request = export_request(tall)
    made = timeline_request(tall, request)
    assert (made.aspect_ratio, made.width, made.height, made.fps) == ("9:16", 1080, 1920, 30.0)
    assert (request.width, request.height, request.fps) == (1080, 1920, 30.0)

    square = film.command(preset="instagram_feed")
    assert timeline_request(square, export_request(square)).aspect_ratio == "1:1"
    assert [aspect_ratio(w, h) for w, h in ((1000, 750), (2560, 1080), (1080, 1350))] == [
        "4:3",
        "21:9",
        "4:5",
    ]
    with pytest.raises(ValidationError):
        export_request(film.command(preset="custom"))


async def test_from_sequence_still_lays_one_storyboard_out_with_the_callers_token(
    session: AsyncSession, productions: Productions, upstream: Upstream, film: Film
) -> None:
    """The API's own layout, which the films share: its fetches carry the caller's token."""
    upstream.results[film.second] = (
        OWNER,
        {"project_id": str(film.project_id), "shots": [{"duration_seconds": 3.0}] * 2},
    )
    upstream.records[film.audio_id] = {
        "project_id": str(film.project_id),
        "status": "completed",
        "type": "mix",
        "format": "wav",
    }
    timeline_id = uuid.uuid4()
    await productions.timelines.insert_timeline(
        session,
        timeline_id=timeline_id,
        owner_id=OWNER,
        data=TimelineCreate(project_id=film.project_id, name="Cut"),
    )

    tree = await productions.storyboards.from_sequence(
        session,
        principal=Principal(user_id=OWNER, token=token(OWNER)),
        timeline_id=timeline_id,
        data=FromSequenceRequest(sequence_job_id=film.second, audio_id=film.audio_id),
    )

    shots = sorted(tree.tracks[0].clips, key=lambda c: c.start)
    assert [(c.start, c.duration) for c in shots] == [(0.0, 3.0), (2.5, 3.5)]
    assert tree.tracks[1].clips[0].duration == pytest.approx(6.0)
    assert {(s.user, s.proof) for s in upstream.seen} == {(OWNER, "bearer")}
    assert len(upstream.seen) == 5  # the result, two keyframes, the record and its file


# -- production.cancelled ----------------------------------------------------------------------


async def test_cancel_cancels_the_owners_active_exports_of_the_project_only(
    session: AsyncSession, productions: Productions
) -> None:
    project_id = uuid.uuid4()
    jobs = productions.exports.jobs

    async def job(
        owner: uuid.UUID, *, project: uuid.UUID = project_id, kind: str = KIND
    ) -> uuid.UUID:
        made = await jobs.create(
            session,
            principal=Principal(user_id=owner),
            project_id=project,
            request=ExportRequested,
            kind=kind,
            params={},
        )
        return uuid.UUID(str(made["id"]))

    active, done = await job(OWNER), await job(OWNER)
    await session.execute(
        update(job_tables.job).where(job_tables.job.c.id == done).values(status="completed")
    )
    strangers, elsewhere, other_kind = (
        await job(STRANGER),
        await job(OWNER, project=uuid.uuid4()),
        await job(OWNER, kind="other"),
    )
    named = [active, done, strangers, elsewhere, other_kind, uuid.uuid4(), active]
    before = len(await outbox(session))

    await productions.on_cancelled(
        session,
        ProductionCancelled(
            id=uuid.uuid4(),
            production_id=uuid.uuid4(),
            project_id=project_id,
            owner_id=OWNER,
            jobs=named,
        ),
    )

    statuses = {}
    for job_id in (active, done, strangers, elsewhere, other_kind):
        found = await jobs_repository.get(session, job_tables, job_id)
        assert found is not None
        statuses[job_id] = found["status"]
    assert statuses == {
        active: "cancelled",
        done: "completed",
        strangers: "pending",
        elsewhere: "pending",
        other_kind: "pending",
    }
    assert (await outbox(session))[before:] == [
        (
            "video.export.cancelled",
            {"id": str(active), "project_id": str(project_id), "export_id": str(active)},
        )
    ]
