"""Shots through the gateway: CRUD, order, the shot-type fix, replicas, cascades, races."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import nats
import pytest

from storycore_devstack.stack import Stack
from storycore_shared.events.contracts.projects import ProjectCreated
from storycore_shared.events.envelope import CloudEvent
from storycore_testkit.polling import settle
from storycore_testkit.problems import assert_problem


def project(api: httpx.Client, user: Any, **fields: Any) -> str:
    answer = api.post("/api/projects", json={"name": "Film", **fields}, headers=user.headers)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def shot(api: httpx.Client, user: Any, project_id: str, **fields: Any) -> dict[str, Any]:
    body = {"project_id": project_id, "name": "Opening", "prompt": "A city at dawn", **fields}
    answer = api.post("/api/shots", json=body, headers=user.headers)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def test_shot_crud_regenerate_and_project_listing(api: httpx.Client, make_user: Any):
    user = make_user()
    pid = project(api, user)
    first = shot(
        api,
        user,
        pid,
        shot_type="establishing",
        framing="wide",
        camera_angle="high",
        duration_seconds=4.5,
        metadata={"lens": "24mm"},
    )
    assert first["order_index"] == 0
    assert first["status"] == "pending"
    assert first["version"] == 1
    assert first["metadata"] == {"lens": "24mm"}
    second = shot(api, user, pid, name="Chase")
    assert second["order_index"] == 1
    assert api.get(f"/api/shots/{first['id']}", headers=user.headers).json() == first

    updated = api.put(
        f"/api/shots/{first['id']}",
        json={"name": "Dawn", "description": None, "version": 1},
        headers=user.headers,
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["name"] == "Dawn"
    assert updated.json()["framing"] == "wide"  # null and absent fields are left as they were
    assert updated.json()["version"] == 2

    regen = api.post(
        f"/api/shots/{first['id']}/regenerate",
        json={"prompt": "A city at dusk"},
        headers=user.headers,
    )
    assert regen.status_code == 202
    assert regen.json()["status"] == "pending"
    assert regen.json()["prompt"] == "A city at dusk"
    assert regen.json()["result_url"] is None

    listed = api.get(f"/api/projects/{pid}/shots", headers=user.headers).json()
    assert [s["id"] for s in listed["shots"]] == [first["id"], second["id"]]
    assert listed["total"] == 2
    pending = api.get(
        f"/api/projects/{pid}/shots", params={"status": "completed"}, headers=user.headers
    ).json()
    assert pending["total"] == 0

    assert api.delete(f"/api/shots/{second['id']}", headers=user.headers).status_code == 204
    assert_problem(
        api.get(f"/api/shots/{second['id']}", headers=user.headers), 404, "shot_not_found"
    )
    settle(lambda: _shot_count(api, user, pid) == 1, within=5, what="shot_count follows")


def _shot_count(api: httpx.Client, user: Any, pid: str) -> int:
    return int(api.get(f"/api/projects/{pid}/summary", headers=user.headers).json()["shot_count"])


def test_reorder_renumbers_atomically_and_rejects_anything_but_the_exact_set(
    api: httpx.Client, make_user: Any
):
    user = make_user()
    pid = project(api, user)
    ids = [shot(api, user, pid, name=f"S{i}")["id"] for i in range(4)]
    other = shot(api, user, project(api, user))["id"]
    wanted = [ids[2], ids[0], ids[3], ids[1]]
    answer = api.put(
        f"/api/projects/{pid}/shots/order", json={"shot_ids": wanted}, headers=user.headers
    )
    assert answer.status_code == 200, answer.text
    listed = api.get(f"/api/projects/{pid}/shots", headers=user.headers).json()["shots"]
    assert [s["id"] for s in listed] == wanted
    assert [s["order_index"] for s in listed] == [0, 1, 2, 3]
    for bad in (
        [ids[0], ids[1], ids[2]],
        [*wanted, other],
        [*wanted[:3], wanted[0]],
        [*wanted[:3], str(uuid.uuid4())],
        [],
    ):
        refused = api.put(
            f"/api/projects/{pid}/shots/order", json={"shot_ids": bad}, headers=user.headers
        )
        assert_problem(refused, 422, "invalid_shot_order")
    after = api.get(f"/api/projects/{pid}/shots", headers=user.headers).json()["shots"]
    assert after == listed  # nothing changed, versions included


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ({"shot_type": "closeup"}, {"shot_type": "action", "framing": "close-up"}),
        ({"shot_type": "close-up"}, {"shot_type": "action", "framing": "close-up"}),
        ({"shot_type": "wide"}, {"shot_type": "action", "framing": "wide"}),
        ({"shot_type": "medium"}, {"shot_type": "action", "framing": "medium"}),
        ({"shot_type": "pov"}, {"shot_type": "action", "framing": "pov"}),
        (
            {"shot_type": "over-the-shoulder"},
            {"shot_type": "action", "framing": "over-the-shoulder"},
        ),
        ({"shot_type": "extreme-wide"}, {"shot_type": "action", "framing": "extreme-wide"}),
        (
            {"shot_type": "extreme-close-up"},
            {"shot_type": "action", "framing": "extreme-close-up"},
        ),
        ({"framing": "close_up"}, {"shot_type": "action", "framing": "close-up"}),
        ({"framing": "closeup"}, {"shot_type": "action", "framing": "close-up"}),
        ({"shot_type": "wide", "framing": "wide"}, {"shot_type": "action", "framing": "wide"}),
        *[
            ({"shot_type": t}, {"shot_type": t, "framing": None})
            for t in (
                "establishing",
                "action",
                "dialogue",
                "reaction",
                "insert",
                "transition",
                "custom",
            )
        ],
        *[
            ({"framing": f}, {"shot_type": "action", "framing": f})
            for f in (
                "extreme-wide",
                "wide",
                "medium",
                "close-up",
                "extreme-close-up",
                "over-the-shoulder",
                "pov",
            )
        ],
        *[
            ({"camera_angle": a}, {"camera_angle": a})
            for a in ("eye-level", "high", "low", "dutch", "birds-eye", "worms-eye")
        ],
    ],
)
def test_shot_type_framing_and_angle_values_round_trip(
    api: httpx.Client, make_user: Any, sent: dict[str, Any], stored: dict[str, Any]
):
    user = make_user()
    created = shot(api, user, project(api, user), **sent)
    fetched = api.get(f"/api/shots/{created['id']}", headers=user.headers).json()
    for key, value in stored.items():
        assert created[key] == value, key
        assert fetched[key] == value, key


def test_legacy_values_also_work_on_update(api: httpx.Client, make_user: Any):
    user = make_user()
    created = shot(api, user, project(api, user), shot_type="dialogue")
    answer = api.put(
        f"/api/shots/{created['id']}", json={"shot_type": "closeup"}, headers=user.headers
    )
    assert answer.json()["shot_type"] == "dialogue"  # the purpose stays
    assert answer.json()["framing"] == "close-up"


@pytest.mark.parametrize(
    "bad",
    [
        {"shot_type": "panorama"},
        {"framing": "tight"},
        {"camera_angle": "overhead"},
        {"shot_type": "wide", "framing": "close-up"},
        {"duration_seconds": 0.1},
        {"duration_seconds": 301},
        {"prompt": ""},
        {"prompt": "x" * 2001},
        {"order_index": -1},
        {"status": "completed"},
        {"colour": "red"},
    ],
)
def test_bad_shot_values_are_422_naming_what_is_allowed(
    api: httpx.Client, make_user: Any, bad: dict[str, Any]
):
    user = make_user()
    pid = project(api, user)
    body = {"project_id": pid, "name": "x", "prompt": "y", **bad}
    problem = assert_problem(api.post("/api/shots", json=body, headers=user.headers), 422)
    if "shot_type" in bad and "framing" not in bad:
        assert "establishing" in str(problem["errors"])
        assert "over-the-shoulder" in str(problem["errors"])
    assert api.get(f"/api/projects/{pid}/shots", headers=user.headers).json()["total"] == 0


@pytest.mark.parametrize(
    "field", ["id", "project_id", "created_at", "updated_at", "result_url", "owner_id"]
)
def test_protected_shot_fields_cannot_be_updated(api: httpx.Client, make_user: Any, field: str):
    user = make_user()
    created = shot(api, user, project(api, user))
    answer = api.put(
        f"/api/shots/{created['id']}", json={field: str(uuid.uuid4())}, headers=user.headers
    )
    assert_problem(answer, 422)
    assert api.get(f"/api/shots/{created['id']}", headers=user.headers).json() == created


def test_another_users_shots_are_404_and_a_public_projects_are_read_only(
    api: httpx.Client, make_user: Any
):
    owner, stranger = make_user(), make_user()
    pid = project(api, owner)
    sid = shot(api, owner, pid)["id"]
    attempts = [
        ("GET", f"/api/shots/{sid}", None),
        ("PUT", f"/api/shots/{sid}", {"name": "mine"}),
        ("DELETE", f"/api/shots/{sid}", None),
        ("POST", f"/api/shots/{sid}/regenerate", {}),
        ("GET", f"/api/projects/{pid}/shots", None),
        ("PUT", f"/api/projects/{pid}/shots/order", {"shot_ids": [sid]}),
        ("POST", "/api/shots", {"project_id": pid, "name": "x", "prompt": "y"}),
    ]
    for method, path, body in attempts:
        answer = api.request(method, path, json=body, headers=stranger.headers)
        assert answer.status_code == 404, (method, path, answer.status_code)
        assert_problem(answer, 404)

    api.put(f"/api/projects/{pid}", json={"is_public": True}, headers=owner.headers)

    def public_now() -> bool:
        return api.get(f"/api/shots/{sid}", headers=stranger.headers).status_code == 200

    settle(public_now, within=5, what="project.updated reached the shots replica")
    assert api.get(f"/api/projects/{pid}/shots", headers=stranger.headers).status_code == 200
    for method, path, body in attempts[1:4] + attempts[5:]:
        answer = api.request(method, path, json=body, headers=stranger.headers)
        assert_problem(answer, 403, "project_read_only")
    assert api.get(f"/api/shots/{sid}", headers=owner.headers).json()["name"] == "Opening"


def test_read_your_writes_a_shot_right_after_its_project(api: httpx.Client, make_user: Any):
    user = make_user()
    for i in range(20):
        pid = project(api, user, name=f"fresh {i}")
        answer = api.post(
            "/api/shots", json={"project_id": pid, "name": "s", "prompt": "p"}, headers=user.headers
        )
        assert answer.status_code == 201, f"attempt {i}: {answer.status_code} {answer.text}"


async def test_concurrent_updates_of_one_shot_exactly_one_wins(stack: Stack, make_user: Any):
    user = make_user()
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as client:
        pid = (
            await client.post("/api/projects", json={"name": "race"}, headers=user.headers)
        ).json()["id"]
        created = (
            await client.post(
                "/api/shots",
                json={"project_id": pid, "name": "s", "prompt": "p"},
                headers=user.headers,
            )
        ).json()
        answers = await asyncio.gather(
            *[
                client.put(
                    f"/api/shots/{created['id']}",
                    json={"name": f"writer {i}", "version": created["version"]},
                    headers=user.headers,
                )
                for i in range(16)
            ]
        )
        final = (await client.get(f"/api/shots/{created['id']}", headers=user.headers)).json()
    assert sorted(a.status_code for a in answers) == [200] + [409] * 15
    for answer in answers:
        if answer.status_code == 409:
            assert_problem(answer, 409, "version_conflict")
    assert final["version"] == 2
    assert final["name"] == next(a for a in answers if a.status_code == 200).json()["name"]


async def test_fifty_parallel_creates_are_all_listed_once(stack: Stack, make_user: Any):
    user = make_user()
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=60) as client:
        pid = (
            await client.post("/api/projects", json={"name": "burst"}, headers=user.headers)
        ).json()["id"]
        answers = await asyncio.gather(
            *[
                client.post(
                    "/api/shots",
                    json={"project_id": pid, "name": f"s{i}", "prompt": "p"},
                    headers=user.headers,
                )
                for i in range(50)
            ]
        )
        assert [a.status_code for a in answers] == [201] * 50
        listed = (
            await client.get(
                f"/api/projects/{pid}/shots", params={"page_size": 100}, headers=user.headers
            )
        ).json()
    ids = [s["id"] for s in listed["shots"]]
    assert listed["total"] == 50
    assert sorted(ids) == sorted(a.json()["id"] for a in answers)
    assert sorted(s["order_index"] for s in listed["shots"]) == list(range(50))


def test_deleting_a_project_cascades_to_its_shots_and_locations_only(
    api: httpx.Client, make_user: Any
):
    user = make_user()
    doomed, kept = project(api, user), project(api, user)
    doomed_shots = [shot(api, user, doomed)["id"] for _ in range(3)]
    kept_shot = shot(api, user, kept)["id"]
    doomed_location = api.post(
        "/api/locations", json={"name": "Harbour", "project_id": doomed}, headers=user.headers
    ).json()["id"]
    kept_location = api.post(
        "/api/locations", json={"name": "Attic", "project_id": kept}, headers=user.headers
    ).json()["id"]
    settle(lambda: _shot_count(api, user, doomed) == 3, within=5, what="shot_count is 3")
    assert api.delete(f"/api/projects/{doomed}", headers=user.headers).status_code == 204

    def gone() -> bool:
        statuses = [
            api.get(f"/api/shots/{s}", headers=user.headers).status_code for s in doomed_shots
        ]
        statuses.append(
            api.get(f"/api/locations/{doomed_location}", headers=user.headers).status_code
        )
        return statuses == [404] * 4

    took = settle(gone, within=2, what="the project's shots and location are gone")
    assert took <= 2
    assert api.get(f"/api/shots/{kept_shot}", headers=user.headers).status_code == 200
    assert api.get(f"/api/locations/{kept_location}", headers=user.headers).status_code == 200
    settle(lambda: _shot_count(api, user, kept) == 1, within=5, what="the kept count is 1")
    mine = api.get("/api/locations", headers=user.headers).json()
    assert [loc["id"] for loc in mine["locations"]] == [kept_location]


def test_redelivered_and_late_project_events_are_harmless(
    stack: Stack, api: httpx.Client, make_user: Any
):
    user = make_user()
    pid = project(api, user)
    shot(api, user, pid)
    assert api.delete(f"/api/projects/{pid}", headers=user.headers).status_code == 204
    settle(
        lambda: api.get(f"/api/projects/{pid}/shots", headers=user.headers).status_code == 404,
        within=5,
        what="cascade",
    )
    deleted = asyncio.run(_find_event(stack.nats_url, "project.deleted", pid))
    # The same event again (new message id, so JetStream cannot drop it), and a stale
    # project.created that arrives after the delete.
    stale = CloudEvent.wrap(
        ProjectCreated(
            id=uuid.UUID(pid),
            project_id=uuid.UUID(pid),
            owner_id=uuid.UUID(user.id),
            name="zombie",
            is_public=True,
            status="draft",
            version=99,
        ),
        source="projects",
    )
    asyncio.run(_publish(stack.nats_url, [deleted, stale]))
    after = project(api, user)  # a later event, processed after the two above
    shot(api, user, after)
    settle(lambda: _shot_count(api, user, after) == 1, within=5, what="later events flow")
    assert_problem(api.get(f"/api/projects/{pid}/shots", headers=user.headers), 404)
    for service in ("shots", "locations"):
        ready = httpx.get(f"{stack.replicas[service][0].url}/readyz", timeout=5).json()
        assert ready["checks"]["database"]["dead_letters"] == 0


async def _find_event(nats_url: str, event_type: str, subject: str) -> CloudEvent:
    nc = await nats.connect(nats_url)
    try:
        sub = await nc.jetstream().pull_subscribe(event_type, stream="PROJECTS")
        while True:
            for msg in await sub.fetch(200, timeout=5):
                event = CloudEvent.model_validate_json(msg.data)
                if event.subject == subject:
                    return event
    finally:
        await nc.close()


async def _publish(nats_url: str, events: list[CloudEvent]) -> None:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        for event in events:
            await js.publish(
                event.type, event.to_bytes(), headers={"Nats-Msg-Id": f"replay-{uuid.uuid4()}"}
            )
    finally:
        await nc.close()


def test_project_sub_resources_are_answered_by_their_owning_services(
    stack: Stack, api: httpx.Client, make_user: Any
):
    user = make_user()
    pid = project(api, user)
    shot(api, user, pid)
    # Served from the shots and locations replicas even while projects is down.
    stack.stop_replica("projects")
    try:
        shots = api.get(f"/api/projects/{pid}/shots", headers=user.headers)
        locations = api.get(f"/api/projects/{pid}/locations", headers=user.headers)
        assert shots.status_code == 200
        assert shots.json()["total"] == 1
        assert locations.status_code == 200
        answers: set[int] = set()

        def projects_down() -> bool:
            answers.add(api.get(f"/api/projects/{pid}", headers=user.headers).status_code)
            return 503 in answers

        settle(projects_down, within=10, what="projects itself answers 503")
        assert answers <= {502, 503}
    finally:
        stack.start_replica("projects")
    settle(
        lambda: api.get(f"/api/projects/{pid}", headers=user.headers).status_code == 200,
        within=15,
        what="projects back",
    )
