"""No input is a 500: every write route, through the gateway, refuses what Postgres cannot store.

The table below names, for each write route of each service, a valid body and where a stored
string, a number and an integer sit in it. Each poison (NUL, a lone surrogate, NaN, Infinity,
2^63; a 5,000-digit If-Match where the route reads one) must be a 422 problem+json whose
``errors`` name the field, and must change nothing: what the route would have written reads the
same before and after. Bodies are sent as raw JSON text, the way an attacker would: ``json.dumps``
writes ``NaN`` and ``\\udc00``, which httpx's own encoder refuses.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from storycore_devstack.stack import Stack
from storycore_shared.bodies import strict_json_errors
from storycore_shared.types import Int32, JsonObject, SafeText
from storycore_testkit.problems import assert_problem

PASSWORD = "a long enough password"
STORY = "A lighthouse keeper sees a ship. The storm breaks over the cliff."


@dataclass
class World:
    """One user with a project, a shot and a location, shared by the whole table."""

    client: httpx.Client
    headers: dict[str, str]
    email: str
    refresh_token: str
    project_id: str
    shot_id: str
    location_id: str


def register(client: httpx.Client) -> tuple[str, dict[str, Any]]:
    email = f"bad-input-{uuid.uuid4().hex[:10]}@example.com"
    created = client.post(
        "/api/auth/register", json={"email": email, "password": PASSWORD, "name": "Tester"}
    )
    assert created.status_code == 201, created.text
    login = client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    return email, login.json()


@pytest.fixture(scope="module")
def world(stack: Stack) -> Iterator[World]:
    with httpx.Client(base_url=stack.gateway_url, timeout=15) as client:
        email, tokens = register(client)
        headers = {"Authorization": f"Bearer {tokens['access_token']}"}
        project = client.post("/api/projects", json={"name": "Target"}, headers=headers)
        assert project.status_code == 201, project.text
        pid = project.json()["id"]
        shot = client.post(
            "/api/shots",
            json={"project_id": pid, "name": "Opening", "prompt": "A ship at dawn"},
            headers=headers,
        )
        assert shot.status_code == 201, shot.text
        location = client.post(
            "/api/locations", json={"name": "Cliff", "project_id": pid}, headers=headers
        )
        assert location.status_code == 201, location.text
        yield World(
            client,
            headers,
            email,
            tokens["refresh_token"],
            pid,
            shot.json()["id"],
            location.json()["id"],
        )


State = Callable[[World, dict[str, Any]], Any]


def _get(path: str) -> State:
    def read(world: World, _: dict[str, Any]) -> Any:
        answer = world.client.get(path.format(w=world), headers=world.headers)
        assert answer.status_code == 200, answer.text
        return answer.json()

    return read


def _nothing(_: World, __: dict[str, Any]) -> None:
    return None


def _can_log_in(world: World, body: dict[str, Any]) -> int:
    """Whether the account of a register body exists: 401 before and after, never 200."""
    credentials = {"email": body["email"], "password": body["password"]}
    return world.client.post("/api/auth/login", json=credentials).status_code


@dataclass(frozen=True)
class WriteRoute:
    name: str
    method: str
    path: str  # formatted with the world as ``w``
    body: Callable[[World], dict[str, Any]]
    text: tuple[str | int, ...]  # a stored string
    number: tuple[str | int, ...]  # a float or free-form JSON value (NaN, Infinity go here)
    integer: tuple[str | int, ...]  # an integer (2^63 goes here)
    state: State = _nothing  # what must read the same before and after
    if_match: bool = False
    auth: bool = True
    headers: dict[str, str] = field(default_factory=dict)


def _new_account(_: World) -> dict[str, Any]:
    return {
        "email": f"never-{uuid.uuid4().hex[:10]}@example.com",
        "password": PASSWORD,
        "name": "X",
    }


ROUTES = [
    WriteRoute(
        "auth.register", "POST", "/api/auth/register", _new_account,
        ("name",), ("name",), ("name",), state=_can_log_in, auth=False,
    ),
    WriteRoute(
        "auth.login", "POST", "/api/auth/login",
        lambda w: {"email": w.email, "password": PASSWORD},
        ("email",), ("password",), ("password",), auth=False,
    ),
    WriteRoute(
        "auth.refresh", "POST", "/api/auth/refresh",
        lambda w: {"refresh_token": w.refresh_token},
        ("refresh_token",), ("refresh_token",), ("refresh_token",), auth=False,
    ),
    WriteRoute(
        "auth.logout", "POST", "/api/auth/logout",
        lambda w: {"refresh_token": w.refresh_token},
        ("refresh_token",), ("refresh_token",), ("refresh_token",), auth=False,
    ),
    WriteRoute(
        "projects.create", "POST", "/api/projects",
        lambda _: {"name": "Poisoned", "metadata": {"k": 1.5}, "fps": 24, "tags": ["a"]},
        ("tags", 0), ("metadata", "k"), ("fps",),
        state=_get("/api/projects?page_size=100"),
    ),
    WriteRoute(
        "projects.update", "PUT", "/api/projects/{w.project_id}",
        lambda _: {"name": "Renamed", "metadata": {"k": 2.5}, "resolution_width": 640},
        ("name",), ("metadata", "k"), ("resolution_width",),
        state=_get("/api/projects/{w.project_id}"), if_match=True,
    ),
    WriteRoute(
        "shots.create", "POST", "/api/shots",
        lambda w: {
            "project_id": w.project_id, "name": "Poisoned", "prompt": "A storm at sea",
            "duration_seconds": 4.0, "order_index": 7, "metadata": {},
        },
        ("prompt",), ("duration_seconds",), ("order_index",),
        state=_get("/api/projects/{w.project_id}/shots?page_size=100"),
    ),
    WriteRoute(
        "shots.update", "PUT", "/api/shots/{w.shot_id}",
        lambda _: {"name": "Renamed", "duration_seconds": 3.0, "order_index": 1},
        ("name",), ("duration_seconds",), ("order_index",),
        state=_get("/api/shots/{w.shot_id}"), if_match=True,
    ),
    WriteRoute(
        "shots.reorder", "PUT", "/api/projects/{w.project_id}/shots/order",
        lambda w: {"shot_ids": [w.shot_id]},
        ("shot_ids", 0), ("shot_ids", 0), ("shot_ids", 0),
        state=_get("/api/projects/{w.project_id}/shots?page_size=100"),
    ),
    WriteRoute(
        "shots.regenerate", "POST", "/api/shots/{w.shot_id}/regenerate",
        lambda _: {"prompt": "The same ship at dusk"},
        ("prompt",), ("prompt",), ("prompt",),
        state=_get("/api/shots/{w.shot_id}"),
    ),
    WriteRoute(
        "locations.create", "POST", "/api/locations",
        lambda w: {
            "name": "Poisoned", "project_id": w.project_id, "metadata": {"k": 1.5},
            "skybox_data": {"n": 1},
        },
        ("name",), ("metadata", "k"), ("skybox_data", "n"),
        state=_get("/api/locations?page_size=100"),
    ),
    WriteRoute(
        "locations.update", "PUT", "/api/locations/{w.location_id}",
        lambda _: {"description": "Windy", "skybox_data": {"n": 2.5}, "version": 1},
        ("description",), ("skybox_data", "n"), ("version",),
        state=_get("/api/locations/{w.location_id}"), if_match=True,
    ),
    WriteRoute(
        "sequences.generate", "POST", "/api/sequences/generate",
        lambda w: {"project_id": w.project_id, "prompt": STORY, "shot_count": 2},
        ("prompt",), ("shot_count",), ("shot_count",),
        state=_get("/api/sequences?page_size=100"),
    ),
    WriteRoute(
        "llm.generate", "POST", "/api/llm/generate",
        lambda _: {"prompt": "Say hello", "temperature": 0.5, "max_tokens": 50},
        ("prompt",), ("temperature",), ("max_tokens",),
        state=_get("/api/llm/usage"),
    ),
    WriteRoute(
        "llm.chat", "POST", "/api/llm/chat",
        lambda _: {"messages": [{"role": "user", "content": "Hello"}], "temperature": 0.5},
        ("messages", 0, "content"), ("temperature",), ("messages", 0, "content"),
        state=_get("/api/llm/usage"),
    ),
    WriteRoute(
        "llm.streaming-generate", "POST", "/api/llm/streaming-generate",
        lambda _: {"prompt": "Say hello", "temperature": 0.5, "max_tokens": 50},
        ("prompt",), ("temperature",), ("max_tokens",),
        state=_get("/api/llm/usage"), headers={"Accept": "text/event-stream"},
    ),
    WriteRoute(
        "llm.render-template", "POST", "/api/llm/render-template",
        lambda _: {"name": "story_generation", "variables": {"genre": "noir", "length": 3}},
        ("variables", "genre"), ("variables", "length"), ("variables", "length"),
    ),
    WriteRoute(
        "llm.plan", "POST", "/api/llm/plan",
        lambda _: {"prompt": STORY, "shot_count": 2},
        ("prompt",), ("shot_count",), ("shot_count",),
    ),
    WriteRoute(
        "scenario.transform", "POST", "/api/scenario/transform",
        lambda _: {"story": STORY, "title": "Lighthouse"},
        ("story",), ("title",), ("title",),
        state=_get("/api/scenario?page_size=100"),
    ),
]  # fmt: skip

BY_NAME = {route.name: route for route in ROUTES}


def _placed(body: dict[str, Any], where: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    poisoned = copy.deepcopy(body)
    target: Any = poisoned
    for step in where[:-1]:
        target = target[step]
    target[where[-1]] = value
    return poisoned


def _spliced(body: dict[str, Any], where: tuple[str | int, ...], bad: str) -> dict[str, Any]:
    """The bad character inside the valid string, so no length rule can be what refuses it."""
    current: Any = body
    for step in where:
        current = current[step]
    text = str(current)
    return _placed(body, where, text[:2] + bad + text[2:])


POISONS: dict[str, Callable[[WriteRoute, dict[str, Any]], tuple[dict[str, Any], tuple]]] = {
    "nul": lambda r, b: (_spliced(b, r.text, "\u0000"), r.text),
    "lone-surrogate": lambda r, b: (_spliced(b, r.text, "\udc00"), r.text),
    "nan": lambda r, b: (_placed(b, r.number, float("nan")), r.number),
    "infinity": lambda r, b: (_placed(b, r.number, float("inf")), r.number),
    "minus-infinity": lambda r, b: (_placed(b, r.number, float("-inf")), r.number),
    "2^63": lambda r, b: (_placed(b, r.integer, 2**63), r.integer),
}


def send(
    world: World,
    route: WriteRoute,
    body: dict[str, Any] | bytes,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode("ascii")
    return world.client.request(
        route.method,
        route.path.format(w=world),
        content=content,
        headers={
            "Content-Type": "application/json",
            **(world.headers if route.auth else {}),
            **route.headers,
            **(headers or {}),
        },
    )


def assert_refused(answer: httpx.Response, loc: list[str | int]) -> None:
    problem = assert_problem(answer, 422, "validation_error")
    locs = [error["loc"] for error in problem["errors"]]
    assert loc in locs, (loc, problem)


@pytest.mark.parametrize("poison", list(POISONS))
@pytest.mark.parametrize("route", ROUTES, ids=[r.name for r in ROUTES])
def test_poison_is_a_422_naming_the_field_and_nothing_changes(
    world: World, route: WriteRoute, poison: str
):
    valid = route.body(world)
    before = route.state(world, valid)
    body, where = POISONS[poison](route, valid)
    assert_refused(send(world, route, body), ["body", *where])
    assert route.state(world, valid) == before


IF_MATCH_ROUTES = [r for r in ROUTES if r.if_match] + [
    WriteRoute(
        "projects.delete", "DELETE", "/api/projects/{w.project_id}", lambda _: {},
        (), (), (), state=_get("/api/projects/{w.project_id}"),
    ),
    WriteRoute(
        "shots.delete", "DELETE", "/api/shots/{w.shot_id}", lambda _: {},
        (), (), (), state=_get("/api/shots/{w.shot_id}"),
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    "if_match",
    ["9" * 5000, '"99999999999"', '"2147483648"', 'W/"-1"', '"1", "2"'],
    ids=["5000-digits", "11-digits", "2^31", "negative", "a-list"],
)
@pytest.mark.parametrize("route", IF_MATCH_ROUTES, ids=[r.name for r in IF_MATCH_ROUTES])
def test_an_absurd_if_match_is_a_422_and_nothing_changes(
    world: World, route: WriteRoute, if_match: str
):
    body = route.body(world)
    before = route.state(world, body)
    answer = send(world, route, body if body else b"", {"If-Match": if_match})
    assert_refused(answer, ["header", "If-Match"])
    assert route.state(world, body) == before


# -- the JSON itself, and strict types ------------------------------------------------------------

PROJECTS = BY_NAME["projects.create"]


@pytest.mark.parametrize(
    ("raw", "loc", "kind"),
    [
        (b'{"name": "a", "name": "b"}', ["body", "name"], "json_duplicate_key"),
        (b'{"name": "a", "metadata": {"k": 1, "k": 2}}', ["body", "metadata", "k"], None),
        (b'{"name": "a", "fps": true}', ["body", "fps"], "int_type"),
        (b'{"name": "a", "fps": "5"}', ["body", "fps"], "int_type"),
        (b'{"name": "a", "fps": 24.0}', ["body", "fps"], "int_type"),
        (b'{"name": "a", "is_public": 1}', ["body", "is_public"], "bool_type"),
        (b'{"name": "a", "is_public": "true"}', ["body", "is_public"], "bool_type"),
        (b'{"name": 5}', ["body", "name"], "string_type"),
        (b'{"name": "a", "metadata": {"k": 1e400}}', ["body", "metadata", "k"], None),
        (b'{"name": "a", "metadata": {"k": %s}}' % (b"9" * 5000), ["body", "metadata", "k"], None),
        (b'{"name": "a", "metadata": {"\\u0000": 1}}', None, "string_nul_character"),
        (b'{"name": "a", "metadata": ' + b"[" * 100 + b"]" * 100 + b"}", None, "json_too_deep"),
        (b'{"name": "a"', ["body", 12], "json_invalid"),
        (b'{"name": "\xff"}', None, "json_invalid"),
    ],
    ids=[
        "duplicate-key", "nested-duplicate-key", "true-for-int", "string-for-int",
        "float-for-int", "int-for-bool", "string-for-bool", "int-for-string", "1e400",
        "5000-digit-int", "nul-in-key", "too-deep", "truncated", "not-utf8",
    ],
)  # fmt: skip
def test_json_is_decoded_strictly(
    world: World, raw: bytes, loc: list[str | int] | None, kind: str | None
):
    before = PROJECTS.state(world, {})
    problem = assert_problem(send(world, PROJECTS, raw), 422, "validation_error")
    if loc is not None:
        assert loc in [e["loc"] for e in problem["errors"]], problem
    if kind is not None:
        assert kind in [e["type"] for e in problem["errors"]], problem
    assert PROJECTS.state(world, {}) == before


def test_a_password_is_never_echoed(world: World):
    answer = send(world, BY_NAME["auth.login"], {"email": world.email, "password": "secret\u0000x"})
    assert_refused(answer, ["body", "password"])
    assert "secret" not in answer.text


@pytest.mark.parametrize(
    ("query", "loc"),
    [
        ("page=99999999999999999999", ["query", "page"]),
        ("page=" + "9" * 5000, ["query", "page"]),
        ("page=2147483648", ["query", "page"]),
        ("page_size=101", ["query", "page_size"]),
        ("page=1.5", ["query", "page"]),
    ],
)
def test_paging_numbers_are_bounded(world: World, query: str, loc: list[str]):
    for path in ("/api/projects", "/api/locations", "/api/sequences", "/api/scenario"):
        answer = world.client.get(f"{path}?{query}", headers=world.headers)
        assert loc in [e["loc"] for e in assert_problem(answer, 422)["errors"]], path


@pytest.mark.parametrize(
    "last_event_id",
    [b"abc", b"\xb2", b"9" * 5000, b"-1", b"99999999999", b"0x10", b"1e3"],
    ids=["letters", "superscript-two", "5000-digits", "negative", "past-int32", "hex", "1e3"],
)
def test_a_strange_last_event_id_replays_from_the_start(world: World, last_event_id: bytes):
    jobs = world.client.get("/api/sequences", headers=world.headers).json()["jobs"]
    if jobs:
        job_id = jobs[0]["job_id"]
    else:
        answer = world.client.post(
            "/api/sequences/generate",
            json={"project_id": world.project_id, "prompt": STORY, "shot_count": 1},
            headers=world.headers,
        )
        assert answer.status_code == 202, answer.text
        job_id = answer.json()["job_id"]
    headers: dict[str, str | bytes] = {
        **world.headers,
        "Accept": "text/event-stream",
        "Last-Event-ID": last_event_id,  # bytes: "\xb2" is "²" in latin-1, and isdigit()
    }
    with world.client.stream(
        "GET", f"/api/sequences/{job_id}/stream", headers=headers, timeout=60
    ) as answer:
        assert answer.status_code == 200, answer.read()
        for line in answer.iter_lines():
            if line.startswith("id:"):
                assert int(line.partition(":")[2]) >= 1  # a frame from the start
                break


# -- sizes: problem+json from the gateway and from the service ------------------------------------


def test_a_body_over_the_gateway_limit_is_a_413_problem(stack: Stack, world: World):
    limit = int(stack.config.extra_env["STORYCORE_MAX_BODY_BYTES"])
    before = PROJECTS.state(world, {})
    body = {"name": "big", "metadata": {"blob": "y" * limit}}
    assert_problem(send(world, PROJECTS, body), 413, "payload_too_large")
    assert PROJECTS.state(world, {}) == before


def test_a_read_with_a_body_over_the_limit_is_a_413_problem_too(stack: Stack, world: World):
    """GET and HEAD have a router without the gateway's buffering (storycore_devstack.routes):
    a body on one still meets the limit, in the service."""
    limit = int(stack.config.extra_env["STORYCORE_MAX_BODY_BYTES"])
    answer = world.client.request(
        "GET",
        "/api/projects",
        content=b"y" * (limit + 1),
        headers={**world.headers, "Content-Type": "application/json"},
    )
    assert_problem(answer, 413, "payload_too_large")


def test_the_streaming_route_limits_its_body_itself(stack: Stack, world: World):
    """No buffering middleware on this route (it would hold back the SSE frames): the llm
    service answers 413 problem+json itself, for a declared length and for a chunked body."""
    limit = int(stack.config.extra_env["STORYCORE_MAX_BODY_BYTES"])
    route = BY_NAME["llm.streaming-generate"]
    before = route.state(world, {})
    huge = json.dumps({"prompt": "x" * (10 * 2**20)}).encode()
    assert_problem(send(world, route, huge), 413, "payload_too_large")

    def chunks() -> Iterator[bytes]:
        yield b'{"prompt": "'
        for _ in range(limit // 4096 + 2):
            yield b"y" * 4096
        yield b'"}'

    answer = world.client.post(
        "/api/llm/streaming-generate",
        content=chunks(),
        headers={**world.headers, "Content-Type": "application/json"},
    )
    assert_problem(answer, 413, "payload_too_large")
    assert route.state(world, {}) == before


# -- the same rules without a server ----------------------------------------------------------


def test_the_decoder_and_the_types_agree():
    from pydantic import TypeAdapter, ValidationError

    assert strict_json_errors(b'{"a": [1, 2.5, "\\ud83d\\ude00", null, true]}') == []
    for raw in (b'{"a": NaN}', b'{"a": "\\ud800"}', b'{"a": 1, "a": 1}', b'{"a": -1e999}'):
        assert strict_json_errors(raw), raw
    checks: list[tuple[Any, Any]] = [
        (SafeText, "a\x00b"),
        (SafeText, "a\udc00"),
        (SafeText, 5),
        (Int32, 2**31),
        (Int32, True),
        (Int32, "5"),
        (JsonObject, {"a": [{"b": float("nan")}]}),
        (JsonObject, {"a": "\x00"}),
        (JsonObject, {"a": 2**63}),
    ]
    for kind, value in checks:
        with pytest.raises(ValidationError):
            TypeAdapter(kind).validate_python(value)
