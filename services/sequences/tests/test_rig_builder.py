"""The rig builder: keypoints -> skeleton -> glTF binary, and the OpenPose answer parser."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pygltflib  # type: ignore[import-untyped]
import pytest

from sequences.rigging.detectors import PoseError, parse_openpose
from sequences.rigging.gltf import build_glb
from sequences.rigging.skeleton import (
    JOINTS,
    DegenerateKeypoints,
    MissingKeypoints,
    Vec,
    as_vec,
    build_skeleton,
    resolve,
)
from storycore_testkit.poses import FIGURE

ROOT = Path(__file__).resolve().parents[3]
VALIDATOR = ROOT / "testkit" / "node" / "validate-gltf.cjs"
HEIGHT = 1.75

# The shared test figure, with eyes.
SHEET: dict[str, list[float]] = {**FIGURE, "left_eye": [210, 70], "right_eye": [190, 70]}


def points(sheet: dict[str, list[float]]) -> dict[str, Vec]:
    return {name: as_vec(p) for name, p in sheet.items()}


def _sub(a: Vec, b: Vec) -> Vec:
    return (a[0] - b[0], a[1] - b[1], a[2] - b[2])


def _norm(a: Vec) -> float:
    return math.sqrt(sum(c * c for c in a))


def _mid(a: Vec, b: Vec) -> Vec:
    return ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2, (a[2] + b[2]) / 2)


def expected_joints(p: dict[str, Vec], height: float = HEIGHT) -> dict[str, Vec]:
    """Each joint's keypoint mapped to metres, computed here from the documented rules."""
    hips = _mid(p["left_hip"], p["right_hip"])
    legs = sum(
        _norm(_sub(p[f"{s}_hip"], p[f"{s}_knee"])) + _norm(_sub(p[f"{s}_knee"], p[f"{s}_ankle"]))
        for s in ("left", "right")
    )
    length = 2 * _norm(_sub(p["head"], p["neck"])) + _norm(_sub(p["neck"], hips)) + legs / 2
    s = height / length
    ground = max(p["left_ankle"][1], p["right_ankle"][1])

    def metres(q: Vec) -> Vec:
        return ((q[0] - hips[0]) * s, (ground - q[1]) * s, -(q[2] - hips[2]) * s)

    neck = p["neck"]
    sources: dict[str, Vec] = {
        "Hips": hips,
        "Spine": _mid(hips, neck),
        "Neck": neck,
        "Head": p["head"],
    }
    for side, prefix in (("left", "Left"), ("right", "Right")):
        shoulder = p[f"{side}_shoulder"]
        sources[f"{prefix}Shoulder"] = (
            neck[0] + 0.25 * (shoulder[0] - neck[0]),
            neck[1] + 0.25 * (shoulder[1] - neck[1]),
            neck[2] + 0.25 * (shoulder[2] - neck[2]),
        )
        for joint, name in (
            ("Arm", "shoulder"),
            ("ForeArm", "elbow"),
            ("Hand", "wrist"),
            ("UpLeg", "hip"),
            ("Leg", "knee"),
            ("Foot", "ankle"),
        ):
            sources[f"{prefix}{joint}"] = p[f"{side}_{name}"]
    return {name: metres(q) for name, q in sources.items()}


def load(glb: bytes) -> pygltflib.GLTF2:
    return pygltflib.GLTF2.load_from_bytes(glb)


def world_positions(gltf: pygltflib.GLTF2) -> dict[str, Vec]:
    """Each joint node's world position: its parents' translations accumulated."""
    out: dict[str, Vec] = {}

    def walk(index: int, base: Vec) -> None:
        node = gltf.nodes[index]
        t = node.translation or [0.0, 0.0, 0.0]
        here = (base[0] + t[0], base[1] + t[1], base[2] + t[2])
        out[node.name] = here
        for child in node.children or []:
            walk(child, here)

    walk(gltf.skins[0].skeleton, (0.0, 0.0, 0.0))
    return out


def accessor_values(gltf: pygltflib.GLTF2, index: int) -> list[Any]:
    accessor = gltf.accessors[index]
    view = gltf.bufferViews[accessor.bufferView]
    width = {"SCALAR": 1, "VEC3": 3, "VEC4": 4, "MAT4": 16}[accessor.type]
    code = {5126: "f", 5121: "B", 5123: "H"}[accessor.componentType]
    flat = struct.unpack_from(
        f"<{accessor.count * width}{code}",
        gltf.binary_blob(),
        view.byteOffset + (accessor.byteOffset or 0),
    )
    return [flat[i : i + width] for i in range(0, len(flat), width)]


def validate(glb: bytes) -> dict[str, Any]:
    """The Khronos glTF validator's report (node and ``npm install`` in testkit/node)."""
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
    report: dict[str, Any] = json.loads(run.stdout)[0]
    return report


def test_every_joint_sits_on_its_keypoint_in_metres() -> None:
    given = points(SHEET)
    skeleton = build_skeleton(resolve(given), height_metres=HEIGHT)
    gltf = load(build_glb(skeleton))
    resolved = {**given, "head": resolve(given).points["head"]}
    expected = expected_joints(resolved)
    actual = world_positions(gltf)
    assert set(actual) == {name for name, _ in JOINTS}
    for name, position in expected.items():
        assert _norm(_sub(actual[name], position)) < 1e-3, name
    # The feet stand on the ground, the hips are the origin's vertical, image y went up.
    assert min(actual["LeftFoot"][1], actual["RightFoot"][1]) == pytest.approx(0, abs=1e-9)
    assert actual["Hips"][0] == pytest.approx(0)
    assert actual["Hips"][2] == pytest.approx(0)
    assert actual["Head"][1] > actual["Neck"][1] > actual["Hips"][1] > actual["LeftLeg"][1]
    # The character's left is +X (it faces +Z, towards the sheet's viewer).
    assert actual["LeftHand"][0] > 0 > actual["RightHand"][0]
    # Its length along the skeleton is the character height.
    described = skeleton.describe()
    assert described["height_metres"] == HEIGHT
    for name, position in described["joints"].items():
        assert _norm(_sub(tuple(position), expected[name])) < 1e-3


def test_three_dimensional_keypoints_keep_their_depth() -> None:
    sheet = {name: [*p, 0.0] for name, p in SHEET.items()}
    sheet["left_wrist"] = [350, 145, -40]  # nearer the viewer: in front of the character
    sheet["head"] = [200, 90, 5]
    given = points(sheet)
    gltf = load(build_glb(build_skeleton(resolve(given), height_metres=HEIGHT)))
    actual = world_positions(gltf)
    for name, position in expected_joints(given).items():
        assert _norm(_sub(actual[name], position)) < 1e-3, name
    assert actual["LeftHand"][2] > 0  # towards +Z, the side the character faces


def test_the_skin_binds_each_joint_by_the_inverse_of_its_world_transform() -> None:
    skeleton = build_skeleton(resolve(points(SHEET)), height_metres=HEIGHT)
    gltf = load(build_glb(skeleton))
    assert len(gltf.skins) == 1
    skin = gltf.skins[0]
    assert skin.joints == list(range(len(JOINTS)))
    assert gltf.nodes[skin.skeleton].name == "Hips"
    worlds = world_positions(gltf)
    for joint, matrix in zip(
        skin.joints, accessor_values(gltf, skin.inverseBindMatrices), strict=True
    ):
        x, y, z = worlds[gltf.nodes[joint].name]
        # Column-major; the bind pose has no rotation, so the inverse is a translation back.
        assert matrix[:12] == (1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0)
        assert matrix[12:] == pytest.approx((-x, -y, -z, 1), abs=1e-5)
    body = next(n for n in gltf.nodes if n.mesh is not None)
    assert body.skin == 0
    assert gltf.nodes.index(body) in gltf.scenes[0].nodes  # a skinned mesh is a root
    primitive = gltf.meshes[0].primitives[0]
    joints = accessor_values(gltf, primitive.attributes.JOINTS_0)
    weights = accessor_values(gltf, primitive.attributes.WEIGHTS_0)
    assert len(joints) == len(weights) > 0
    assert all(sum(w) == pytest.approx(1) for w in weights)
    assert {j[0] for j in joints} == set(range(len(JOINTS)))  # every bone is drawn


def test_the_same_keypoints_give_the_same_bytes() -> None:
    first = build_glb(build_skeleton(resolve(points(SHEET)), height_metres=HEIGHT))
    again = build_glb(build_skeleton(resolve(points(dict(SHEET))), height_metres=HEIGHT))
    assert first == again
    assert hashlib.sha256(first).hexdigest() == hashlib.sha256(again).hexdigest()
    taller = build_glb(build_skeleton(resolve(points(SHEET)), height_metres=1.9))
    assert taller != first


def test_a_missing_wrist_is_inferred_along_the_arm_and_flagged() -> None:
    sheet = {k: v for k, v in SHEET.items() if k != "left_wrist"}
    resolved = resolve(points(sheet))
    assert "left_wrist" in resolved.inferred
    assert "head" in resolved.inferred  # from the nose and eyes
    shoulder, elbow = resolved.points["left_shoulder"], resolved.points["left_elbow"]
    wrist = resolved.points["left_wrist"]
    assert wrist[0] > elbow[0] > shoulder[0]  # further out along the same line
    skeleton = build_skeleton(resolved, height_metres=HEIGHT)
    assert "left_wrist" in skeleton.describe()["inferred"]


def test_other_gaps_that_can_be_filled() -> None:
    sheet = {k: v for k, v in SHEET.items() if k not in ("neck", "right_knee", "left_elbow")}
    resolved = resolve(points(sheet))
    assert set(resolved.inferred) == {"neck", "right_knee", "left_elbow", "head"}
    assert resolved.points["neck"] == (200, 135, 0)  # between the shoulders
    mirrored = resolve(points({k: v for k, v in SHEET.items() if k != "right_shoulder"}))
    assert mirrored.points["right_shoulder"] == (150, 125, 0)  # through the neck
    with_mid = {k: v for k, v in SHEET.items() if k != "right_hip"} | {"mid_hip": [200, 300]}
    assert resolve(points(with_mid)).points["right_hip"] == (175, 300, 0)


def test_missing_hips_or_a_whole_limb_cannot_be_invented() -> None:
    without_hips = {k: v for k, v in SHEET.items() if not k.endswith("_hip")}
    with pytest.raises(MissingKeypoints) as missing:
        resolve(points(without_hips))
    assert missing.value.names == ["left_hip", "right_hip"]
    no_arm = {k: v for k, v in SHEET.items() if k not in ("left_elbow", "left_wrist")}
    with pytest.raises(MissingKeypoints) as arm:
        resolve(points(no_arm))
    assert arm.value.names == ["left_elbow", "left_wrist"]
    faceless = {k: v for k, v in SHEET.items() if k not in ("nose", "left_eye", "right_eye")}
    with pytest.raises(MissingKeypoints, match="head"):
        resolve(points(faceless))
    flat = {name: [1.0, 1.0] for name in SHEET}
    with pytest.raises(DegenerateKeypoints):
        build_skeleton(resolve(points(flat)), height_metres=HEIGHT)


def test_the_khronos_validator_finds_no_error() -> None:
    glb = build_glb(build_skeleton(resolve(points(SHEET)), height_metres=HEIGHT))
    report = validate(glb)
    assert report["numErrors"] == 0, report["messages"]
    assert report["info"]["hasSkins"] is True


def _coco18(figure: dict[str, list[float]], width: float, height: float) -> list[float]:
    order = [
        "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder",
        "left_elbow", "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip",
        "left_knee", "left_ankle", "right_eye", "left_eye", "right_ear", "left_ear",
    ]  # fmt: skip
    values: list[float] = []
    for name in order:
        if name in figure:
            values += [figure[name][0] / width, figure[name][1] / height, 1.0]
        else:
            values += [0.0, 0.0, 0.0]
    return values


def test_openpose_coco18_normalised_points_become_sheet_pixels() -> None:
    document = [
        {
            "people": [
                {"pose_keypoints_2d": [0.5, 0.5, 1.0] + [0.0] * 51},  # a lone nose
                {"pose_keypoints_2d": _coco18(SHEET, 400, 600)},
            ],
            "canvas_width": 400,
            "canvas_height": 600,
        }
    ]
    found = parse_openpose(document, width=800, height=1200)  # the sheet is twice the canvas
    assert found.layout == "openpose-coco18"
    assert found.people == 2
    assert set(found.points) == set(SHEET) - {"left_ear", "right_ear"}
    for name, (x, y) in SHEET.items():
        assert found.points[name] == pytest.approx((2 * x, 2 * y, 0.0))


def test_openpose_body25_in_canvas_pixels_and_coco17() -> None:
    body25 = [0.0] * 75
    for index, (x, y) in {1: (100, 50), 8: (100, 150), 19: (90, 290), 24: (112, 285)}.items():
        body25[3 * index : 3 * index + 3] = [x, y, 0.9]
    found = parse_openpose(
        {"people": [{"pose_keypoints_2d": body25}], "canvas_width": 200, "canvas_height": 300},
        width=400,
        height=600,
    )
    assert found.layout == "openpose-body25"
    assert found.points["mid_hip"] == pytest.approx((200, 300, 0))
    assert found.points["left_big_toe"] == pytest.approx((180, 580, 0))
    assert found.points["right_heel"] == pytest.approx((224, 570, 0))
    coco17 = [0.0] * 51
    coco17[15:18] = [0.6, 0.3, 0.8]  # index 5: left_shoulder
    found17 = parse_openpose({"people": [{"pose_keypoints_2d": coco17}]}, width=100, height=100)
    assert found17.layout == "coco17"
    assert found17.points == {"left_shoulder": pytest.approx((60, 30, 0))}


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ({"people": []}, "no person"),
        ([{"people": [{"pose_keypoints_2d": [0.0] * 54}]}], "no person"),
        ({"people": [{"pose_keypoints_2d": [1.0] * 30}]}, "not 17, 18 or 25"),
        ([], "empty"),
        ("nonsense", "not an OpenPose document"),
    ],
)
def test_pose_answers_without_a_person_are_errors(document: Any, reason: str) -> None:
    with pytest.raises(PoseError, match=reason):
        parse_openpose(document, width=10, height=10)
