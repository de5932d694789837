"""Sequences through the gateway: jobs, the worker, keyframes, SSE progress, failures."""

from __future__ import annotations

import io
import json
import time
from typing import Any

import httpx
import pytest
from PIL import Image

from storycore_devstack.stack import Stack
from storycore_testkit.fake_comfyui import FakeComfyUI
from storycore_testkit.polling import settle
from storycore_testkit.problems import assert_problem

PROMPT = (
    "A lighthouse keeper sees a ship. The storm breaks over the cliff. She climbs the "
    "stairs. The lamp flares. The ship turns away."
)


def project(api: httpx.Client, user: Any, width: int = 320, height: int = 180) -> str:
    answer = api.post(
        "/api/projects",
        headers=user.headers,
        json={"name": "Storyboard", "resolution_width": width, "resolution_height": height},
    )
    assert answer.status_code == 201
    return str(answer.json()["id"])


def generate(api: httpx.Client, user: Any, pid: str, **fields: Any) -> dict[str, Any]:
    body = {"project_id": pid, "prompt": PROMPT, "shot_count": 3, **fields}
    answer = api.post("/api/sequences/generate", json=body, headers=user.headers)
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "pending"
    return dict(answer.json())


def status(api: httpx.Client, user: Any, job_id: str) -> dict[str, Any]:
    return dict(api.get(f"/api/sequences/{job_id}/status", headers=user.headers).json())


def wait_status(
    api: httpx.Client, user: Any, job_id: str, wanted: set[str], within: float = 60
) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def done() -> bool:
        seen.update(status(api, user, job_id))
        return seen["status"] in wanted

    settle(done, within=within, what=f"job {job_id} in {wanted}")
    return seen


def ticket(api: httpx.Client, user: Any, job_id: str) -> str:
    answer = api.post(f"/api/sequences/{job_id}/stream-ticket", headers=user.headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["expires_in"] == 2
    return str(answer.json()["ticket"])


def read_stream(
    api: httpx.Client,
    job_id: str,
    *,
    ticket_value: str,
    last_event_id: str | None = None,
    limit: int | None = None,
) -> list[dict]:
    """Read SSE frames like EventSource: no Authorization header, the ticket in the URL."""
    headers = {"Accept": "text/event-stream"}
    if last_event_id:
        headers["Last-Event-ID"] = last_event_id
    frames: list[dict] = []
    current: dict[str, str] = {}
    with api.stream(
        "GET",
        f"/api/sequences/{job_id}/stream",
        params={"ticket": ticket_value},
        headers=headers,
        timeout=60,
    ) as answer:
        assert answer.status_code == 200, answer.read()
        assert "content-encoding" not in answer.headers
        for line in answer.iter_lines():
            if line.startswith(":"):
                continue
            if not line:
                if current:
                    frames.append({**current, "data": json.loads(current.get("data", "{}"))})
                    current = {}
                    if limit and len(frames) >= limit:
                        break
                continue
            key, _, value = line.partition(":")
            current[key] = value.strip()
    return frames


def test_generate_stream_complete_keyframes_and_shots(api: httpx.Client, make_user: Any):
    user = make_user()
    pid = project(api, user, 320, 180)
    job = generate(api, user, pid, shot_count=4, style="ink")
    frames = read_stream(api, job["job_id"], ticket_value=ticket(api, user, job["job_id"]))
    ids = [int(f["id"]) for f in frames]
    assert ids == list(range(1, len(ids) + 1))  # every change, in order, none repeated
    assert frames[-1]["event"] == "complete"
    assert all(f["event"] == "progress" for f in frames[:-1])
    progress = [f["data"]["progress"] for f in frames[:-1]]
    assert progress == sorted(progress)
    steps = [f["data"]["current_step"] for f in frames[:-1]]
    assert "planning" in steps
    assert "rendering shot 4/4" in steps
    final = frames[-1]["data"]
    assert final["status"] == "completed"
    assert final["progress"] == 100

    result = api.get(f"/api/sequences/{job['job_id']}/result", headers=user.headers).json()
    assert len(result["shots"]) == 4
    assert result["image_backend"] == "builtin"
    assert result["total_duration"] > 0
    for shot in result["shots"]:
        png = api.get(shot["keyframe_url"], headers=user.headers)
        assert png.status_code == 200
        assert png.headers["content-type"] == "image/png"
        image = Image.open(io.BytesIO(png.content))
        assert image.format == "PNG"
        assert image.size == (320, 180)

    def shots_arrived() -> bool:
        listed = api.get(f"/api/projects/{pid}/shots", headers=user.headers).json()
        return listed["total"] == 4

    settle(shots_arrived, within=10, what="sequence.generated created the shots")
    listed = api.get(f"/api/projects/{pid}/shots", headers=user.headers).json()["shots"]
    assert [s["id"] for s in listed] == [s["id"] for s in result["shots"]]
    assert {s["sequence_id"] for s in listed} == {job["job_id"]}
    assert all(s["status"] == "completed" and s["result_url"] for s in listed)
    settle(
        lambda: (
            api.get(f"/api/projects/{pid}/summary", headers=user.headers).json()["sequence_count"]
            == 1
        ),
        within=10,
        what="projects counts the sequence",
    )
    jobs = api.get("/api/sequences", params={"project_id": pid}, headers=user.headers).json()
    assert [j["job_id"] for j in jobs["jobs"]] == [job["job_id"]]
    assert_problem(
        api.post(f"/api/sequences/{job['job_id']}/cancel", headers=user.headers),
        409,
        "invalid_state",
    )


def test_reconnect_with_last_event_id_misses_nothing_and_tickets_are_scoped_and_expire(
    api: httpx.Client, make_user: Any
):
    user = make_user()
    job = generate(api, user, project(api, user), shot_count=5)
    first_ticket = ticket(api, user, job["job_id"])
    head = read_stream(api, job["job_id"], ticket_value=first_ticket, limit=2)
    assert len(head) == 2
    # What a native EventSource does: the same URL again, with Last-Event-ID.
    tail = read_stream(
        api,
        job["job_id"],
        ticket_value=first_ticket,
        last_event_id=head[-1]["id"],
    )
    ids = [int(f["id"]) for f in head + tail]
    assert ids == list(range(1, len(ids) + 1))
    assert tail[-1]["event"] == "complete"
    expiring = ticket(api, user, job["job_id"])
    time.sleep(2.2)
    assert_problem(
        api.get(f"/api/sequences/{job['job_id']}/stream", params={"ticket": expiring}), 401
    )
    other = generate(api, user, project(api, user))
    assert_problem(
        api.get(
            f"/api/sequences/{other['job_id']}/stream",
            params={"ticket": ticket(api, user, job["job_id"])},
        ),
        401,
    )


def test_cancel_while_processing_stays_cancelled(api: httpx.Client, make_user: Any):
    user = make_user()
    pid = project(api, user)
    job = generate(api, user, pid, shot_count=12, settings={"image_backend": "comfyui"})
    settle(
        lambda: status(api, user, job["job_id"])["progress"] >= 25,
        within=30,
        what="the job is rendering",
    )
    cancelled = api.post(f"/api/sequences/{job['job_id']}/cancel", headers=user.headers)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    # Longer than the rest of the job would have taken: the worker must have stopped.
    time.sleep(5)
    after = status(api, user, job["job_id"])
    assert after["status"] == "cancelled"
    assert after["result"] is None
    assert_problem(api.get(f"/api/sequences/{job['job_id']}/result", headers=user.headers), 409)
    assert_problem(
        api.post(f"/api/sequences/{job['job_id']}/cancel", headers=user.headers),
        409,
        "invalid_state",
    )
    assert api.get(f"/api/projects/{pid}/shots", headers=user.headers).json()["total"] == 0
    frames = read_stream(api, job["job_id"], ticket_value=ticket(api, user, job["job_id"]))
    assert frames[-1]["data"]["status"] == "cancelled"


def test_a_killed_worker_does_not_lose_the_job_or_duplicate_its_work(
    stack: Stack, api: httpx.Client, make_user: Any, fake_comfyui: FakeComfyUI
):
    user = make_user()
    pid = project(api, user)
    before = len(fake_comfyui.prompts)
    job = generate(api, user, pid, shot_count=10, settings={"image_backend": "comfyui"})
    settle(
        lambda: status(api, user, job["job_id"])["progress"] >= 40,
        within=30,
        what="the job is half rendered",
    )
    stack.stop_worker("sequences", kill=True)  # SIGKILL mid-job
    try:
        assert status(api, user, job["job_id"])["status"] == "processing"
    finally:
        stack.start_worker("sequences")
    final = wait_status(api, user, job["job_id"], {"completed", "failed"}, within=60)
    assert final["status"] == "completed", final
    assert len(final["result"]["shots"]) == 10
    # Keyframes stored before the kill were not rendered again.
    assert len(fake_comfyui.prompts) - before <= 10 + 1  # at most the one in flight at the kill

    def ten_shots() -> bool:
        return api.get(f"/api/projects/{pid}/shots", headers=user.headers).json()["total"] >= 10

    settle(ten_shots, within=10, what="the shots were created")
    time.sleep(1)  # a duplicate would land now
    shots = api.get(
        f"/api/projects/{pid}/shots", params={"page_size": 100}, headers=user.headers
    ).json()["shots"]
    assert len(shots) == 10
    assert len({s["id"] for s in shots}) == 10


def test_comfyui_backend_success_down_and_error(
    api: httpx.Client, make_user: Any, fake_comfyui: FakeComfyUI
):
    user = make_user()
    pid = project(api, user, 256, 144)
    ok = generate(api, user, pid, shot_count=2, settings={"image_backend": "comfyui"})
    done = wait_status(api, user, ok["job_id"], {"completed", "failed"})
    assert done["status"] == "completed", done
    assert done["result"]["image_backend"] == "comfyui"
    png = api.get(done["result"]["shots"][0]["keyframe_url"], headers=user.headers)
    assert Image.open(io.BytesIO(png.content)).size == (256, 144)

    rejected = generate(
        api,
        user,
        pid,
        shot_count=2,
        settings={"image_backend": "comfyui"},
        prompt="[[comfy-error]] A door opens. A hand reaches out.",
    )
    failed = wait_status(api, user, rejected["job_id"], {"completed", "failed"})
    assert failed["status"] == "failed"
    assert "ComfyUI rejected the workflow" in failed["error"]
    assert "ckpt_name not in list" in failed["error"]

    fake_comfyui.stop()
    try:
        down = generate(api, user, pid, shot_count=2, settings={"image_backend": "comfyui"})
        gone = wait_status(api, user, down["job_id"], {"completed", "failed"})
        assert gone["status"] == "failed"
        assert "ComfyUI is unreachable" in gone["error"]
        # Never a silent fallback: nothing was stored for the failed job.
        assert (
            api.get(
                f"/api/sequences/{down['job_id']}/keyframes/0", headers=user.headers
            ).status_code
            == 404
        )
    finally:
        fake_comfyui.start()


def test_another_users_job_is_404_everywhere(api: httpx.Client, make_user: Any):
    owner, stranger = make_user(), make_user()
    pid = project(api, owner)
    job = generate(api, owner, pid, shot_count=1)["job_id"]
    wait_status(api, owner, job, {"completed"})
    for method, path in [
        ("GET", f"/api/sequences/{job}/status"),
        ("GET", f"/api/sequences/{job}/result"),
        ("GET", f"/api/sequences/{job}/keyframes/0"),
        ("GET", f"/api/sequences/{job}/stream"),
        ("POST", f"/api/sequences/{job}/cancel"),
        ("POST", f"/api/sequences/{job}/stream-ticket"),
    ]:
        answer = api.request(method, path, headers=stranger.headers)
        assert_problem(answer, 404, "job_not_found")
    assert api.get("/api/sequences", headers=stranger.headers).json()["total"] == 0
    refused = api.post(
        "/api/sequences/generate",
        headers=stranger.headers,
        json={"project_id": pid, "prompt": PROMPT},
    )
    assert_problem(refused, 404, "project_not_found")


def test_generate_is_rate_limited_per_user(stack: Stack, api: httpx.Client, make_user: Any):
    limit = int(stack.config.extra_env["SEQUENCES_RATE_LIMIT_PER_MINUTE"])
    user = make_user()
    pid = project(api, user, 64, 36)
    limited = None
    for _ in range(2 * limit + 1):
        answer = api.post(
            "/api/sequences/generate",
            headers=user.headers,
            json={"project_id": pid, "prompt": PROMPT, "shot_count": 1},
        )
        if answer.status_code == 429:
            limited = answer
            break
        assert answer.status_code == 202
    assert limited is not None
    assert_problem(limited, 429, "rate_limited")
    assert int(limited.headers["retry-after"]) >= 1


async def test_streams_past_the_cap_get_503(stack: Stack, make_user: Any):
    cap = int(stack.config.extra_env["SEQUENCES_MAX_STREAMS"])
    user = make_user()
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as client:
        pid = (
            await client.post("/api/projects", headers=user.headers, json={"name": "cap"})
        ).json()["id"]
        job = (
            await client.post(
                "/api/sequences/generate",
                headers=user.headers,
                json={
                    "project_id": pid,
                    "prompt": PROMPT,
                    "shot_count": 20,
                    "settings": {"image_backend": "comfyui"},
                },
            )
        ).json()["job_id"]
        headers = {**user.headers, "Accept": "text/event-stream"}
        opened = []
        try:
            for _ in range(cap):
                stream = client.stream("GET", f"/api/sequences/{job}/stream", headers=headers)
                response = await stream.__aenter__()
                assert response.status_code == 200
                opened.append(stream)
            over = await client.get(f"/api/sequences/{job}/stream", headers=headers)
            assert over.status_code == 503
            assert over.headers["retry-after"] == "5"
        finally:
            for stream in opened:
                await stream.__aexit__(None, None, None)
            await client.post(f"/api/sequences/{job}/cancel", headers=user.headers)


@pytest.mark.parametrize(
    "body",
    [
        {"prompt": "short"},
        {"shot_count": 51},
        {"shot_count": 0},
        {"settings": {"image_backend": "dall-e"}},
        {"colour": "red"},
    ],
)
def test_bad_generate_requests_are_422(api: httpx.Client, make_user: Any, body: dict):
    user = make_user()
    pid = project(api, user)
    full = {"project_id": pid, "prompt": PROMPT, **body}
    assert_problem(api.post("/api/sequences/generate", json=full, headers=user.headers), 422)


def test_keyframes_are_assets_with_ranges_etags_and_a_project_cascade(
    api: httpx.Client, make_user: Any
):
    user = make_user()
    pid = project(api, user)
    job = generate(api, user, pid, shot_count=2)
    wait_status(api, user, job["job_id"], {"completed"})
    url = f"/api/sequences/{job['job_id']}/keyframes/1"

    whole = api.get(url, headers=user.headers)
    assert whole.status_code == 200
    assert whole.headers["accept-ranges"] == "bytes"
    size = len(whole.content)
    head = api.get(url, headers={**user.headers, "Range": "bytes=0-7"})
    assert head.status_code == 206
    assert head.content == b"\x89PNG\r\n\x1a\n"
    assert head.headers["content-range"] == f"bytes 0-7/{size}"
    tail = api.get(url, headers={**user.headers, "Range": "bytes=-12"})
    assert tail.content == whole.content[-12:]
    assert_problem(
        api.get(url, headers={**user.headers, "Range": f"bytes={size}-"}),
        416,
        "range_not_satisfiable",
    )
    etag = whole.headers["etag"]
    assert api.get(url, headers={**user.headers, "If-None-Match": etag}).status_code == 304
    probe = api.head(url, headers=user.headers)  # what GET says of the file, without it
    assert (probe.status_code, probe.content) == (200, b"")
    assert probe.headers["content-length"] == str(size)
    assert probe.headers["etag"] == etag

    assert api.delete(f"/api/projects/{pid}", headers=user.headers).status_code == 204

    def keyframe_gone() -> bool:
        return api.get(url, headers=user.headers).status_code == 404

    settle(keyframe_gone, within=10, what="project.deleted removed the keyframes")
    # The job stays, as the record of the work done.
    assert status(api, user, job["job_id"])["status"] == "completed"
