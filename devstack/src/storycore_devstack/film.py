"""``python3 storycore.py film story.txt --out film.mp4``: a story in, a film out.

The command is a client of the suite like any other, through the gateway: it signs in, creates
a project (unless ``--project``), starts a production (``POST /api/projects/{p}/productions``),
follows the production's SSE stream and, on every progress frame, reads the production again to
show one bar per step kind (its steps completed out of its steps requested). Once completed it
streams the film to disk (and, with ``--open``, the storyboards and the audio next to it).

Exit codes: 0 the film is on disk; 1 the production failed or was cancelled (or the API refused
something); 2 a usage error (no story file, bad options, no credentials away from the dev stack);
3 the suite cannot be reached; 130 interrupted (the production is cancelled on the way out).

The pieces are small pure functions (SSE frames, bars from steps, credentials, messages) so the
tests check them without a stack; :func:`run` wires them to an :class:`httpx.Client`.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import secrets
import sys
import time
import uuid
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Protocol, TextIO

import httpx
from httpx_sse import EventSource, ServerSentEvent, SSEError
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_INTERRUPTED = 130

TERMINAL = frozenset({"completed", "failed", "cancelled"})
# A gateway or service that is down (or restarting) answers these: worth a retry, not a verdict.
UNAVAILABLE = frozenset({502, 503, 504})
TIMEOUT = httpx.Timeout(30.0, connect=5.0)
# The stream sends a comment every 15 s (STREAM_HEARTBEAT_SECONDS): silence this long is a drop.
STREAM_TIMEOUT = httpx.Timeout(30.0, connect=5.0, read=60.0)
# Consecutive failed reconnects (about a minute of outage with the backoff) before giving up.
MAX_FAILURES = 8
DEMO_FILE = "demo-user.json"
CHUNK = 1 << 16

# The bars, in the saga's order: (step kind, label).
KINDS: tuple[tuple[str, str], ...] = (
    ("scenario", "scenario"),
    ("storyboard", "storyboards"),
    ("narration", "narration"),
    ("music", "music"),
    ("mix", "mix"),
    ("film", "film"),
)
# One step each, known before it is requested; the others' count comes with the scenario.
SINGLE = frozenset({"scenario", "music", "mix", "film"})
# Without narration there is nothing to mix: the music goes into the film as it is.
NARRATED = frozenset({"narration", "mix"})


class FilmError(Exception):
    """Ends the command: the message goes to stderr, ``exit_code`` to the shell."""

    exit_code = EXIT_FAILED


class UsageError(FilmError):
    exit_code = EXIT_USAGE


class Unreachable(FilmError):
    """The suite did not answer (connection refused, timeout, a gateway with no backend)."""

    exit_code = EXIT_UNREACHABLE


class ApiError(FilmError):
    """The API answered with a problem (``application/problem+json``)."""

    def __init__(self, method: str, path: str, answer: httpx.Response) -> None:
        self.status = answer.status_code
        problem = _problem(answer)
        self.code = str(problem.get("code") or "")
        title = problem.get("title") or answer.reason_phrase
        detail = problem.get("detail")
        super().__init__(
            f"{method} {path}: {self.status} {title}" + (f": {detail}" if detail else "")
        )


def _problem(answer: httpx.Response) -> dict[str, Any]:
    try:
        body = answer.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


# -- server-sent events --------------------------------------------------------------------------


class StreamPosition:
    """Where a production's stream resumes: the id of the last whole frame received (for
    ``Last-Event-ID``) and the server's ``retry:``. httpx-sse parses the frames (the HTML
    standard's rules: a frame counts on its blank line only, so one cut by a dropped
    connection is never dispatched and its id is never resumed from); one position lives
    across reconnects, so the id carries over."""

    def __init__(self, last_id: str | None = None) -> None:
        self.last_id = last_id
        self.retry_ms: int | None = None

    def saw(self, event: ServerSentEvent) -> None:
        if event.id:
            self.last_id = event.id
        if event.retry is not None:
            self.retry_ms = event.retry


def reconnect_delay(failures: int, retry_ms: int | None = None) -> float:
    """Seconds before reconnecting: the server's ``retry:`` (else 1 s), doubled per consecutive
    failure, at most 10 s."""
    base = retry_ms / 1000 if retry_ms is not None else 1.0
    return float(min(base * 2 ** max(0, failures - 1), 10.0))


# -- bars ----------------------------------------------------------------------------------------

BarState = Literal["waiting", "running", "done", "failed", "cancelled", "skipped"]


@dataclass(frozen=True)
class Bar:
    kind: str
    label: str
    done: int
    total: int | None  # None: not known yet (storyboards and narration before the scenario)
    state: BarState

    def line(self) -> str:
        """The bar as a plain log line: ``storyboards 2/3``."""
        if self.state == "skipped":
            return f"{self.label} skipped"
        count = f"{self.label} {self.done}/{'?' if self.total is None else self.total}"
        return f"{count} {self.state}" if self.state in ("failed", "cancelled") else count


def bars_from_steps(steps: Iterable[Mapping[str, Any]], *, narration: bool = True) -> list[Bar]:
    """One bar per step kind: the kind's steps completed out of its steps requested."""
    by_kind: dict[str, list[str]] = {}
    for step in steps:
        by_kind.setdefault(str(step["kind"]), []).append(str(step["status"]))
    bars = []
    for kind, label in KINDS:
        statuses = by_kind.get(kind, [])
        done = statuses.count("completed")
        total = len(statuses) or (1 if kind in SINGLE else None)
        state: BarState
        if not statuses and not narration and kind in NARRATED:
            state, total = "skipped", 0
        elif "failed" in statuses:
            state = "failed"
        elif "cancelled" in statuses:
            state = "cancelled"
        elif statuses and done == len(statuses):
            state = "done"
        else:
            state = "running" if statuses else "waiting"
        bars.append(Bar(kind, label, done, total, state))
    return bars


def production_bars(production: Mapping[str, Any]) -> list[Bar]:
    narration = (production.get("request") or {}).get("narration", True) is not False
    return bars_from_steps(production.get("steps") or [], narration=narration)


class Display(Protocol):
    def show(self, production: Mapping[str, Any]) -> None: ...

    def __enter__(self) -> Display: ...

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
        /,
    ) -> None: ...


class PlainDisplay:
    """For logs: a line each time a started bar changes (``narration 2/4``), no colours."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out
        self._shown: dict[str, str] = {}

    def show(self, production: Mapping[str, Any]) -> None:
        for bar in production_bars(production):
            text = bar.line()
            if bar.state == "waiting" or self._shown.get(bar.kind) == text:
                continue
            self._shown[bar.kind] = text
            print(text, file=self.out or sys.stdout, flush=True)

    def __enter__(self) -> PlainDisplay:
        return self

    def __exit__(self, *_: object) -> None:
        return None


class BarsDisplay:
    """For a terminal: live ``rich`` bars, the production's overall percent on top."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            TextColumn("{task.description:<12}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[note]}"),
            console=console,
        )
        self.overall = self.progress.add_task("production", total=100, note="")
        self.tasks: dict[str, TaskID] = {
            kind: self.progress.add_task(label, total=None, start=False, note="")
            for kind, label in KINDS
        }
        self.started: set[str] = set()
        self.stopped: set[str] = set()

    def show(self, production: Mapping[str, Any]) -> None:
        self.progress.update(
            self.overall,
            completed=int(production.get("progress") or 0),
            note=str(production.get("current_step") or ""),
        )
        for bar in production_bars(production):
            task = self.tasks[bar.kind]
            if bar.state == "skipped":
                self.progress.update(task, visible=False)
                continue
            if bar.state != "waiting" and bar.kind not in self.started:
                self.started.add(bar.kind)
                self.progress.start_task(task)
            self.progress.update(
                task,
                total=bar.total,
                completed=bar.done,
                note=bar.state if bar.state in ("failed", "cancelled") else "",
            )
            if bar.state in ("done", "failed", "cancelled") and bar.kind not in self.stopped:
                self.stopped.add(bar.kind)  # its clock stops at its last step's answer
                self.progress.stop_task(task)

    def __enter__(self) -> BarsDisplay:
        self.progress.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.progress.stop()


def make_display(console: Console) -> Display:
    """Bars on a terminal; plain lines when stdout is a file or a pipe."""
    return BarsDisplay(console) if console.is_terminal else PlainDisplay()


# -- messages ------------------------------------------------------------------------------------


def failure_message(production: Mapping[str, Any]) -> str:
    """Why a production did not complete: the failing step and its reason, or what a cancel
    stopped."""
    status = production.get("status")
    step = production.get("failed_step")
    error = str(production.get("error") or "").strip()
    if step and error.startswith(f"{step}: "):  # the saga prefixes its error with the step
        error = error[len(step) + 2 :]
    if status == "cancelled":
        stopped = [s["key"] for s in production.get("steps") or [] if s["status"] == "cancelled"]
        where = f" (stopped: {', '.join(stopped)})" if stopped else ""
        return f"the production was cancelled{where}" + (f": {error}" if error else "")
    if step:
        return f"the production failed at step {step}: {error or 'no reason given'}"
    return f"the production {status or 'ended'}: {error or 'no reason given'}"


def human_size(size: int) -> str:
    """``1.2 MB`` (powers of 1000, as a file manager shows)."""
    if size < 1000:
        return f"{size} B"
    value = float(size)
    for unit in ("kB", "MB", "GB", "TB"):
        value /= 1000
        if value < 1000 or unit == "TB":
            break
    return f"{value:.1f} {unit}"


def done_line(path: Path, size: int, duration: float | None) -> str:
    """``film done: film.mp4 (12.3 s, 1.2 MB)``."""
    seconds = "? s" if duration is None else f"{duration:.1f} s"
    return f"film done: {path} ({seconds}, {human_size(size)})"


def project_name(title: str | None, story: str) -> str:
    """The title, else the story's first non-blank line, short enough for a project name."""
    first = next((line.strip() for line in story.splitlines() if line.strip()), "")
    name = (title or "").strip() or first
    return name[:100] or "Film"


# -- credentials ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Credentials:
    """How to sign in: a token, an email and password, or (neither) the local demo user."""

    token: str | None = None
    email: str | None = None
    password: str | None = None


def resolve_credentials(
    *,
    token: str | None,
    email: str | None,
    password: str | None,
    env: Mapping[str, str],
) -> Credentials:
    """Options first, then STORYCORE_TOKEN, then STORYCORE_EMAIL and STORYCORE_PASSWORD; none
    of them: the demo user. An email's password may come from the other source (``--email``
    with STORYCORE_PASSWORD in the environment), a token never mixes with a password."""
    if token and (email or password):
        raise UsageError("give --token or --email/--password, not both")
    if token:
        return Credentials(token=token)
    if email or password:
        return _login(
            email or env.get("STORYCORE_EMAIL"), password or env.get("STORYCORE_PASSWORD")
        )
    if env.get("STORYCORE_TOKEN"):
        return Credentials(token=env["STORYCORE_TOKEN"])
    if env.get("STORYCORE_EMAIL") or env.get("STORYCORE_PASSWORD"):
        return _login(env.get("STORYCORE_EMAIL"), env.get("STORYCORE_PASSWORD"))
    return Credentials()


def _login(email: str | None, password: str | None) -> Credentials:
    if not email:
        raise UsageError("a password needs an email (--email or STORYCORE_EMAIL)")
    if not password:
        raise UsageError("an email needs a password (--password or STORYCORE_PASSWORD)")
    return Credentials(email=email, password=password)


def demo_user(data_dir: Path) -> tuple[str, str, Path]:
    """The local demo user's email and password, made up once and kept (0600) in the dev
    stack's data folder: a new folder means a new user, never someone else's password."""
    path = data_dir / DEMO_FILE
    data_dir.mkdir(parents=True, exist_ok=True)
    made = {
        "email": f"demo-{secrets.token_hex(4)}@example.com",
        "password": secrets.token_urlsafe(24),
    }
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
        kept = json.loads(path.read_text())
        return str(kept["email"]), str(kept["password"]), path
    with os.fdopen(fd, "w") as file:
        json.dump(made, file)
    return made["email"], made["password"], path


def is_local(url: str) -> bool:
    """Whether ``url`` is this machine (where the demo user may be made up)."""
    host = httpx.URL(url).host
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def default_url(data_dir: Path) -> str:
    """The running dev stack's gateway (its ``stack.json``), else localhost on the route
    table's port."""
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        return str(json.loads((data_dir / "stack.json").read_text())["gateway"])
    from storycore_devstack.routes import load_route_table

    return f"http://localhost:{load_route_table().port}"


# -- the API -------------------------------------------------------------------------------------


class Api:
    """The suite's HTTP API through the gateway: problems become :class:`ApiError`, a missing
    suite :class:`Unreachable`, and an expired access token is refreshed once (after a login)."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client
        self.refresh_token: str | None = None

    def use_token(self, access_token: str, refresh_token: str | None = None) -> None:
        self.client.headers["Authorization"] = f"Bearer {access_token}"
        self.refresh_token = refresh_token

    def login(self, email: str, password: str) -> None:
        pair = self.call("POST", "/api/auth/login", json={"email": email, "password": password})
        self.use_token(pair["access_token"], pair.get("refresh_token"))

    def call(self, method: str, path: str, *, json: object = None) -> Any:
        """One request's JSON answer (None when it has no body)."""
        answer = self.request(method, path, json=json)
        return answer.json() if answer.content else None

    def request(self, method: str, path: str, *, json: object = None) -> httpx.Response:
        for attempt in range(2):
            try:
                answer = self.client.request(method, path, json=json)
            except httpx.TransportError as exc:
                raise self._unreachable(exc) from exc
            if answer.status_code == 401 and attempt == 0 and self._refreshed(path):
                continue
            self._check(method, path, answer)
            return answer
        raise AssertionError("unreachable: the loop returns or raises")

    @contextlib.contextmanager
    def stream(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: httpx.Timeout = TIMEOUT,
    ) -> Iterator[httpx.Response]:
        """A streamed answer; a connection lost while it is read is :class:`Unreachable` too."""
        try:
            for attempt in range(2):
                with self.client.stream(
                    method, path, headers=dict(headers or {}), timeout=timeout
                ) as answer:
                    if answer.status_code == 401 and attempt == 0 and self._refreshed(path):
                        continue
                    if answer.is_error:
                        answer.read()
                    self._check(method, path, answer)
                    yield answer
                    return
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc

    def events(self, path: str, position: StreamPosition) -> Generator[ServerSentEvent, None, None]:
        """A job's SSE stream, resuming after ``position.last_id``; ``position`` follows it."""
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if position.last_id is not None:
            headers["Last-Event-ID"] = position.last_id
        with self.stream("GET", path, headers=headers, timeout=STREAM_TIMEOUT) as answer:
            try:
                for event in EventSource(answer).iter_sse():
                    position.saw(event)
                    if event.data:  # httpx-sse also hands over frames without data (pings)
                        yield event
            except SSEError as exc:  # not an event stream: a proxy's page, say
                raise FilmError(f"the production's stream is not an event stream: {exc}") from exc

    def _unreachable(self, exc: httpx.TransportError) -> Unreachable:
        reason = str(exc) or type(exc).__name__
        return Unreachable(
            f"cannot reach the suite at {self.client.base_url} ({reason}); "
            "is it running? (python3 storycore.py up)"
        )

    def _check(self, method: str, path: str, answer: httpx.Response) -> None:
        if answer.status_code in UNAVAILABLE:
            raise Unreachable(str(ApiError(method, path, answer)))
        if answer.is_error:
            raise ApiError(method, path, answer)

    def _refreshed(self, path: str) -> bool:
        """Trade the refresh token for a new pair (an access token lives 30 minutes)."""
        if self.refresh_token is None or path.startswith("/api/auth/"):
            return False
        token, self.refresh_token = self.refresh_token, None
        try:
            answer = self.client.post("/api/auth/refresh", json={"refresh_token": token})
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        if answer.status_code != 200:
            return False
        pair = answer.json()
        self.use_token(pair["access_token"], pair.get("refresh_token"))
        return True


def sign_in(api: Api, credentials: Credentials, *, url: str, data_dir: Path) -> None:
    if credentials.token is not None:
        api.use_token(credentials.token)
        return
    if credentials.email is not None and credentials.password is not None:
        api.login(credentials.email, credentials.password)
        return
    if not is_local(url):
        raise UsageError(
            f"{url} is not this machine: give --token, or --email and --password "
            "(or STORYCORE_TOKEN, or STORYCORE_EMAIL and STORYCORE_PASSWORD)"
        )
    email, password, path = demo_user(data_dir)
    print(
        f"storycore film: no credentials given: signing in as the local demo user {email} "
        f"(its password is kept in {path})",
        file=sys.stderr,
    )
    try:
        api.login(email, password)
        return
    except ApiError as exc:
        if exc.status != 401:
            raise
    try:
        api.call(
            "POST",
            "/api/auth/register",
            json={"email": email, "password": password, "name": "StoryCore demo"},
        )
    except ApiError as exc:
        if exc.code == "email_taken":
            raise FilmError(
                f"the demo user {email} exists with another password: remove {path} "
                "to make a new one, or sign in with --email and --password"
            ) from exc
        raise
    api.login(email, password)


# -- the production ------------------------------------------------------------------------------


def production_body(args: argparse.Namespace, story: str) -> dict[str, Any]:
    """The POST body: the story and the options given (the API's defaults for the rest)."""
    body: dict[str, Any] = {"story": story}
    for option in ("title", "shots_per_scene", "preset", "quality", "width", "height", "fps"):
        if (value := getattr(args, option, None)) is not None:
            body[option] = value
    if args.language is not None:
        body["voice"] = {"language": args.language}
    return body


def follow(
    api: Api,
    production: dict[str, Any],
    view: str,
    display: Display,
    *,
    sleep: Callable[[float], None] = time.sleep,
    max_failures: int = MAX_FAILURES,
) -> dict[str, Any]:
    """Follow the production's stream until it ends and return the production as it ended.

    Each ``progress`` frame re-reads the production (``view``) for its steps. A dropped stream
    is reopened with ``Last-Event-ID`` (so no frame is missed or repeated); one that ends
    without ``complete`` (a server restarting) is checked against the production itself.
    """
    display.show(production)
    position = StreamPosition()
    failures = 0
    while True:
        try:
            with contextlib.closing(api.events(production["stream_url"], position)) as events:
                for event in events:
                    failures = 0
                    if event.event == "error":
                        raise FilmError(f"the production's stream failed: {event.data}")
                    if event.event in ("progress", "complete"):
                        production = api.call("GET", view)
                        display.show(production)
                    if event.event == "complete":
                        break
                else:
                    production = api.call("GET", view)
                    display.show(production)
            if production["status"] in TERMINAL:
                return production
        except Unreachable:
            failures += 1
            if failures >= max_failures:
                raise
        sleep(reconnect_delay(failures, position.retry_ms))


def download(api: Api, path: str, target: Path) -> int:
    """Stream ``path`` to ``target`` (through ``<target>.part``, so a half file never carries
    the final name); the size written."""
    part = target.with_name(target.name + ".part")
    try:
        with api.stream("GET", path) as answer, part.open("wb") as out:
            for chunk in answer.iter_bytes(CHUNK):
                out.write(chunk)
        part.replace(target)
    finally:
        part.unlink(missing_ok=True)
    return target.stat().st_size


def download_assets(api: Api, result: Mapping[str, Any], folder: Path) -> Iterator[Path]:
    """The storyboards' keyframes (PNG) and the audio (narrations, music, mix) into
    ``folder``, yielding each path once written."""
    folder.mkdir(parents=True, exist_ok=True)
    for number, job_id in enumerate(result.get("sequence_job_ids") or [], 1):
        shots = api.call("GET", f"/api/sequences/{job_id}/result").get("shots") or []
        for position, shot in enumerate(shots):
            index = int(shot.get("order_index", position))
            target = folder / f"storyboard_{number:02d}_shot_{index + 1:02d}.png"
            download(api, f"/api/sequences/{job_id}/keyframes/{index}", target)
            yield target
    audio = result.get("audio") or {}
    named = [(f"narration_{n:02d}", a) for n, a in enumerate(audio.get("narration_ids") or [], 1)]
    named += [("music", audio.get("music_id")), ("mix", audio.get("mix_id"))]
    for name, audio_id in named:
        if not audio_id:
            continue
        extension = api.call("GET", f"/api/audio/{audio_id}").get("format") or "wav"
        target = folder / f"{name}.{extension}"
        download(api, f"/api/audio/{audio_id}/download", target)
        yield target


def read_story(source: str) -> str:
    """The story file's text (``-``: standard input)."""
    try:
        story = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the story {source}: {exc}") from exc
    if len(story.strip()) < 10:
        raise UsageError(f"the story {source} is empty (or under 10 characters)")
    return story


def output_path(out: str | None, story: str) -> Path:
    """``--out``, else the story's name with ``.mp4``, in the current folder."""
    path = Path(out) if out else Path(f"{Path(story).stem if story != '-' else 'film'}.mp4")
    if not path.parent.is_dir():
        raise UsageError(f"no folder {path.parent} for the film")
    if path.is_dir():
        raise UsageError(f"{path} is a folder: --out takes a file name")
    return path


def _cancel(api: Api, production: Mapping[str, Any]) -> None:
    print(
        f"\nstorycore film: interrupted: cancelling production {production['id']}", file=sys.stderr
    )
    with contextlib.suppress(FilmError, KeyboardInterrupt):
        api.call("POST", f"{production['job_url']}/cancel")


def run(
    args: argparse.Namespace,
    *,
    transport: httpx.BaseTransport | None = None,
    env: Mapping[str, str] | None = None,
    console: Console | None = None,
) -> int:
    """The ``film`` command; the exit code (``transport``, ``env``, ``console``: for tests)."""
    try:
        return _run(args, transport, os.environ if env is None else env, console or Console())
    except FilmError as exc:
        print(f"storycore film: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("\nstorycore film: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _run(
    args: argparse.Namespace,
    transport: httpx.BaseTransport | None,
    env: Mapping[str, str],
    console: Console,
) -> int:
    story = read_story(args.story)
    out = output_path(args.out, args.story)
    if args.project is not None:
        try:
            uuid.UUID(args.project)
        except ValueError:
            raise UsageError(
                f"--project takes a project id (a UUID), not {args.project!r}"
            ) from None
    credentials = resolve_credentials(
        token=args.token, email=args.email, password=args.password, env=env
    )
    data_dir = Path(args.data_dir)
    url = (args.url or default_url(data_dir)).rstrip("/")
    with httpx.Client(base_url=url, timeout=TIMEOUT, transport=transport) as client:
        api = Api(client)
        sign_in(api, credentials, url=url, data_dir=data_dir)
        project_id = args.project
        if project_id is None:
            name = project_name(args.title, story)
            project_id = api.call("POST", "/api/projects", json={"name": name})["id"]
            print(f"project {project_id} ({name})")
        try:
            answer = api.request(
                "POST", f"/api/projects/{project_id}/productions", json=production_body(args, story)
            )
        except ApiError as exc:
            if exc.status == 422:  # an option the API refuses (a language tag, a title)
                raise UsageError(str(exc)) from exc
            raise
        production = answer.json()
        view = answer.headers.get("location") or (
            f"/api/projects/{project_id}/productions/{production['id']}"
        )
        print(f"production {production['id']} started")
        try:
            with make_display(console) as display:
                production = follow(api, production, view, display)
        except KeyboardInterrupt:
            _cancel(api, production)
            return EXIT_INTERRUPTED
        if production["status"] != "completed":
            print(f"storycore film: {failure_message(production)}", file=sys.stderr)
            return EXIT_FAILED
        result = production.get("result") or {}
        if not result.get("download_url"):
            raise FilmError(f"production {production['id']} completed without a film")
        size = download(api, result["download_url"], out)
        print(done_line(out, size, result.get("duration_seconds")))
        if args.open:
            folder = out.with_name(f"{out.stem}_assets")
            for path in download_assets(api, result, folder):
                print(f"asset: {path}")
    return 0
