"""Rigging through the gateway: sheets (keypoints, an uploaded image, a keyframe) become glTF
skeletons, built by the sequences worker, checked by the Khronos glTF validator."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import math
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import httpx
import nats
import pygltflib  # type: ignore[import-untyped]
import pytest
from PIL import Image

from storycore_devstack.stack import Stack
from storycore_shared.assets import NatsAssetStore
from storycore_shared.events.broker import Broker
from storycore_shared.events.envelope import CloudEvent
from storycore_testkit.fake_comfyui import STANDING_FIGURE, FakeComfyUI
from storycore_testkit.polling import settle
from storycore_testkit.poses import FIGURE
from storycore_testkit.problems import assert_problem

ROOT = Path(__file__).resolve().parents[1]
VALIDATOR = ROOT / "testkit" / "node" / "validate-gltf.cjs"
HEIGHT = 1.75  # SEQUENCES_RIG_HEIGHT_METRES's default
GLB = "model/gltf-binary"
Vec = tuple[float, float, float]

KEYPOINTS: dict[str, list[float]] = {"head": [200, 75], **FIGURE}
COCO18 = [
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder",
    "left_elbow", "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip",
    "left_knee", "left_ankle", "right_eye", "left_eye", "right_ear", "left_ear",
]  # fmt: skip


# -- helpers ------------------------------------------------------------------------------


def project(api: httpx.Client, user: Any) -> str:
    answer = api.post("/api/projects", headers=user.headers, json={"name": "Rigs"})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def convert(api: httpx.Client, user: Any, pid: str, sheet: dict[str, Any]) -> dict[str, Any]:
    answer = api.post(
        "/api/rigging/convert", headers=user.headers, json={"project_id": pid, "sheet": sheet}
    )
    assert answer.status_code == 202, answer.text
    rig: dict[str, Any] = answer.json()
    assert rig["status"] == "pending"
    assert answer.headers["location"] == f"/api/rigging/{rig['id']}"
    return rig


def wait_rig(api: httpx.Client, user: Any, rig_id: str, within: float = 60) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def done() -> bool:
        seen.update(api.get(f"/api/rigging/{rig_id}", headers=user.headers).json())
        return seen["status"] in {"completed", "failed", "cancelled"}

    settle(done, within=within, what=f"rig {rig_id} built")
    return seen


def sheet_png(width: int = 300, height: int = 450) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 190, 170)).save(buffer, format="PNG")
    return buffer.getvalue()


def upload(api: httpx.Client, user: Any, pid: str, data: bytes) -> str:
    answer = api.post(
        "/api/rigging/sheets",
        params={"project_id": pid},
        headers={**user.headers, "Content-Type": "image/png"},
        content=data,
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["sha256"] == hashlib.sha256(data).hexdigest()
    return str(answer.json()["asset_id"])


def download(api: httpx.Client, user: Any, rig: dict[str, Any]) -> bytes:
    answer = api.get(rig["rig_url"], headers=user.headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == GLB
    assert answer.headers["etag"] == f'"{rig["hash"]}"'
    assert hashlib.sha256(answer.content).hexdigest() == rig["hash"]
    probe = api.head(rig["rig_url"], headers=user.headers)  # the file's headers, no bytes
    assert (probe.status_code, probe.content) == (200, b"")
    assert probe.headers["content-length"] == str(len(answer.content))
    return answer.content


def _sub(a: Vec, b: Vec) -> Vec:
    return (a[0] - b[0], a[1] - b[1], a[2] - b[2])


def _norm(a: Vec) -> float:
    return math.sqrt(sum(c * c for c in a))


def _mid(a: Vec, b: Vec) -> Vec:
    return ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2, (a[2] + b[2]) / 2)


def expected_joints(points: dict[str, list[float]]) -> dict[str, Vec]:
    """Each joint's keypoint mapped to metres by the README's rules, computed independently:
    the hips at X = Z = 0, the lowest ankle on Y = 0, image y flipped, and a scale making
    2 x |head - neck| + |neck - hips| + the mean leg (hip - knee - ankle) the height."""
    p: dict[str, Vec] = {n: (v[0], v[1], v[2] if len(v) > 2 else 0.0) for n, v in points.items()}
    hips = _mid(p["left_hip"], p["right_hip"])
    legs = sum(
        _norm(_sub(p[f"{s}_hip"], p[f"{s}_knee"])) + _norm(_sub(p[f"{s}_knee"], p[f"{s}_ankle"]))
        for s in ("left", "right")
    )
    scale = HEIGHT / (
        2 * _norm(_sub(p["head"], p["neck"])) + _norm(_sub(p["neck"], hips)) + legs / 2
    )
    ground = max(p["left_ankle"][1], p["right_ankle"][1])

    def metres(q: Vec) -> Vec:
        return ((q[0] - hips[0]) * scale, (ground - q[1]) * scale, -(q[2] - hips[2]) * scale)

    neck = p["neck"]
    sources = {"Hips": hips, "Spine": _mid(hips, neck), "Neck": neck, "Head": p["head"]}
    for side, prefix in (("left", "Left"), ("right", "Right")):
        shoulder = p[f"{side}_shoulder"]
        sources[f"{prefix}Shoulder"] = (
            neck[0] + (shoulder[0] - neck[0]) / 4,
            neck[1] + (shoulder[1] - neck[1]) / 4,
            neck[2] + (shoulder[2] - neck[2]) / 4,
        )
        for joint, name in [
            ("Arm", "shoulder"), ("ForeArm", "elbow"), ("Hand", "wrist"),
            ("UpLeg", "hip"), ("Leg", "knee"), ("Foot", "ankle"),
        ]:  # fmt: skip
            sources[f"{prefix}{joint}"] = p[f"{side}_{name}"]
    return {name: metres(q) for name, q in sources.items()}


def joint_positions(glb: bytes) -> dict[str, Vec]:
    """Each joint's world position in the file: its parents' translations accumulated."""
    gltf = pygltflib.GLTF2.load_from_bytes(glb)
    assert len(gltf.skins) == 1
    found: dict[str, Vec] = {}

    def walk(index: int, base: Vec) -> None:
        node = gltf.nodes[index]
        t = node.translation or [0.0, 0.0, 0.0]
        here = (base[0] + t[0], base[1] + t[1], base[2] + t[2])
        found[node.name] = here
        for child in node.children or []:
            walk(child, here)

    walk(gltf.skins[0].skeleton, (0.0, 0.0, 0.0))
    assert {gltf.nodes[j].name for j in gltf.skins[0].joints} == set(found)
    return found


def assert_joints_on_keypoints(glb: bytes, points: dict[str, list[float]]) -> None:
    actual = joint_positions(glb)
    expected = expected_joints(points)
    assert set(actual) == set(expected)
    for name, position in expected.items():
        assert _norm(_sub(actual[name], position)) < 1e-3, (name, actual[name], position)


def assert_valid_gltf(glb: bytes) -> None:
    """The Khronos glTF validator reports no error (it runs wherever node is installed)."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed: the glTF validator cannot run")
    if not (VALIDATOR.parent / "node_modules" / "gltf-validator").is_dir():
        pytest.fail("the glTF validator is missing: npm install --prefix testkit/node")
    with tempfile.NamedTemporaryFile(suffix=".glb") as file:
        file.write(glb)
        file.flush()
        run = subprocess.run(
            ["node", str(VALIDATOR), file.name], capture_output=True, text=True, timeout=60
        )
    assert run.returncode in (0, 1), run.stderr
    report = json.loads(run.stdout)[0]
    assert report["numErrors"] == 0, report["messages"]
    assert report["info"]["hasSkins"] is True


async def _stored(nats_url: str, key: str) -> bool:
    """Whether the sequences asset store holds ``key`` (the stack's NATS object store)."""
    broker = Broker(nats_url, name="rigging-suite-test")
    await broker.start()
    try:
        await asyncio.wait_for(broker.connected(), timeout=10)
        return await NatsAssetStore(broker, "sequences-keyframes").stat(key) is not None
    finally:
        await broker.close()


async def _rig_created(nats_url: str, rig_id: str) -> CloudEvent:
    nc = await nats.connect(nats_url)
    try:
        sub = await nc.jetstream().pull_subscribe("rig.created", stream="SEQUENCES")
        while True:
            for msg in await sub.fetch(200, timeout=5):
                event = CloudEvent.model_validate_json(msg.data)
                if event.subject == rig_id:
                    return event
    finally:
        await nc.close()


# -- tests ----------------------------------------------------------------------------------


def test_client_keypoints_become_a_valid_deterministic_rig(
    stack: Stack, api: httpx.Client, make_user: Any
):
    user = make_user()
    pid = project(api, user)
    pending = convert(api, user, pid, {"keypoints": KEYPOINTS})
    assert pending["detector"] == "client"
    rig = wait_rig(api, user, pending["id"])
    assert rig["status"] == "completed", rig
    assert rig["bone_count"] == 18
    assert rig["rig_url"].partition("?")[0] == f"/api/rigging/{rig['id']}/download"
    assert rig["keypoints"]["inferred"] == []
    assert rig["keypoints"]["height_metres"] == HEIGHT
    glb = download(api, user, rig)
    assert glb[:4] == b"glTF"
    assert_valid_gltf(glb)
    assert_joints_on_keypoints(glb, KEYPOINTS)

    # Downloads are assets: ranges, ETags, an attachment.
    url = rig["rig_url"]
    head = api.get(url, headers={**user.headers, "Range": "bytes=0-3"})
    assert head.status_code == 206
    assert head.content == b"glTF"
    cached = api.get(url, headers={**user.headers, "If-None-Match": f'"{rig["hash"]}"'})
    assert cached.status_code == 304
    assert "attachment" in api.get(url, headers=user.headers).headers["content-disposition"]

    # The rig's job, on the shared job routes.
    job = api.get(f"/api/rigging/jobs/{rig['job_id']}", headers=user.headers).json()
    assert job["status"] == "completed"
    assert job["result"]["hash"] == rig["hash"]
    ticket = api.post(
        f"/api/rigging/jobs/{rig['job_id']}/stream-ticket", headers=user.headers
    ).json()["ticket"]
    with api.stream(
        "GET", f"/api/rigging/jobs/{rig['job_id']}/stream", params={"ticket": ticket}
    ) as stream:
        assert stream.status_code == 200
        events = [line for line in stream.iter_lines() if line.startswith("event:")]
    assert events[-1] == "event: complete"
    # Not a storyboard: the sequences routes do not know it.
    assert_problem(api.get(f"/api/sequences/{rig['job_id']}/status", headers=user.headers), 404)
    assert api.get("/api/sequences", headers=user.headers).json()["total"] == 0

    # The same keypoints give the same file, byte for byte.
    again = wait_rig(api, user, convert(api, user, pid, {"keypoints": KEYPOINTS})["id"])
    assert again["hash"] == rig["hash"]
    assert download(api, user, again) == glb

    event = asyncio.run(_rig_created(stack.nats_url, rig["id"]))
    assert event.data["rig_id"] == rig["id"]
    assert event.data["project_id"] == pid
    assert event.source == "sequences"


def test_a_missing_wrist_is_inferred_and_missing_hips_are_refused(
    api: httpx.Client, make_user: Any
):
    user = make_user()
    pid = project(api, user)
    no_wrist = {k: v for k, v in KEYPOINTS.items() if k != "right_wrist"}
    rig = wait_rig(api, user, convert(api, user, pid, {"keypoints": no_wrist})["id"])
    assert rig["status"] == "completed", rig
    assert rig["keypoints"]["inferred"] == ["right_wrist"]
    assert "right_elbow" in rig["keypoints"]["inference"]["right_wrist"]
    wrist = rig["keypoints"]["points"]["right_wrist"]
    assert wrist[0] < KEYPOINTS["right_elbow"][0]  # further out, along the arm
    assert_joints_on_keypoints(download(api, user, rig), rig["keypoints"]["points"])

    no_hips = {k: v for k, v in KEYPOINTS.items() if not k.endswith("_hip")}
    refused = api.post(
        "/api/rigging/convert",
        headers=user.headers,
        json={"project_id": pid, "sheet": {"keypoints": no_hips}},
    )
    body = assert_problem(refused, 422, "keypoints_missing")
    assert body["missing"] == ["left_hip", "right_hip"]
    assert "left_hip, right_hip" in body["detail"]


def test_an_uploaded_sheet_is_rigged_from_comfyuis_pose_answer(
    api: httpx.Client, make_user: Any, fake_comfyui: FakeComfyUI
):
    user = make_user()
    pid = project(api, user)
    png = sheet_png(300, 450)
    asset_id = upload(api, user, pid, png)
    pending = convert(api, user, pid, {"asset_id": asset_id})
    assert pending["detector"] == "comfyui"
    rig = wait_rig(api, user, pending["id"])
    assert rig["status"] == "completed", rig
    assert png in fake_comfyui.inputs.values()  # the real upload went through
    assert rig["keypoints"]["layout"] == "openpose-coco18"
    assert rig["keypoints"]["image"] == {"width": 300, "height": 450}
    assert rig["keypoints"]["inferred"] == ["head"]
    # The fake's figure, normalised, in the sheet's pixels; the head is its face's centre.
    detected = {
        name: [STANDING_FIGURE[3 * i] * 300, STANDING_FIGURE[3 * i + 1] * 450]
        for i, name in enumerate(COCO18)
    }
    face = [detected[n] for n in ("nose", "left_eye", "right_eye", "left_ear", "right_ear")]
    detected["head"] = [sum(p[0] for p in face) / 5, sum(p[1] for p in face) / 5]
    glb = download(api, user, rig)
    assert_valid_gltf(glb)
    assert_joints_on_keypoints(glb, detected)


def test_a_generated_keyframe_is_rigged_and_only_by_its_owner(api: httpx.Client, make_user: Any):
    owner, stranger = make_user(), make_user()
    pid = project(api, owner)
    job = api.post(
        "/api/sequences/generate",
        headers=owner.headers,
        json={"project_id": pid, "prompt": "A knight stands in the courtyard.", "shot_count": 1},
    ).json()
    settle(
        lambda: (
            api.get(f"/api/sequences/{job['job_id']}/status", headers=owner.headers).json()[
                "status"
            ]
            == "completed"
        ),
        within=60,
        what="the storyboard is rendered",
    )
    sheet = {"keyframe": {"sequence_job_id": job["job_id"], "index": 0}}
    rig = wait_rig(api, owner, convert(api, owner, pid, sheet)["id"])
    assert rig["status"] == "completed", rig
    assert rig["detector"] == "comfyui"
    assert_valid_gltf(download(api, owner, rig))

    theirs = project(api, stranger)
    refused = api.post(
        "/api/rigging/convert",
        headers=stranger.headers,
        json={"project_id": theirs, "sheet": sheet},
    )
    assert_problem(refused, 404, "job_not_found")
    missing = {"keyframe": {"sequence_job_id": job["job_id"], "index": 3}}
    assert_problem(
        api.post(
            "/api/rigging/convert",
            headers=owner.headers,
            json={"project_id": pid, "sheet": missing},
        ),
        404,
        "keyframe_not_found",
    )


def test_a_detected_pose_without_hips_fails_the_job_naming_them(
    api: httpx.Client, make_user: Any, fake_comfyui: FakeComfyUI
):
    user = make_user()
    pid = project(api, user)
    asset_id = upload(api, user, pid, sheet_png())
    hipless = list(STANDING_FIGURE)
    for index in (COCO18.index("left_hip"), COCO18.index("right_hip")):
        hipless[3 * index : 3 * index + 3] = [0.0, 0.0, 0.0]
    fake_comfyui.poses = [hipless]
    try:
        rig = wait_rig(api, user, convert(api, user, pid, {"asset_id": asset_id})["id"])
    finally:
        fake_comfyui.poses = None
    assert rig["status"] == "failed"
    assert "left_hip, right_hip" in rig["error"]
    assert rig["rig_url"] is None


def test_comfyui_down_fails_the_job_with_its_reason(
    api: httpx.Client, make_user: Any, fake_comfyui: FakeComfyUI
):
    user = make_user()
    pid = project(api, user)
    asset_id = upload(api, user, pid, sheet_png())
    fake_comfyui.stop()
    try:
        rig = wait_rig(api, user, convert(api, user, pid, {"asset_id": asset_id})["id"])
    finally:
        fake_comfyui.start()
    assert rig["status"] == "failed"
    assert "ComfyUI is unreachable" in rig["error"]
    assert rig["hash"] is None
    assert rig["rig_url"] is None
    assert_problem(
        api.get(f"/api/rigging/{rig['id']}/download", headers=user.headers), 409, "rig_not_ready"
    )
    job = api.get(f"/api/rigging/jobs/{rig['job_id']}", headers=user.headers).json()
    assert job["status"] == "failed"
    assert "ComfyUI is unreachable" in job["error"]


@pytest.mark.parametrize(
    "body",
    [
        {"sheet": {"path": "/etc/passwd"}},
        {"sheet": {"asset_id": "/etc/passwd"}},
        {"sheet": {"asset_id": "../../etc/passwd"}},
        {"sheet": {"keypoints": KEYPOINTS, "path": "/srv/sheet.png"}},
        {"sheet": {"keypoints": KEYPOINTS}, "input_path": "/srv/sheet.png"},
        {"sheet": {"keypoints": {"elbow": [1, 2]}}},
        {"sheet": {"keypoints": {"neck": [1]}}},
        {"sheet": {}},
    ],
)
def test_bad_sheets_and_server_paths_are_422(api: httpx.Client, make_user: Any, body: dict):
    user = make_user()
    full = {"project_id": project(api, user), **body}
    assert_problem(api.post("/api/rigging/convert", headers=user.headers, json=full), 422)


def test_another_users_rig_is_404_everywhere(api: httpx.Client, make_user: Any):
    owner, stranger = make_user(), make_user()
    pid = project(api, owner)
    rig = wait_rig(api, owner, convert(api, owner, pid, {"keypoints": KEYPOINTS})["id"])
    assert rig["status"] == "completed"
    for method, path in [
        ("GET", f"/api/rigging/{rig['id']}"),
        ("GET", f"/api/rigging/{rig['id']}/download"),
        ("DELETE", f"/api/rigging/{rig['id']}"),
    ]:
        assert_problem(api.request(method, path, headers=stranger.headers), 404, "rig_not_found")
    for method, path in [
        ("GET", f"/api/rigging/jobs/{rig['job_id']}"),
        ("POST", f"/api/rigging/jobs/{rig['job_id']}/cancel"),
        ("POST", f"/api/rigging/jobs/{rig['job_id']}/stream-ticket"),
        ("GET", f"/api/rigging/jobs/{rig['job_id']}/stream"),
    ]:
        assert_problem(api.request(method, path, headers=stranger.headers), 404, "job_not_found")
    # Nor can another user's uploaded sheet be used.
    asset_id = upload(api, owner, pid, sheet_png())
    refused = api.post(
        "/api/rigging/convert",
        headers=stranger.headers,
        json={"project_id": project(api, stranger), "sheet": {"asset_id": asset_id}},
    )
    assert_problem(refused, 404, "sheet_not_found")
    # Uploads are checked: the bytes must be the image the Content-Type names.
    bad = api.post(
        "/api/rigging/sheets",
        params={"project_id": pid},
        headers={**owner.headers, "Content-Type": "image/png"},
        content=b"GIF89a not a png at all",
    )
    assert_problem(bad, 415, "unsupported_media_type")


def test_deleting_a_rig_or_its_project_removes_it_and_its_file(
    stack: Stack, api: httpx.Client, make_user: Any
):
    user = make_user()
    pid = project(api, user)
    first = wait_rig(api, user, convert(api, user, pid, {"keypoints": KEYPOINTS})["id"])
    second = wait_rig(api, user, convert(api, user, pid, {"keypoints": KEYPOINTS})["id"])
    files = [f"rigs/{first['id']}.glb", f"rigs/{second['id']}.glb"]
    assert all(asyncio.run(_stored(stack.nats_url, key)) for key in files)
    assert api.delete(f"/api/rigging/{first['id']}", headers=user.headers).status_code == 204
    assert_problem(api.get(f"/api/rigging/{first['id']}", headers=user.headers), 404)
    assert_problem(api.get(first["rig_url"], headers=user.headers), 404)
    assert not asyncio.run(_stored(stack.nats_url, files[0]))

    assert api.delete(f"/api/projects/{pid}", headers=user.headers).status_code == 204
    settle(
        lambda: api.get(f"/api/rigging/{second['id']}", headers=user.headers).status_code == 404,
        within=10,
        what="project.deleted removed the rig",
    )
    assert_problem(api.get(second["rig_url"], headers=user.headers), 404)
    assert not asyncio.run(_stored(stack.nats_url, files[1]))
    # The jobs stay, as the record of the work done.
    job = api.get(f"/api/rigging/jobs/{second['job_id']}", headers=user.headers).json()
    assert job["status"] == "completed"
