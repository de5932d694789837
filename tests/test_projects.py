"""Projects through the gateway: CRUD with events, ownership, strict updates, versions."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import nats
import pytest

from storycore_devstack.stack import Stack
from storycore_shared.events.envelope import CloudEvent
from storycore_testkit.polling import eventually
from storycore_testkit.problems import assert_problem


def create(api: httpx.Client, user: Any, **fields: Any) -> dict[str, Any]:
    answer = api.post("/api/projects", json={"name": "Storyboard", **fields}, headers=user.headers)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


async def project_events(nats_url: str, project_id: str, count: int) -> list[CloudEvent]:
    """The PROJECTS stream's events about one project, read by a fresh ephemeral consumer."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        found: list[CloudEvent] = []

        async def seen_all() -> bool:
            found.clear()
            sub = await js.pull_subscribe("project.>", stream="PROJECTS")
            try:
                while True:
                    try:
                        batch = await sub.fetch(200, timeout=0.5)
                    except TimeoutError:  # nats' own TimeoutError subclasses it; fetch raises both
                        break
                    for msg in batch:
                        event = CloudEvent.model_validate_json(msg.data)
                        if event.subject == project_id:
                            found.append(event)
                        await msg.ack()
            finally:
                await sub.unsubscribe()
            return len(found) >= count

        await eventually(seen_all, within=15, what=f"{count} events for {project_id}")
        return found
    finally:
        await nc.close()


def test_crud_happy_path_emits_each_event(stack: Stack, api: httpx.Client, make_user: Any):
    user = make_user()
    project = create(
        api,
        user,
        description="A heist",
        tags=["noir"],
        metadata={"genre": "noir"},
        format="cinematic",
        fps=25,
    )
    assert project["status"] == "draft"
    assert project["version"] == 1
    assert project["owner_id"] == user.id
    assert project["metadata"] == {"genre": "noir"}
    pid = project["id"]

    got = api.get(f"/api/projects/{pid}", headers=user.headers)
    assert got.status_code == 200
    assert got.json() == project
    assert got.headers["etag"] == '"1"'

    listed = api.get("/api/projects", headers=user.headers).json()
    assert [p["id"] for p in listed["projects"]] == [pid]
    assert listed["total"] == 1
    assert listed["projects"][0]["shot_count"] == 0

    updated = api.put(
        f"/api/projects/{pid}",
        json={"name": "The Heist", "status": "in_progress", "version": 1},
        headers=user.headers,
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["version"] == 2
    assert updated.json()["name"] == "The Heist"
    assert updated.json()["description"] == "A heist"  # untouched fields stay

    summary = api.get(f"/api/projects/{pid}/summary", headers=user.headers).json()
    assert summary["name"] == "The Heist"
    assert summary["status"] == "in_progress"
    assert set(summary) == {
        "id",
        "name",
        "status",
        "shot_count",
        "sequence_count",
        "created_at",
        "updated_at",
    }

    assert api.delete(f"/api/projects/{pid}", headers=user.headers).status_code == 204
    assert_problem(api.get(f"/api/projects/{pid}", headers=user.headers), 404, "project_not_found")
    assert_problem(api.delete(f"/api/projects/{pid}", headers=user.headers), 404)

    events = asyncio.run(project_events(stack.nats_url, pid, 3))
    assert [e.type for e in events] == ["project.created", "project.updated", "project.deleted"]
    assert all(e.actor == user.id and e.source == "projects" for e in events)
    assert events[1].data["version"] == 2
    assert events[2].data == {"id": pid, "project_id": pid, "owner_id": user.id}
    assert len({e.id for e in events}) == 3
    assert all(e.correlationid for e in events)


def test_list_is_own_newest_first_paged_and_filtered(api: httpx.Client, make_user: Any):
    user, other = make_user(), make_user()
    ids = [create(api, user, name=f"P{i}")["id"] for i in range(5)]
    create(api, other, name="not mine")
    api.put(f"/api/projects/{ids[0]}", json={"status": "archived"}, headers=user.headers)
    page = api.get("/api/projects", params={"page_size": 2}, headers=user.headers).json()
    assert page["total"] == 5
    assert [p["id"] for p in page["projects"]] == [ids[0], ids[4]]
    second = api.get("/api/projects", params={"page": 2, "page_size": 2}, headers=user.headers)
    assert [p["id"] for p in second.json()["projects"]] == [ids[3], ids[2]]
    archived = api.get("/api/projects", params={"status": "archived"}, headers=user.headers)
    assert [p["id"] for p in archived.json()["projects"]] == [ids[0]]
    for bad in ({"page_size": 101}, {"page": 0}, {"status": "lost"}):
        assert_problem(api.get("/api/projects", params=bad, headers=user.headers), 422)


def test_another_users_private_project_is_404_and_public_is_read_only(
    api: httpx.Client, make_user: Any
):
    owner, stranger = make_user(), make_user()
    pid = create(api, owner)["id"]
    for method, path, body in [
        ("GET", f"/api/projects/{pid}", None),
        ("GET", f"/api/projects/{pid}/summary", None),
        ("PUT", f"/api/projects/{pid}", {"name": "mine now"}),
        ("DELETE", f"/api/projects/{pid}", None),
    ]:
        answer = api.request(method, path, json=body, headers=stranger.headers)
        assert_problem(answer, 404, "project_not_found")
    assert pid not in str(api.get("/api/projects", headers=stranger.headers).json())

    api.put(f"/api/projects/{pid}", json={"is_public": True}, headers=owner.headers)
    assert api.get(f"/api/projects/{pid}", headers=stranger.headers).status_code == 200
    assert api.get(f"/api/projects/{pid}/summary", headers=stranger.headers).status_code == 200
    assert_problem(
        api.put(f"/api/projects/{pid}", json={"name": "x"}, headers=stranger.headers),
        403,
        "project_read_only",
    )
    assert_problem(api.delete(f"/api/projects/{pid}", headers=stranger.headers), 403)
    assert api.get(f"/api/projects/{pid}", headers=owner.headers).json()["name"] == "Storyboard"
    # Public does not mean listed: lists show the caller's own projects only.
    assert pid not in str(api.get("/api/projects", headers=stranger.headers).json())


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ({"owner_id": str(uuid.uuid4())}, "owner cannot be set"),
        ({"id": str(uuid.uuid4())}, "id cannot be set"),
        ({"created_at": "2020-01-01T00:00:00Z"}, "timestamps cannot be set"),
        ({"shot_count": 9}, "counters cannot be set"),
        ({"colour": "red"}, "unknown field"),
        ({"name": None}, "name cannot be null"),
        ({"name": ""}, "name too short"),
        ({"fps": 0}, "fps below range"),
        ({"resolution_width": 10000}, "width above range"),
        ({"format": "vertical"}, "unknown format"),
        ({"status": "done"}, "unknown status"),
    ],
)
def test_strict_updates_reject_bad_fields_and_change_nothing(
    api: httpx.Client, make_user: Any, body: dict[str, Any], why: str
):
    user = make_user()
    project = create(api, user)
    answer = api.put(f"/api/projects/{project['id']}", json=body, headers=user.headers)
    assert_problem(answer, 422, "validation_error")
    after = api.get(f"/api/projects/{project['id']}", headers=user.headers).json()
    assert after == project, why


def test_create_rejects_status_and_owner(api: httpx.Client, make_user: Any):
    user = make_user()
    for body in ({"name": "x", "status": "completed"}, {"name": "x", "owner_id": user.id}):
        assert_problem(api.post("/api/projects", json=body, headers=user.headers), 422)


def test_malformed_json_is_422_problem(api: httpx.Client, make_user: Any):
    user = make_user()
    answer = api.post(
        "/api/projects",
        content=b'{"name": ',
        headers={**user.headers, "Content-Type": "application/json"},
    )
    assert_problem(answer, 422, "validation_error")


def test_stale_version_is_409_by_body_or_if_match(api: httpx.Client, make_user: Any):
    user = make_user()
    pid = create(api, user)["id"]
    assert (
        api.put(
            f"/api/projects/{pid}", json={"name": "v2", "version": 1}, headers=user.headers
        ).status_code
        == 200
    )
    stale = api.put(
        f"/api/projects/{pid}", json={"name": "lost", "version": 1}, headers=user.headers
    )
    assert assert_problem(stale, 409, "version_conflict")["current_version"] == 2
    stale_header = api.put(
        f"/api/projects/{pid}", json={"name": "lost"}, headers={**user.headers, "If-Match": '"1"'}
    )
    assert_problem(stale_header, 409, "version_conflict")
    fresh_header = api.put(
        f"/api/projects/{pid}", json={"name": "v3"}, headers={**user.headers, "If-Match": '"2"'}
    )
    assert fresh_header.status_code == 200
    assert fresh_header.headers["etag"] == '"3"'
    assert_problem(
        api.delete(f"/api/projects/{pid}", headers={**user.headers, "If-Match": '"2"'}), 409
    )
    assert api.get(f"/api/projects/{pid}", headers=user.headers).json()["name"] == "v3"


async def test_concurrent_writers_one_wins_per_version(stack: Stack, make_user: Any):
    user = make_user()
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=20) as client:
        created = await client.post("/api/projects", json={"name": "race"}, headers=user.headers)
        pid = created.json()["id"]
        answers = await asyncio.gather(
            *[
                client.put(
                    f"/api/projects/{pid}",
                    json={"name": f"writer {i}", "version": 1},
                    headers=user.headers,
                )
                for i in range(16)
            ]
        )
        final = (await client.get(f"/api/projects/{pid}", headers=user.headers)).json()
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] + [409] * 15
    winner = next(a for a in answers if a.status_code == 200).json()
    assert final["version"] == 2
    assert final["name"] == winner["name"]


def test_body_over_the_gateway_limit_is_413(stack: Stack, api: httpx.Client, make_user: Any):
    limit = int(stack.config.extra_env["STORYCORE_MAX_BODY_BYTES"])
    user = make_user()
    big = {"name": "big", "metadata": {"blob": "y" * limit}}
    answer = api.post("/api/projects", json=big, headers=user.headers)
    assert answer.status_code == 413
    assert api.get("/api/projects", headers=user.headers).json()["total"] == 0


def test_an_empty_update_changes_nothing(api: httpx.Client, make_user: Any):
    user = make_user()
    project = create(api, user)
    answer = api.put(f"/api/projects/{project['id']}", json={"version": 1}, headers=user.headers)
    assert answer.status_code == 200
    assert answer.json() == project
