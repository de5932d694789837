"""Story → scenario through the gateway: transform, read, export in four formats, ownership."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from storycore_testkit.problems import assert_problem

STORY = """Mara Quell keeps the lighthouse on Gull Island. Every night she climbs the stairs \
and lights the lamp. Her brother Tomas runs the harbour café and worries about her.

One evening a stranger called Edrin arrives at the harbour with a sealed letter. He says the \
letter belongs to Mara. Tomas does not trust him. <script>alert("owned")</script> The storm \
comes in fast.

At midnight the lamp fails and a ship drifts toward the cliff. Mara runs up the stairs with \
the letter in her pocket. Edrin follows her into the dark. Tomas fights the fire in the café.

At dawn the sea is calm. Mara opens the letter at last and smiles."""


def transform(api: httpx.Client, user: Any, **fields: Any) -> dict[str, Any]:
    answer = api.post(
        "/api/scenario/transform",
        headers=user.headers,
        json={"story": STORY, "title": "The Keeper", **fields},
    )
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def test_transform_follows_the_story_and_reads_back(api: httpx.Client, make_user: Any):
    user = make_user()
    created = transform(api, user)
    summary = created["summary"]
    assert created["status"] == "completed"
    assert summary["titre"] == "The Keeper"
    assert summary["sequences"] == 4  # one per paragraph
    assert summary["scenes"] == 2 + 2 + 2 + 1  # one per two sentences
    assert summary["personnages"] >= 3
    assert {
        "titre",
        "pitch",
        "theme",
        "ton",
        "personnages",
        "lieux",
        "objets",
        "sequences",
        "scenes",
    } == set(summary)
    sid = created["scenario_id"]

    one = api.get(f"/api/scenario/{sid}", headers=user.headers).json()
    assert one["summary"] == summary
    assert one["mock"] is True
    full = api.get(f"/api/scenario/{sid}/full", headers=user.headers).json()
    names = {p["nom"]: p["role"] for p in full["personnages"]}
    assert {"Mara", "Tomas", "Edrin"} <= set(names)
    assert names["Mara"] == "protagoniste"
    places = {lieu["nom"]: lieu["type"] for lieu in full["lieux"]}
    assert places["Lighthouse"] == "interieur"
    assert places["Harbour"] == "exterieur"
    assert [s["acte"] for s in full["sequences"]] == [1, 2, 2, 3]
    assert full["sequences"][2]["tension"] in {"elevee", "critique"}
    moments = [s["moment"] for s in full["scenes"]]
    assert "NUIT" in moments
    assert "AUBE" in moments
    assert full["scenes"][0]["liens"]["scene_suivante"] == full["scenes"][1]["id"]
    assert full["structure"]["acte_2"]["sequences_ids"] == ["seq_2", "seq_3"]
    listed = api.get("/api/scenario", headers=user.headers).json()
    assert [s["id"] for s in listed["scenarios"]] == [sid]


def test_a_longer_story_gives_more_sequences_and_scenes(api: httpx.Client, make_user: Any):
    user = make_user()
    short = transform(api, user)["summary"]
    longer = api.post(
        "/api/scenario/transform", headers=user.headers, json={"story": STORY + "\n\n" + STORY}
    ).json()["summary"]
    assert longer["sequences"] == 2 * short["sequences"]
    assert longer["scenes"] == 2 * short["scenes"]


@pytest.mark.parametrize("fmt", ["json", "txt", "md", "html"])
def test_exports_in_every_format(api: httpx.Client, make_user: Any, fmt: str):
    user = make_user()
    sid = transform(api, user)["scenario_id"]
    answer = api.get(f"/api/scenario/{sid}/export", params={"format": fmt}, headers=user.headers)
    assert answer.status_code == 200, answer.text
    assert f'filename="scenario-{sid}.{fmt}"' in answer.headers["content-disposition"]
    text = answer.text
    if fmt == "json":
        assert json.loads(text)["meta"]["titre"] == "The Keeper"
    elif fmt == "md":
        assert text.startswith("# The Keeper")
        assert "## Personnages" in text
    elif fmt == "txt":
        assert text.startswith("THE KEEPER")
    else:
        assert answer.headers["content-type"].startswith("text/html")
        assert "<script>" not in text  # the story's script tag is escaped, never live
        assert "&lt;script&gt;alert(&quot;owned&quot;)&lt;/script&gt;" in text
        assert "<h1>The Keeper</h1>" in text
    assert_problem(
        api.get(f"/api/scenario/{sid}/export", params={"format": "pdf"}, headers=user.headers), 422
    )


def test_scenarios_are_private_to_their_owner(api: httpx.Client, make_user: Any):
    owner, stranger = make_user(), make_user()
    sid = transform(api, owner)["scenario_id"]
    for path in (
        f"/api/scenario/{sid}",
        f"/api/scenario/{sid}/full",
        f"/api/scenario/{sid}/export?format=html",
    ):
        assert_problem(api.get(path, headers=stranger.headers), 404, "scenario_not_found")
    assert_problem(api.delete(f"/api/scenario/{sid}", headers=stranger.headers), 404)
    assert api.get("/api/scenario", headers=stranger.headers).json()["total"] == 0
    assert api.delete(f"/api/scenario/{sid}", headers=owner.headers).status_code == 204
    assert_problem(api.get(f"/api/scenario/{sid}", headers=owner.headers), 404)


def test_a_real_provider_extracts_with_the_model(api: httpx.Client, make_user: Any):
    user = make_user()
    created = transform(api, user, provider="anthropic")
    assert created["summary"]["personnages"] == 1  # what the fake model answered
    full = api.get(f"/api/scenario/{created['scenario_id']}/full", headers=user.headers).json()
    assert full["provider"] == "anthropic"
    assert full["meta"]["titre"] == "The Keeper"
    assert full["scenes"][0]["id"] == "scene_1"


def test_story_bounds_are_enforced(api: httpx.Client, make_user: Any):
    user = make_user()
    for story in ("too short", "x" * 50_001):
        assert_problem(
            api.post("/api/scenario/transform", json={"story": story}, headers=user.headers), 422
        )
