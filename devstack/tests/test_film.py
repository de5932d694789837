"""``storycore film``: its pure pieces, and the whole command against a fake suite (an
``httpx.MockTransport`` answering like the gateway), so nothing here needs a running stack."""

from __future__ import annotations

import argparse
import io
import json
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console

from storycore_devstack import cli, film
from storycore_devstack.film import (
    Api,
    Bar,
    Credentials,
    PlainDisplay,
    StreamPosition,
    UsageError,
    bars_from_steps,
    demo_user,
    done_line,
    failure_message,
    follow,
    human_size,
    project_name,
    reconnect_delay,
    resolve_credentials,
)

PROJECT = "5b0c3f1e-8a0f-4a57-9d1e-2f6d7c4b9a10"
PRODUCTION = "0f7a1e52-3c4d-4e6f-8a9b-1c2d3e4f5a6b"
VIEW = f"/api/projects/{PROJECT}/productions/{PRODUCTION}"
STREAM = "/api/productions/p/stream"
FILM = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40
STORY = "The lighthouse\n\nA keeper climbs the stairs. The storm breaks. A ship turns at dawn.\n"


# -- the stream's position ------------------------------------------------------------------------


def test_reconnect_delay_follows_the_server_s_retry_doubling_up_to_10_s():
    assert reconnect_delay(0, 2500) == 2.5
    assert [reconnect_delay(n) for n in (0, 1, 2, 3, 4, 5)] == [1, 1, 2, 4, 8, 10]


def test_the_stream_keeps_the_last_whole_frame_s_id_and_the_retry():
    """httpx-sse parses the frames; the position keeps what a reconnect needs."""
    suite = FakeSuite(
        streams=[
            b'retry: 2500\r\nid: 3\r\nevent: progress\r\ndata: {"a":\r\ndata:  1}\r\n\r\n'
            b": ping\n\ndata: b\n\n"
        ],
        states=[],
    )
    position = StreamPosition()
    with httpx.Client(base_url="http://gateway", transport=suite.transport) as client:
        api = Api(client)
        api.use_token("access-1")
        events = list(api.events("/api/productions/p/stream", position))
    # Multi-line data joined; an id carries over to the next frame (as the standard says).
    assert [(e.event, e.data, e.id) for e in events] == [
        ("progress", '{"a":\n 1}', "3"),
        ("message", "b", "3"),
    ]
    assert (position.last_id, position.retry_ms) == ("3", 2500)


def test_a_stream_that_is_not_an_event_stream_is_an_error():
    def answer(_: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>a proxy's page</html>")

    with httpx.Client(base_url="http://gateway", transport=httpx.MockTransport(answer)) as client:
        api = Api(client)
        api.use_token("access-1")
        with pytest.raises(film.FilmError, match="not an event stream"):
            list(api.events("/api/productions/p/stream", StreamPosition()))


# -- bars ----------------------------------------------------------------------------------------


def step(kind: str, status: str = "requested", key: str | None = None) -> dict[str, Any]:
    return {
        "key": key or kind,
        "kind": kind,
        "ref": str(uuid.uuid4()),
        "status": status,
        "error": None,
        "requested_at": "2026-01-01T00:00:00Z",
        "finished_at": None,
        "seconds": 1.5 if status == "completed" else None,
    }


def test_bars_before_the_scenario_is_planned():
    bars = {b.kind: b for b in bars_from_steps([step("scenario")])}
    assert bars["scenario"] == Bar("scenario", "scenario", 0, 1, "running")
    # How many storyboards and narrations there will be is the scenario's to say.
    assert bars["storyboard"] == Bar("storyboard", "storyboards", 0, None, "waiting")
    assert bars["narration"].total is None
    assert [bars[k].total for k in ("music", "mix", "film")] == [1, 1, 1]
    assert bars["storyboard"].line() == "storyboards 0/?"


def test_bars_count_completed_steps_of_each_kind():
    steps = [
        step("scenario", "completed"),
        step("storyboard", "completed", "storyboard:0"),
        step("storyboard", "requested", "storyboard:1"),
        step("storyboard", "completed", "storyboard:2"),
        *(step("narration", "completed", f"narration:{i}") for i in range(4)),
        step("music", "requested"),
    ]
    bars = {b.kind: b for b in bars_from_steps(steps)}
    assert [bars[k].line() for k, _ in film.KINDS] == [
        "scenario 1/1",
        "storyboards 2/3",
        "narration 4/4",
        "music 0/1",
        "mix 0/1",
        "film 0/1",
    ]
    assert [bars[k].state for k, _ in film.KINDS] == [
        "done",
        "running",
        "done",
        "running",
        "waiting",
        "waiting",
    ]


def test_bars_show_a_failure_and_the_steps_it_cancelled():
    steps = [
        step("scenario", "completed"),
        step("storyboard", "failed", "storyboard:0"),
        step("storyboard", "cancelled", "storyboard:1"),
        step("music", "cancelled"),
    ]
    bars = {b.kind: b for b in bars_from_steps(steps)}
    assert bars["storyboard"].line() == "storyboards 0/2 failed"
    assert bars["music"].line() == "music 0/1 cancelled"


def test_bars_without_narration_skip_narration_and_mix():
    bars = {b.kind: b for b in bars_from_steps([step("scenario")], narration=False)}
    assert bars["narration"].line() == "narration skipped"
    assert bars["mix"].state == "skipped"
    assert bars["music"].state == "waiting"


def test_plain_display_prints_a_line_when_a_started_bar_changes(capsys):
    display = PlainDisplay()
    display.show({"steps": [step("scenario")], "request": {"narration": True}})
    display.show({"steps": [step("scenario")], "request": {"narration": True}})
    display.show(
        {
            "steps": [step("scenario", "completed"), step("storyboard", key="storyboard:0")],
            "request": {"narration": True},
        }
    )
    assert capsys.readouterr().out.splitlines() == [
        "scenario 0/1",
        "scenario 1/1",
        "storyboards 0/1",
    ]


# -- messages ------------------------------------------------------------------------------------


def test_failure_message_names_the_step_and_the_reason_once():
    failed = {
        "status": "failed",
        "failed_step": "storyboard:1",
        "error": "storyboard:1: the keyframe renderer crashed",
        "steps": [],
    }
    assert failure_message(failed) == (
        "the production failed at step storyboard:1: the keyframe renderer crashed"
    )
    assert failure_message({"status": "failed", "failed_step": None, "error": "gone"}) == (
        "the production failed: gone"
    )


def test_failure_message_of_a_cancel_lists_the_steps_it_stopped():
    cancelled = {
        "status": "cancelled",
        "failed_step": None,
        "error": None,
        "steps": [step("scenario", "completed"), step("music", "cancelled")],
    }
    assert failure_message(cancelled) == "the production was cancelled (stopped: music)"


def test_sizes_and_the_done_line():
    assert human_size(512) == "512 B"
    assert human_size(1_234_567) == "1.2 MB"
    assert human_size(999_999) == "1000.0 kB"
    assert done_line(Path("film.mp4"), 1_234_567, 12.34) == "film done: film.mp4 (12.3 s, 1.2 MB)"
    assert done_line(Path("f.mp4"), 10, None) == "film done: f.mp4 (? s, 10 B)"


def test_project_name_from_the_title_else_the_first_line():
    assert project_name("  My film ", STORY) == "My film"
    assert project_name(None, "\n\n  Once upon a time\nthere") == "Once upon a time"
    assert project_name(None, "x" * 300) == "x" * 100


# -- credentials ---------------------------------------------------------------------------------

ENV_TOKEN = {"STORYCORE_TOKEN": "env-token"}
ENV_LOGIN = {"STORYCORE_EMAIL": "env@example.com", "STORYCORE_PASSWORD": "env password"}


@pytest.mark.parametrize(
    ("options", "env", "expected"),
    [
        ({"token": "t"}, {**ENV_TOKEN, **ENV_LOGIN}, Credentials(token="t")),
        (
            {"email": "a@example.com", "password": "p"},
            ENV_TOKEN,
            Credentials(None, "a@example.com", "p"),
        ),
        ({"email": "a@example.com"}, ENV_LOGIN, Credentials(None, "a@example.com", "env password")),
        ({}, {**ENV_TOKEN, **ENV_LOGIN}, Credentials(token="env-token")),
        ({}, ENV_LOGIN, Credentials(None, "env@example.com", "env password")),
        ({}, {}, Credentials()),
        ({}, {"STORYCORE_TOKEN": ""}, Credentials()),
    ],
)
def test_credentials_precedence(options, env, expected):
    given = {"token": None, "email": None, "password": None, **options}
    assert resolve_credentials(**given, env=env) == expected


@pytest.mark.parametrize(
    ("options", "env"),
    [
        ({"token": "t", "email": "a@example.com"}, {}),
        ({"email": "a@example.com"}, {}),
        ({"password": "p"}, {}),
        ({}, {"STORYCORE_EMAIL": "env@example.com"}),
    ],
)
def test_incomplete_credentials_are_usage_errors(options, env):
    given = {"token": None, "email": None, "password": None, **options}
    with pytest.raises(UsageError):
        resolve_credentials(**given, env=env)


def test_the_demo_user_is_made_once_and_kept_private(tmp_path):
    email, password, path = demo_user(tmp_path / "data")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert email.endswith("@example.com")
    assert len(password) >= 20
    path.chmod(0o644)
    assert demo_user(tmp_path / "data") == (email, password, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert demo_user(tmp_path / "other")[0] != email


# -- against a fake suite ------------------------------------------------------------------------


class Dropping(httpx.SyncByteStream):
    """A response body whose connection dies after ``chunks``."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks
        raise httpx.RemoteProtocolError("peer closed connection without sending complete body")


def frame(seq: int, event: str, data: dict[str, Any]) -> bytes:
    return f"id: {seq}\nevent: {event}\ndata: {json.dumps(data)}\n\n".encode()


def production(status: str = "processing", steps: list[dict[str, Any]] | None = None) -> dict:
    completed = status == "completed"
    export_id = str(uuid.uuid4())
    return {
        "id": PRODUCTION,
        "job_id": PRODUCTION,
        "project_id": PROJECT,
        "status": status,
        "progress": 100 if completed else 10,
        "current_step": status,
        "failed_step": "storyboard:0" if status == "failed" else None,
        "error": "storyboard:0: no GPU left" if status == "failed" else None,
        "steps": steps if steps is not None else [step("scenario")],
        "request": {"narration": True},
        "result": {
            "sequence_job_ids": ["11111111-1111-4111-8111-111111111111"],
            "audio": {
                "narration_ids": ["22222222-2222-4222-8222-222222222222"],
                "music_id": "33333333-3333-4333-8333-333333333333",
                "mix_id": None,
            },
            "export_id": export_id,
            "duration_seconds": 12.34,
            "download_url": f"/api/video-editor/exports/{export_id}/download",
        }
        if completed
        else None,
        "job_url": f"/api/productions/{PRODUCTION}",
        "stream_url": f"/api/productions/{PRODUCTION}/stream",
    }


DONE_STEPS = [
    step("scenario", "completed"),
    step("storyboard", "completed", "storyboard:0"),
    step("narration", "completed", "narration:0"),
    step("music", "completed"),
    step("mix", "completed"),
    step("film", "completed"),
]


class FakeSuite:
    """The gateway as the film command sees it. ``streams``: one body per stream connection;
    ``states``: what successive reads of the production answer (the last one repeats)."""

    def __init__(self, streams: list[httpx.SyncByteStream | bytes], states: list[dict]) -> None:
        self.streams = streams
        self.states = states
        self.requests: list[httpx.Request] = []
        self.users: dict[str, str] = {}
        self.reads = 0
        self.created: dict[str, Any] = {}

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def stream_requests(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path.endswith("/stream")]

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path, method = request.url.path, request.method
        body = json.loads(request.content) if request.content else None
        authorized = request.headers.get("authorization") == "Bearer access-1"
        if path == "/api/auth/login":
            if self.users.get(body["email"]) != body["password"]:
                return problem(401, "invalid_credentials")
            return httpx.Response(200, json={"access_token": "access-1", "refresh_token": "r1"})
        if path == "/api/auth/register":
            self.users[body["email"]] = body["password"]
            return httpx.Response(201, json={"id": str(uuid.uuid4()), "email": body["email"]})
        if not authorized:
            return problem(401, "not_authenticated")
        if (method, path) == ("POST", "/api/projects"):
            self.created["project"] = body
            return httpx.Response(201, json={"id": PROJECT, "name": body["name"]})
        if (method, path) == ("POST", f"/api/projects/{PROJECT}/productions"):
            self.created["production"] = body
            return httpx.Response(202, json=production(), headers={"Location": VIEW})
        if (method, path) == ("GET", VIEW):
            state = self.states[min(self.reads, len(self.states) - 1)]
            self.reads += 1
            return httpx.Response(200, json=state)
        if path.endswith("/stream"):
            body_or_stream = self.streams.pop(0)
            headers = {"Content-Type": "text/event-stream; charset=utf-8"}
            if isinstance(body_or_stream, bytes):
                return httpx.Response(200, content=body_or_stream, headers=headers)
            return httpx.Response(200, stream=body_or_stream, headers=headers)
        if path.startswith("/api/video-editor/exports/"):
            return httpx.Response(200, content=FILM)
        if path == "/api/sequences/11111111-1111-4111-8111-111111111111/result":
            return httpx.Response(200, json={"shots": [{"order_index": 0}, {"order_index": 1}]})
        if path.startswith("/api/sequences/") and "/keyframes/" in path:
            return httpx.Response(200, content=b"\x89PNG" + path.encode())
        if path.endswith("/download") and path.startswith("/api/audio/"):
            return httpx.Response(200, content=b"RIFF" + path.encode())
        if path.startswith("/api/audio/"):
            return httpx.Response(200, json={"format": "flac" if "3333" in path else "wav"})
        return problem(404, "not_found")


def problem(status: int, code: str) -> httpx.Response:
    return httpx.Response(
        status,
        json={
            "title": code.replace("_", " "),
            "status": status,
            "detail": f"{code}!",
            "code": code,
        },
        headers={"Content-Type": "application/problem+json"},
    )


def test_follow_resumes_a_dropped_stream_after_the_last_whole_frame(capsys):
    progress = {"status": "processing", "progress": 50, "current_step": "x"}
    suite = FakeSuite(
        streams=[
            Dropping([frame(1, "progress", progress), b"id: 2\nevent: progress\ndata: {"]),
            frame(2, "progress", progress) + b": ping\n\n" + frame(3, "complete", progress),
        ],
        states=[
            production(steps=[step("scenario", "completed"), step("storyboard", key="s:0")]),
            production(steps=[*DONE_STEPS[:-1], step("film")]),
            production("completed", DONE_STEPS),
        ],
    )
    sleeps: list[float] = []
    with httpx.Client(base_url="http://gateway", transport=suite.transport) as client:
        api = Api(client)
        api.use_token("access-1")
        ended = follow(api, production(), VIEW, PlainDisplay(), sleep=sleeps.append)
    assert ended["status"] == "completed"
    assert [r.headers.get("last-event-id") for r in suite.stream_requests()] == [None, "1"]
    assert sleeps == [1.0]  # one reconnect, after the first failure's delay
    assert suite.reads == 3  # one read per progress or complete frame
    assert capsys.readouterr().out.splitlines() == [
        "scenario 0/1",
        "scenario 1/1",
        "storyboards 0/1",
        "storyboards 1/1",
        "narration 1/1",
        "music 1/1",
        "mix 1/1",
        "film 0/1",
        "film 1/1",
    ]


def test_events_across_a_drop_never_mix_a_cut_frame_into_the_next():
    suite = FakeSuite(
        streams=[
            Dropping([frame(1, "progress", {"n": 1}), b'id: 2\nevent: complete\ndata: {"n": 9}\n']),
            frame(2, "progress", {"n": 2}),
        ],
        states=[],
    )
    position = StreamPosition()
    with httpx.Client(base_url="http://gateway", transport=suite.transport) as client:
        api = Api(client)
        api.use_token("access-1")
        first: list[tuple[str, str, str]] = []
        with pytest.raises(film.Unreachable):
            first.extend((e.event, e.data, e.id) for e in api.events(STREAM, position))
        assert position.last_id == "1"  # not the cut frame's 2
        second = [(e.event, e.data, e.id) for e in api.events(STREAM, position)]
    assert first == [("progress", '{"n": 1}', "1")]
    assert second == [("progress", '{"n": 2}', "2")]
    assert suite.stream_requests()[1].headers["last-event-id"] == "1"
    assert suite.stream_requests()[1].headers["accept"] == "text/event-stream"


def test_follow_gives_up_when_the_suite_stays_away():
    suite = FakeSuite(streams=[Dropping([]) for _ in range(3)], states=[production()])
    sleeps: list[float] = []
    with httpx.Client(base_url="http://gateway", transport=suite.transport) as client:
        api = Api(client)
        api.use_token("access-1")
        with pytest.raises(film.Unreachable):
            follow(api, production(), VIEW, PlainDisplay(), sleep=sleeps.append, max_failures=3)
    assert sleeps == [1.0, 2.0]
    assert len(suite.stream_requests()) == 3


def test_follow_checks_the_production_when_the_stream_ends_without_complete():
    suite = FakeSuite(streams=[b": ping\n\n"], states=[production("failed", [step("scenario")])])
    with httpx.Client(base_url="http://gateway", transport=suite.transport) as client:
        api = Api(client)
        api.use_token("access-1")
        ended = follow(api, production(), VIEW, PlainDisplay(), sleep=pytest.fail)
    assert ended["status"] == "failed"


def test_an_expired_token_is_refreshed_once():
    calls: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(f"{request.url.path} {request.headers.get('authorization')}")
        if request.url.path == "/api/auth/refresh":
            assert json.loads(request.content) == {"refresh_token": "r1"}
            return httpx.Response(200, json={"access_token": "new", "refresh_token": "r2"})
        if request.headers.get("authorization") != "Bearer new":
            return problem(401, "not_authenticated")
        return httpx.Response(200, json={"ok": True})

    with httpx.Client(base_url="http://gateway", transport=httpx.MockTransport(handle)) as client:
        api = Api(client)
        api.use_token("old", "r1")
        assert api.call("GET", "/api/projects") == {"ok": True}
        assert api.refresh_token == "r2"
    assert calls == [
        "/api/projects Bearer old",
        "/api/auth/refresh Bearer old",
        "/api/projects Bearer new",
    ]


def arguments(tmp_path: Path, **given: Any) -> argparse.Namespace:
    story = tmp_path / "story.txt"
    story.write_text(STORY)
    values = {
        "story": str(story),
        "out": str(tmp_path / "film.mp4"),
        "url": "http://127.0.0.1:8080",
        "token": None,
        "email": None,
        "password": None,
        "project": None,
        "title": None,
        "shots_per_scene": None,
        "preset": None,
        "quality": None,
        "language": None,
        "open": False,
        "data_dir": str(tmp_path / "data"),
        **given,
    }
    return argparse.Namespace(**values)


def test_film_end_to_end_as_the_demo_user(tmp_path, capsys):
    suite = FakeSuite(
        streams=[frame(1, "progress", {}) + frame(2, "complete", {"status": "completed"})],
        states=[production(steps=DONE_STEPS[:2]), production("completed", DONE_STEPS)],
    )
    args = arguments(tmp_path, open=True, preset="twitter", language="en-US", quality="draft")
    code = film.run(args, transport=suite.transport, env={}, console=Console(force_terminal=False))
    out, err = capsys.readouterr()
    assert code == 0, err
    assert (tmp_path / "film.mp4").read_bytes() == FILM
    assert not list(tmp_path.glob("*.part"))
    assert f"film done: {tmp_path / 'film.mp4'} (12.3 s, {human_size(len(FILM))})" in out
    # The demo user: made up once, registered after a failed login, said on stderr.
    kept = json.loads((tmp_path / "data" / "demo-user.json").read_text())
    assert suite.users == {kept["email"]: kept["password"]}
    assert f"local demo user {kept['email']}" in err
    assert suite.created["project"] == {"name": "The lighthouse"}
    assert suite.created["production"] == {
        "story": STORY,
        "preset": "twitter",
        "quality": "draft",
        "voice": {"language": "en-US"},
    }
    assets = tmp_path / "film_assets"
    assert sorted(p.name for p in assets.iterdir()) == [
        "music.flac",
        "narration_01.wav",
        "storyboard_01_shot_01.png",
        "storyboard_01_shot_02.png",
    ]
    assert (assets / "storyboard_01_shot_02.png").read_bytes().endswith(b"/keyframes/1")
    assert f"asset: {assets / 'music.flac'}" in out
    assert "film 1/1" in out.splitlines()


def test_film_failure_prints_the_step_and_reason_and_exits_1(tmp_path, capsys):
    suite = FakeSuite(
        streams=[frame(1, "complete", {"status": "failed"})],
        states=[
            production("failed", [step("scenario", "completed"), step("storyboard", "failed")])
        ],
    )
    suite.users["me@example.com"] = "secret pw 1"
    args = arguments(tmp_path, email="me@example.com", project=PROJECT)
    code = film.run(
        args,
        transport=suite.transport,
        env={"STORYCORE_PASSWORD": "secret pw 1"},
        console=Console(force_terminal=False),
    )
    out, err = capsys.readouterr()
    assert code == 1
    assert out.splitlines()[-1] == "storyboards 0/1 failed"
    assert "the production failed at step storyboard:0: no GPU left" in err
    assert "project" not in suite.created  # --project: no new one
    assert not (tmp_path / "film.mp4").exists()


def test_film_usage_errors_exit_2(tmp_path, capsys):
    assert film.run(arguments(tmp_path, story=str(tmp_path / "missing.txt")), env={}) == 2
    assert "cannot read the story" in capsys.readouterr().err
    remote = arguments(tmp_path, url="https://storycore.example.com")
    assert film.run(remote, transport=FakeSuite([], []).transport, env={}) == 2
    assert "--token" in capsys.readouterr().err
    assert film.run(arguments(tmp_path, out=str(tmp_path / "no" / "f.mp4")), env={}) == 2


def test_film_exits_3_when_the_suite_is_unreachable(tmp_path, capsys):
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Connection refused", request=request)

    args = arguments(tmp_path, token="t")
    assert film.run(args, transport=httpx.MockTransport(refuse), env={}) == 3
    assert "cannot reach the suite at http://127.0.0.1:8080" in capsys.readouterr().err


def test_film_on_a_terminal_draws_bars(tmp_path, capsys):
    suite = FakeSuite(
        streams=[frame(1, "progress", {}) + frame(2, "complete", {"status": "completed"})],
        states=[
            production(steps=DONE_STEPS[:2]),
            {**production("completed", DONE_STEPS[:4]), "request": {"narration": False}},
        ],
    )
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=100)
    assert (
        film.run(arguments(tmp_path, token="access-1"), transport=suite.transport, console=console)
        == 0
    )
    drawn = screen.getvalue()
    assert "storyboards" in drawn
    assert "1/1" in drawn
    assert "\x1b[" in drawn  # escape codes: live bars, not log lines
    assert "storyboards 1/1" not in capsys.readouterr().out


def test_the_cli_registers_film_and_loads_it_only_when_it_runs(tmp_path, capsys):
    check = "import sys, storycore_devstack.cli; print('storycore_devstack.film' in sys.modules)"
    loaded = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert loaded.stdout.strip() == "False", loaded.stderr
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--data-dir", str(tmp_path), "film", str(tmp_path / "none.txt"), "--token", "t"])
    assert exit_.value.code == 2
    assert "cannot read the story" in capsys.readouterr().err
