"""What a browser frontend relies on: honest gateway answers, the aggregate health, and more.

The fallback app's decisions are checked directly (no stack); the rest goes through the real
gateway.
"""

from __future__ import annotations

import time
import uuid
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from pydantic import SecretStr

from storycore_devstack import errors_doc
from storycore_devstack.routes import fallback_services, load_route_table
from storycore_devstack.stack import Stack
from storycore_shared.fallback import create_app, load_services
from storycore_shared.media import InvalidMediaSignature, MediaSigner
from storycore_testkit.polling import settle
from storycore_testkit.problems import assert_problem

TABLE = load_route_table()


def _fallback() -> httpx.AsyncClient:
    addresses = {s.name: ["http://127.0.0.1:9"] for s in TABLE.domain_services}
    app = create_app(load_services(fallback_services(TABLE, addresses)))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw")


async def test_the_fallback_tells_a_down_service_from_an_unknown_route():
    async with _fallback() as client:
        for path in ("/api/projects", "/api/projects/x/shots", "/api/rigging/1/download"):
            down = await client.get(path)
            assert_problem(down, 503, "service_unavailable")
            assert down.headers["retry-after"]
        for path in ("/api/whatever", "/api", "/", "/api/projects/healthz"):
            assert_problem(await client.get(path), 404, "route_not_found")
        assert_problem(await client.post("/api/whatever/x", json={}), 404, "route_not_found")


async def test_the_fallbacks_health_is_503_when_a_service_is_unreachable():
    async with _fallback() as client:
        answer = await client.get("/api/health")
    assert answer.status_code == 503
    body = answer.json()
    assert body["status"] == "unavailable"
    assert set(body["services"]) == {s.name for s in TABLE.domain_services}
    assert all(s["status"] == "unavailable" for s in body["services"].values())


def test_unknown_routes_are_404_problems_through_the_gateway(api: httpx.Client):
    for path in ("/api/whatever", "/api/nothing/here", "/nope"):
        assert_problem(api.get(path), 404, "route_not_found")
    for service in ("projects", "shots", "auth", "sequences"):
        assert_problem(api.get(f"/api/{service}/healthz"), 404, "route_not_found")
        assert_problem(api.get(f"/api/{service}/readyz"), 404, "route_not_found")


def test_api_health_is_every_services_readiness_and_a_stopped_service_is_503(
    stack: Stack, api: httpx.Client, make_user: Any
):
    user = make_user()
    health = api.get("/api/health")
    assert health.status_code == 200, health.text
    services = health.json()["services"]
    assert set(services) == {s.name for s in TABLE.domain_services}
    assert all(s["status"] == "ready" for s in services.values())
    stack.stop_replica("locations")
    try:
        settle(
            lambda: api.get("/api/locations", headers=user.headers).status_code == 503,
            within=10,
            what="503 for a stopped service",
        )
        down = api.get("/api/locations", headers=user.headers)
        assert_problem(down, 503, "service_unavailable")
        assert down.headers["retry-after"]
        health = api.get("/api/health")
        assert health.status_code == 503
        assert health.json()["services"]["locations"]["status"] == "unavailable"
        assert health.json()["services"]["projects"]["status"] == "ready"
        assert_problem(api.get("/api/whatever"), 404, "route_not_found")
    finally:
        stack.start_replica("locations")
    settle(
        lambda: api.get("/api/health").status_code == 200,
        within=15,
        what="health back to 200",
    )
    # /api/health asks the replicas directly; the gateway routes to the restarted replica only
    # after its own next health check, so later tests must not meet the fallback's 503.
    settle(
        lambda: api.get("/api/locations", headers=user.headers).status_code == 200,
        within=15,
        what="locations back behind the gateway",
    )


# -- media URLs -------------------------------------------------------------------------------


def test_a_media_signature_covers_path_expiry_and_user():
    signer = MediaSigner(SecretStr("k" * 32), ttl_seconds=60)
    user = uuid.uuid4()
    url = signer.sign("/api/x/1", user_id=user, now=1000)
    params = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert params["expires"] == "1065"  # at least the TTL, rounded up to a quarter of it
    assert signer.sign("/api/x/1", user_id=user, now=1004) == url  # a cacheable, stable URL
    assert signer.verify("/api/x/1", **params, now=1064) == user
    for path, changes, now in (
        ("/api/x/1", {}, 1065),  # expired
        ("/api/x/2", {}, 1000),  # another path
        ("/api/x/1", {"user": str(uuid.uuid4())}, 1000),
        ("/api/x/1", {"expires": "9999"}, 1000),
        ("/api/x/1", {"sig": "00" * 32}, 1000),
        ("/api/x/1", {"user": "nobody"}, 1000),
        ("/api/x/1", {"sig": "é" * 64}, 1000),  # not hex: refused, not a TypeError
        ("/api/x/1", {"sig": "ab"}, 1000),
    ):
        with pytest.raises(InvalidMediaSignature):
            signer.verify(path, **{**params, **changes}, now=now)
    assert MediaSigner(SecretStr("o" * 32)).signature("/api/x/1", 1065, user) != params["sig"]
    assert signer.sign_suite_url("https://media.example/x.png", user_id=user) == (
        "https://media.example/x.png"
    )
    assert signer.sign_suite_url(None, user_id=user) is None


PROMPT = (
    "A lighthouse keeper sees a ship. The storm breaks over the cliff. She climbs the "
    "stairs. The lamp flares. The ship turns away."
)


def _project(api: httpx.Client, user: Any) -> str:
    body = {"name": "Media", "resolution_width": 320, "resolution_height": 180}
    answer = api.post("/api/projects", headers=user.headers, json=body)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def _completed_job(api: httpx.Client, user: Any, pid: str) -> str:
    body = {"project_id": pid, "prompt": PROMPT, "shot_count": 2}
    job = api.post("/api/sequences/generate", json=body, headers=user.headers)
    assert job.status_code == 202, job.text
    job_id = str(job.json()["job_id"])

    def completed() -> bool:
        answer = api.get(f"/api/sequences/{job_id}/status", headers=user.headers).json()
        assert answer["status"] not in ("failed", "cancelled"), answer
        return bool(answer["status"] == "completed")

    settle(completed, within=60, what="the job completed")
    return job_id


def _with(url: str, **changes: str) -> str:
    path, _, query = url.partition("?")
    params = dict(pair.split("=", 1) for pair in query.split("&"))
    return f"{path}?{urlencode({**params, **changes})}"


def test_signed_keyframe_urls_load_without_a_header(api: httpx.Client, make_user: Any):
    user, stranger = make_user(), make_user()
    job_id = _completed_job(api, user, _project(api, user))
    result = api.get(f"/api/sequences/{job_id}/result", headers=user.headers)
    assert result.status_code == 200, result.text
    urls = [shot["keyframe_url"] for shot in result.json()["shots"]]
    assert all(parse_qs(urlsplit(u).query).keys() == {"expires", "user", "sig"} for u in urls)
    assert all(f"user={user.id}" in u for u in urls)

    # What <img src> does: no Authorization header.
    image = api.get(urls[0])
    assert image.status_code == 200, image.text
    assert image.headers["content-type"] == "image/png"
    assert image.content.startswith(b"\x89PNG")
    part = api.get(urls[0], headers={"Range": "bytes=0-7"})
    assert part.status_code == 206
    assert part.content == b"\x89PNG\r\n\x1a\n"
    # Bearer access keeps working.
    bare = urls[0].partition("?")[0]
    assert api.get(bare, headers=user.headers).status_code == 200
    assert_problem(api.get(bare), 401)

    sig = parse_qs(urlsplit(urls[0]).query)["sig"][0]
    altered = _with(urls[0], sig=("0" if sig[0] != "0" else "1") + sig[1:])
    assert_problem(api.get(altered), 403, "invalid_media_signature")
    expired = _with(urls[0], expires=str(int(time.time()) - 10))
    assert_problem(api.get(expired), 403, "invalid_media_signature")
    # The signature is for one path: not the other keyframe, not another job's.
    other_index = urls[1].partition("?")[0] + "?" + urls[0].partition("?")[2]
    assert_problem(api.get(other_index), 403, "invalid_media_signature")
    other_job = _completed_job(api, stranger, _project(api, stranger))
    foreign = f"/api/sequences/{other_job}/keyframes/0?" + urls[0].partition("?")[2]
    assert_problem(api.get(foreign), 403, "invalid_media_signature")
    # A stranger's own signed URL for this user's keyframe still meets the owner check.
    stranger_urls = [
        s["keyframe_url"]
        for s in api.get(f"/api/sequences/{other_job}/result", headers=stranger.headers).json()[
            "shots"
        ]
    ]
    assert api.get(stranger_urls[0]).status_code == 200

    # The job's status carries the same result, signed for the caller too.
    status = api.get(f"/api/sequences/{job_id}/status", headers=user.headers).json()
    status_url = status["result"]["shots"][0]["keyframe_url"]
    assert "sig=" in status_url
    assert api.get(status_url).status_code == 200

    # Shots made from the job carry signed URLs too.
    def shots_made() -> bool:
        listed = api.get(f"/api/projects/{result.json()['project_id']}/shots", headers=user.headers)
        return bool(listed.json()["total"] == 2)

    settle(shots_made, within=15, what="the shots were made")
    listed = api.get(f"/api/projects/{result.json()['project_id']}/shots", headers=user.headers)
    for shot in listed.json()["shots"]:
        for field in ("result_url", "thumbnail_url"):
            assert "sig=" in shot[field], shot
            assert api.get(shot[field]).status_code == 200


# -- the error catalogue ------------------------------------------------------------------------


def test_the_error_catalogue_is_what_the_code_defines():
    """docs/errors.md is generated; regenerate it with `python3 storycore.py errors-doc`."""
    rendered = errors_doc.render()
    assert errors_doc.ERRORS_DOC.read_text() == rendered, (
        "docs/errors.md is stale: run `python3 storycore.py errors-doc`"
    )
    for code in ("project_not_found", "invalid_media_signature", "route_not_found"):
        assert f"`{code}`" in rendered


# -- CORS and conditional GETs ------------------------------------------------------------------


def test_cors_allows_the_127_0_0_1_form_of_a_localhost_origin(api: httpx.Client):
    preflight = {"Access-Control-Request-Method": "GET"}
    for origin in ("http://localhost:5173", "http://127.0.0.1:5173"):
        allowed = api.options("/api/projects", headers={"Origin": origin, **preflight})
        assert allowed.headers.get("access-control-allow-origin") == origin
    refused = api.options("/api/projects", headers={"Origin": "http://evil.test", **preflight})
    assert "access-control-allow-origin" not in refused.headers


def test_if_none_match_answers_304_on_gets_with_an_etag(api: httpx.Client, make_user: Any):
    user = make_user()
    pid = _project(api, user)
    shot = api.post(
        "/api/shots", json={"project_id": pid, "name": "s", "prompt": "p"}, headers=user.headers
    )
    location = api.post(
        "/api/locations", json={"name": "Cliff", "project_id": pid}, headers=user.headers
    )
    assert shot.status_code == 201, shot.text
    assert location.status_code == 201, location.text
    for path in (
        f"/api/projects/{pid}",
        f"/api/shots/{shot.json()['id']}",
        f"/api/locations/{location.json()['id']}",
    ):
        first = api.get(path, headers=user.headers)
        tag = first.headers["etag"]
        cached = api.get(path, headers={**user.headers, "If-None-Match": tag})
        assert cached.status_code == 304, path
        assert cached.content == b""
        assert cached.headers["etag"] == tag
        weak = api.get(path, headers={**user.headers, "If-None-Match": f'"0", W/{tag}'})
        assert weak.status_code == 304
        stale = api.get(path, headers={**user.headers, "If-None-Match": '"999"'})
        assert stale.status_code == 200
        assert stale.json()["version"] == first.json()["version"]
    assert api.get(f"/api/projects/{pid}", headers={"If-None-Match": '"1"'}).status_code == 401
