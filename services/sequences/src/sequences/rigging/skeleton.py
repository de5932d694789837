"""From body keypoints to a humanoid skeleton in metres: pure, deterministic functions.

Keypoints are in image axes and one unit (pixels for an image): x to the right, y downwards,
z away from the viewer (as a depth: smaller is nearer); 2D points have z = 0. The rig uses
glTF's axes: metres, +Y up, the character facing +Z (towards the viewer of the sheet), its
left hand on +X. A source point p maps to

    X = (p.x - hips.x) * s,   Y = (ground - p.y) * s,   Z = -(p.z - hips.z) * s

where ``ground`` is the lowest foot point's y (the feet stand on Y = 0) and ``s`` (metres per
unit) makes the body's length along the skeleton equal the character height: twice the
head-to-neck distance (head centre to crown, and neck to head centre), plus neck to hips, plus
the mean of the two legs (hip to knee to ankle).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, get_args

Vec = tuple[float, float, float]

# Every keypoint name a sheet may give: OpenPose's BODY_25 set, with ``head`` besides.
KeypointName = Literal[
    "head",
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "neck",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "mid_hip",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
    "left_big_toe",
    "left_small_toe",
    "left_heel",
    "right_big_toe",
    "right_small_toe",
    "right_heel",
]
KEYPOINT_NAMES: tuple[str, ...] = get_args(KeypointName)
FACE = ("nose", "left_eye", "right_eye", "left_ear", "right_ear")
FOOT_EXTRAS = KEYPOINT_NAMES[-6:]

# The joints, parents first. Each sits where its bone starts (Mixamo-style names).
JOINTS: tuple[tuple[str, str | None], ...] = (
    ("Hips", None),
    ("Spine", "Hips"),
    ("Neck", "Spine"),
    ("Head", "Neck"),
    ("LeftShoulder", "Spine"),
    ("LeftArm", "LeftShoulder"),
    ("LeftForeArm", "LeftArm"),
    ("LeftHand", "LeftForeArm"),
    ("RightShoulder", "Spine"),
    ("RightArm", "RightShoulder"),
    ("RightForeArm", "RightArm"),
    ("RightHand", "RightForeArm"),
    ("LeftUpLeg", "Hips"),
    ("LeftLeg", "LeftUpLeg"),
    ("LeftFoot", "LeftLeg"),
    ("RightUpLeg", "Hips"),
    ("RightLeg", "RightUpLeg"),
    ("RightFoot", "RightLeg"),
)

# Rules of thumb from human proportions, used only to fill in what a sheet lacks.
FOREARM_PER_UPPER_ARM = 0.85  # a missing wrist continues the upper arm by this much
SHIN_PER_THIGH = 1.0  # a missing ankle continues the thigh by this much
CLAVICLE_FRACTION = 0.25  # a clavicle joint sits this far from the neck towards its shoulder
HAND_PER_FOREARM = 0.7  # drawn hand length (the mesh only)
FOOT_PER_SHIN = 0.55  # drawn foot length, forwards (the mesh only)


class MissingKeypoints(ValueError):
    """Keypoints a skeleton needs that are absent and cannot be inferred from the others."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        super().__init__("missing keypoints that cannot be inferred: " + ", ".join(names))


class DegenerateKeypoints(ValueError):
    """The keypoints span no length (all at one place): there is no scale to take."""


def _add(a: Vec, b: Vec) -> Vec:
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2])


def _sub(a: Vec, b: Vec) -> Vec:
    return (a[0] - b[0], a[1] - b[1], a[2] - b[2])


def _scale(a: Vec, k: float) -> Vec:
    return (a[0] * k, a[1] * k, a[2] * k)


def _mid(a: Vec, b: Vec) -> Vec:
    return _scale(_add(a, b), 0.5)


def _length(a: Vec) -> float:
    return math.sqrt(a[0] * a[0] + a[1] * a[1] + a[2] * a[2])


def _lerp(a: Vec, b: Vec, t: float) -> Vec:
    return _add(a, _scale(_sub(b, a), t))


def as_vec(value: tuple[float, ...] | list[float]) -> Vec:
    """``[x, y]`` or ``[x, y, z]`` as a point (2D points get z = 0)."""
    return (float(value[0]), float(value[1]), float(value[2]) if len(value) > 2 else 0.0)


@dataclass(frozen=True)
class ResolvedKeypoints:
    """Every keypoint a skeleton needs, given or inferred, in the sheet's units and axes."""

    points: dict[str, Vec]
    # name -> how it was inferred, for the points the sheet did not give.
    inferred: dict[str, str] = field(default_factory=dict)

    @property
    def hips(self) -> Vec:
        return self.points.get("mid_hip") or _mid(self.points["left_hip"], self.points["right_hip"])


def resolve(given: Mapping[str, Vec]) -> ResolvedKeypoints:
    """Fill in what can be inferred; raise :class:`MissingKeypoints` naming what cannot."""
    points = {name: given[name] for name in KEYPOINT_NAMES if name in given}
    inferred: dict[str, str] = {}
    missing: list[str] = []

    def infer(name: str, value: Vec, how: str) -> None:
        points[name] = value
        inferred[name] = how

    # Hips: a missing side mirrors the other through mid_hip.
    for side, other in (("left", "right"), ("right", "left")):
        if f"{side}_hip" not in points and f"{other}_hip" in points and "mid_hip" in points:
            mirrored = _sub(_scale(points["mid_hip"], 2), points[f"{other}_hip"])
            infer(f"{side}_hip", mirrored, f"{other}_hip mirrored through mid_hip")
    missing += [f"{side}_hip" for side in ("left", "right") if f"{side}_hip" not in points]

    # Neck and shoulders: the neck halfway between the shoulders, or a shoulder mirrored
    # through the neck.
    if "neck" not in points and "left_shoulder" in points and "right_shoulder" in points:
        infer(
            "neck",
            _mid(points["left_shoulder"], points["right_shoulder"]),
            "midpoint of the shoulders",
        )
    for side, other in (("left", "right"), ("right", "left")):
        if f"{side}_shoulder" not in points and f"{other}_shoulder" in points and "neck" in points:
            mirrored = _sub(_scale(points["neck"], 2), points[f"{other}_shoulder"])
            infer(f"{side}_shoulder", mirrored, f"{other}_shoulder mirrored through the neck")
    missing += [n for n in ("neck", "left_shoulder", "right_shoulder") if n not in points]

    # Limbs: a missing middle joint halfway between its ends; a missing end continues the
    # limb's first segment.
    for side in ("left", "right"):
        for root, middle, end, ratio in (
            ("shoulder", "elbow", "wrist", FOREARM_PER_UPPER_ARM),
            ("hip", "knee", "ankle", SHIN_PER_THIGH),
        ):
            r, m, e = f"{side}_{root}", f"{side}_{middle}", f"{side}_{end}"
            if r not in points:
                missing += [n for n in (m, e) if n not in points]
                continue
            if m not in points and e in points:
                infer(m, _mid(points[r], points[e]), f"midpoint of {r} and {e}")
            elif e not in points and m in points:
                extended = _add(points[m], _scale(_sub(points[m], points[r]), ratio))
                infer(e, extended, f"extrapolated along {r} -> {m}")
            missing += [n for n in (m, e) if n not in points]

    # Head: the centre of the face points the sheet has.
    if "head" not in points:
        face = [points[n] for n in FACE if n in points]
        if face:
            centre = _scale(
                (sum(p[0] for p in face), sum(p[1] for p in face), sum(p[2] for p in face)),
                1 / len(face),
            )
            infer("head", centre, "centre of " + ", ".join(n for n in FACE if n in points))
        else:
            missing.append("head")

    if missing:
        ordered = [n for n in KEYPOINT_NAMES if n in set(missing)]
        raise MissingKeypoints(ordered)
    return ResolvedKeypoints(points=points, inferred=inferred)


@dataclass(frozen=True)
class Joint:
    name: str
    parent: int | None
    # Where the joint is in the rig (metres), and where its point is on the sheet.
    world: Vec
    source: Vec


@dataclass(frozen=True)
class Bone:
    """A drawn segment of the mesh, weighted wholly to ``joint``."""

    joint: int
    start: Vec
    end: Vec
    radius: float


@dataclass(frozen=True)
class Skeleton:
    joints: list[Joint]
    bones: list[Bone]
    keypoints: ResolvedKeypoints
    metres_per_unit: float
    height_metres: float

    def index(self, name: str) -> int:
        return next(i for i, joint in enumerate(self.joints) if joint.name == name)

    def local(self, index: int) -> Vec:
        """The joint's translation relative to its parent (the root's is its world position)."""
        joint = self.joints[index]
        if joint.parent is None:
            return joint.world
        return _sub(joint.world, self.joints[joint.parent].world)

    def describe(self) -> dict[str, object]:
        """What the rig records about its keypoints (JSON-ready)."""
        return {
            "points": {n: list(p) for n, p in self.keypoints.points.items()},
            "inferred": sorted(self.keypoints.inferred),
            "inference": dict(sorted(self.keypoints.inferred.items())),
            "joints": {j.name: [round(c, 6) for c in j.world] for j in self.joints},
            "metres_per_unit": self.metres_per_unit,
            "height_metres": self.height_metres,
        }


def joint_sources(resolved: ResolvedKeypoints) -> dict[str, Vec]:
    """Each joint's point on the sheet: a keypoint, or one placed by rule between keypoints."""
    p = resolved.points
    hips, neck = resolved.hips, p["neck"]
    sources = {
        "Hips": hips,
        "Spine": _mid(hips, neck),
        "Neck": neck,
        "Head": p["head"],
    }
    for side, prefix in (("left", "Left"), ("right", "Right")):
        sources[f"{prefix}Shoulder"] = _lerp(neck, p[f"{side}_shoulder"], CLAVICLE_FRACTION)
        sources[f"{prefix}Arm"] = p[f"{side}_shoulder"]
        sources[f"{prefix}ForeArm"] = p[f"{side}_elbow"]
        sources[f"{prefix}Hand"] = p[f"{side}_wrist"]
        sources[f"{prefix}UpLeg"] = p[f"{side}_hip"]
        sources[f"{prefix}Leg"] = p[f"{side}_knee"]
        sources[f"{prefix}Foot"] = p[f"{side}_ankle"]
    return sources


def body_length(resolved: ResolvedKeypoints) -> float:
    """The body's length along the skeleton, in the sheet's units (see the module docstring)."""
    p = resolved.points
    legs = [
        _length(_sub(p[f"{s}_hip"], p[f"{s}_knee"]))
        + _length(_sub(p[f"{s}_knee"], p[f"{s}_ankle"]))
        for s in ("left", "right")
    ]
    return (
        2 * _length(_sub(p["head"], p["neck"]))
        + _length(_sub(p["neck"], resolved.hips))
        + sum(legs) / 2
    )


def build_skeleton(resolved: ResolvedKeypoints, *, height_metres: float) -> Skeleton:
    """The humanoid skeleton of ``resolved``, ``height_metres`` tall along its body."""
    length = body_length(resolved)
    if not length > 1e-9:
        raise DegenerateKeypoints("the keypoints span no length: they cannot be scaled")
    s = height_metres / length
    hips = resolved.hips
    ground = max(
        resolved.points[n][1]
        for n in ("left_ankle", "right_ankle", *FOOT_EXTRAS)
        if n in resolved.points
    )

    def world(p: Vec) -> Vec:
        return ((p[0] - hips[0]) * s, (ground - p[1]) * s, -(p[2] - hips[2]) * s)

    sources = joint_sources(resolved)
    names = [name for name, _ in JOINTS]
    joints = [
        Joint(
            name=name,
            parent=None if parent is None else names.index(parent),
            world=world(sources[name]),
            source=sources[name],
        )
        for name, parent in JOINTS
    ]
    return Skeleton(
        joints=joints,
        bones=_bones(joints, height_metres),
        keypoints=resolved,
        metres_per_unit=s,
        height_metres=height_metres,
    )


def _bones(joints: list[Joint], height: float) -> list[Bone]:
    """One box from each joint to each child; leaf joints get an end by proportion."""
    names = [j.name for j in joints]
    bones: list[Bone] = []
    for index, joint in enumerate(joints):
        children = [c for c in joints if c.parent == index]
        ends = [c.world for c in children]
        if not children:
            parent = joints[joint.parent].world if joint.parent is not None else joint.world
            along = _sub(joint.world, parent)
            if joint.name == "Head":
                ends = [_add(joint.world, along)]  # the crown
            elif joint.name.endswith("Hand"):
                ends = [_add(joint.world, _scale(along, HAND_PER_FOREARM))]
            elif joint.name.endswith("Foot"):
                ends = [_add(joint.world, (0.0, 0.0, _length(along) * FOOT_PER_SHIN))]
        for end in ends:
            length = _length(_sub(end, joint.world))
            if length < 1e-6:
                continue  # nothing to draw between two joints at one place
            radius = min(max(0.12 * length, 0.01 * height), 0.05 * height)
            if joint.name == "Head":
                radius = 0.5 * length
            bones.append(
                Bone(joint=names.index(joint.name), start=joint.world, end=end, radius=radius)
            )
    return bones
