"""Locations through the gateway: CRUD, strict updates, ownership and project rules."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from storycore_testkit.polling import settle
from storycore_testkit.problems import assert_problem


def project(api: httpx.Client, user: Any) -> str:
    return str(api.post("/api/projects", json={"name": "Film"}, headers=user.headers).json()["id"])


def location(api: httpx.Client, user: Any, **fields: Any) -> dict[str, Any]:
    answer = api.post("/api/locations", json={"name": "Lighthouse", **fields}, headers=user.headers)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def test_location_crud_and_lists(api: httpx.Client, make_user: Any):
    user = make_user()
    pid = project(api, user)
    created = location(
        api,
        user,
        project_id=pid,
        location_type="exterior",
        significance="where it ends",
        atmosphere="salt and storm",
        cube_faces={"front": "assets/front.png"},
        skybox_data={"hdr": True},
        metadata={"era": "1920s"},
    )
    assert created["owner_id"] == user.id
    assert created["version"] == 1
    loose = location(api, user, name="Dream")
    assert loose["project_id"] is None
    assert loose["location_type"] == "generic"
    assert api.get(f"/api/locations/{created['id']}", headers=user.headers).json() == created

    mine = api.get("/api/locations", headers=user.headers).json()
    assert {loc["id"] for loc in mine["locations"]} == {created["id"], loose["id"]}
    of_project = api.get("/api/locations", params={"project_id": pid}, headers=user.headers)
    assert [loc["id"] for loc in of_project.json()["locations"]] == [created["id"]]
    by_route = api.get(f"/api/projects/{pid}/locations", headers=user.headers).json()
    assert [loc["id"] for loc in by_route["locations"]] == [created["id"]]

    updated = api.put(
        f"/api/locations/{created['id']}",
        json={"name": "Old lighthouse", "atmosphere": None, "version": 1},
        headers=user.headers,
    )
    assert updated.status_code == 200, updated.text
    assert updated.json()["name"] == "Old lighthouse"
    assert updated.json()["atmosphere"] is None
    assert updated.json()["version"] == 2
    stale = api.put(
        f"/api/locations/{created['id']}", json={"name": "x", "version": 1}, headers=user.headers
    )
    assert_problem(stale, 409, "version_conflict")

    assert api.delete(f"/api/locations/{created['id']}", headers=user.headers).status_code == 204
    assert_problem(
        api.get(f"/api/locations/{created['id']}", headers=user.headers), 404, "location_not_found"
    )


@pytest.mark.parametrize(
    "body",
    [
        {"id": str(uuid.uuid4())},
        {"owner_id": str(uuid.uuid4())},
        {"created_at": "2020-01-01T00:00:00Z"},
        {"updated_at": "2020-01-01T00:00:00Z"},
        {"secret_flag": True},
        {"name": None},
        {"location_type": "underwater"},
        {"cube_faces": {"diagonal": "x.png"}},
    ],
)
def test_location_updates_are_strict(api: httpx.Client, make_user: Any, body: dict[str, Any]):
    user = make_user()
    created = location(api, user)
    assert_problem(
        api.put(f"/api/locations/{created['id']}", json=body, headers=user.headers),
        422,
        "validation_error",
    )
    assert api.get(f"/api/locations/{created['id']}", headers=user.headers).json() == created


def test_a_location_may_only_name_the_callers_own_project(api: httpx.Client, make_user: Any):
    owner, stranger = make_user(), make_user()
    pid = project(api, owner)
    refused = api.post(
        "/api/locations", json={"name": "x", "project_id": pid}, headers=stranger.headers
    )
    assert_problem(refused, 404, "project_not_found")
    mine = location(api, stranger)
    moved = api.put(
        f"/api/locations/{mine['id']}", json={"project_id": pid}, headers=stranger.headers
    )
    assert_problem(moved, 404, "project_not_found")
    missing = api.post(
        "/api/locations", json={"name": "x", "project_id": str(uuid.uuid4())}, headers=owner.headers
    )
    assert_problem(missing, 404, "project_not_found")


def test_another_users_locations_are_404_and_a_public_projects_are_read_only(
    api: httpx.Client, make_user: Any
):
    owner, stranger = make_user(), make_user()
    pid = project(api, owner)
    in_project = location(api, owner, project_id=pid)["id"]
    private = location(api, owner, name="Diary")["id"]
    for lid in (in_project, private):
        for method, body in (("GET", None), ("PUT", {"name": "mine"}), ("DELETE", None)):
            answer = api.request(
                method, f"/api/locations/{lid}", json=body, headers=stranger.headers
            )
            assert_problem(answer, 404, "location_not_found")
    assert_problem(api.get(f"/api/projects/{pid}/locations", headers=stranger.headers), 404)
    assert api.get("/api/locations", headers=stranger.headers).json()["total"] == 0

    api.put(f"/api/projects/{pid}", json={"is_public": True}, headers=owner.headers)
    settle(
        lambda: (
            api.get(f"/api/locations/{in_project}", headers=stranger.headers).status_code == 200
        ),
        within=5,
        what="project.updated reached the locations replica",
    )
    listed = api.get(f"/api/projects/{pid}/locations", headers=stranger.headers).json()
    assert [loc["id"] for loc in listed["locations"]] == [in_project]
    for method, body in (("PUT", {"name": "mine"}), ("DELETE", None)):
        answer = api.request(
            method, f"/api/locations/{in_project}", json=body, headers=stranger.headers
        )
        assert_problem(answer, 403, "location_read_only")
    assert_problem(
        api.post("/api/locations", json={"name": "x", "project_id": pid}, headers=stranger.headers),
        403,
        "project_read_only",
    )
    # A location outside any project stays private.
    assert_problem(api.get(f"/api/locations/{private}", headers=stranger.headers), 404)
