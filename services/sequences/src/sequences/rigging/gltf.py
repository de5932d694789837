"""A skeleton as a glTF 2.0 binary (``.glb``), built with pygltflib.

The file holds one scene: the joint hierarchy (each joint a node whose translation is its offset
from its parent, no rotation), one skin (its joints, their inverse bind matrices, the hips as
skeleton root) and one skinned mesh: a box per bone, every vertex weighted wholly to its bone's
joint, so any viewer shows the figure and moves it with the joints. Nothing in the file depends
on time or chance: the same skeleton gives the same bytes.
"""

from __future__ import annotations

import math
from array import array
from typing import Any

import pygltflib  # type: ignore[import-untyped]

from sequences.rigging.skeleton import Bone, Skeleton, Vec

GENERATOR = "StoryCore sequences rigging"
ARRAY_BUFFER, ELEMENT_ARRAY_BUFFER = 34962, 34963
FLOAT, UNSIGNED_BYTE, UNSIGNED_SHORT = 5126, 5121, 5123


def _cross(a: Vec, b: Vec) -> Vec:
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


def _dot(a: Vec, b: Vec) -> float:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _unit(a: Vec) -> Vec:
    n = math.sqrt(_dot(a, a))
    return (a[0] / n, a[1] / n, a[2] / n)


def _at(origin: Vec, u: Vec, v: Vec, i: float, j: float) -> Vec:
    return (
        origin[0] + i * u[0] + j * v[0],
        origin[1] + i * u[1] + j * v[1],
        origin[2] + i * u[2] + j * v[2],
    )


def _box(bone: Bone) -> list[tuple[list[Vec], Vec]]:
    """The six faces of the bone's box: four corners in order and the outward normal."""
    d = _unit(
        (bone.end[0] - bone.start[0], bone.end[1] - bone.start[1], bone.end[2] - bone.start[2])
    )
    ref: Vec = (0.0, 0.0, 1.0) if abs(d[2]) < 0.9 else (1.0, 0.0, 0.0)
    u = _unit(_cross(d, ref))
    v = _cross(d, u)
    r = bone.radius
    ru, rv = (u[0] * r, u[1] * r, u[2] * r), (v[0] * r, v[1] * r, v[2] * r)
    ring = [(-1.0, -1.0), (1.0, -1.0), (1.0, 1.0), (-1.0, 1.0)]
    s, e = bone.start, bone.end
    neg = (-d[0], -d[1], -d[2])
    faces: list[tuple[list[Vec], Vec]] = [
        ([_at(s, ru, rv, i, j) for i, j in ring], neg),
        ([_at(e, ru, rv, i, j) for i, j in ring], d),
    ]
    for axis, sign, normal in ((0, 1.0, u), (0, -1.0, u), (1, 1.0, v), (1, -1.0, v)):
        corners = []
        for origin, k in ((s, -1.0), (e, -1.0), (e, 1.0), (s, 1.0)):
            i, j = (sign, k) if axis == 0 else (k, sign)
            corners.append(_at(origin, ru, rv, i, j))
        faces.append((corners, (normal[0] * sign, normal[1] * sign, normal[2] * sign)))
    oriented = []
    for corners, normal in faces:
        a, b, c = corners[0], corners[1], corners[2]
        facing = _dot(_cross(_sub(b, a), _sub(c, a)), normal)
        oriented.append((corners if facing > 0 else corners[::-1], normal))
    return oriented


def _sub(a: Vec, b: Vec) -> Vec:
    return (a[0] - b[0], a[1] - b[1], a[2] - b[2])


class _Blob:
    """The binary chunk: buffer views appended one after another, each 4-byte aligned."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.views: list[pygltflib.BufferView] = []

    def add(self, payload: bytes, target: int | None) -> int:
        offset = len(self.data)
        self.data += payload
        self.data += b"\x00" * (-len(self.data) % 4)
        view = pygltflib.BufferView(buffer=0, byteOffset=offset, byteLength=len(payload))
        if target is not None:
            view.target = target
        self.views.append(view)
        return len(self.views) - 1


def _bounds(values: array[float]) -> tuple[list[float], list[float]]:
    xs, ys, zs = values[0::3], values[1::3], values[2::3]
    return [min(xs), min(ys), min(zs)], [max(xs), max(ys), max(zs)]


def build_glb(skeleton: Skeleton) -> bytes:
    """The skeleton's ``.glb`` bytes."""
    positions, normals = array("f"), array("f")
    joints, weights = array("B"), array("f")
    indices = array("H")
    for bone in skeleton.bones:
        for corners, normal in _box(bone):
            base = len(positions) // 3
            for corner in corners:
                positions.extend(corner)
                normals.extend(_unit(normal))
                joints.extend((bone.joint, 0, 0, 0))
                weights.extend((1.0, 0.0, 0.0, 0.0))
            indices.extend((base, base + 1, base + 2, base, base + 2, base + 3))
    inverse_binds = array("f")
    for joint in skeleton.joints:
        x, y, z = joint.world  # the bind pose has no rotation: the inverse is a translation
        inverse_binds.extend((1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, -x, -y, -z, 1))
    for values in (positions, normals, weights, inverse_binds):
        if values.itemsize != 4:  # pragma: no cover - array("f") is 32-bit on every platform
            raise RuntimeError("float32 arrays are required")

    blob = _Blob()
    count = len(positions) // 3
    low, high = _bounds(positions)
    accessors = [
        pygltflib.Accessor(
            bufferView=blob.add(positions.tobytes(), ARRAY_BUFFER),
            componentType=FLOAT,
            count=count,
            type="VEC3",
            min=low,
            max=high,
        ),
        pygltflib.Accessor(
            bufferView=blob.add(normals.tobytes(), ARRAY_BUFFER),
            componentType=FLOAT,
            count=count,
            type="VEC3",
        ),
        pygltflib.Accessor(
            bufferView=blob.add(joints.tobytes(), ARRAY_BUFFER),
            componentType=UNSIGNED_BYTE,
            count=count,
            type="VEC4",
        ),
        pygltflib.Accessor(
            bufferView=blob.add(weights.tobytes(), ARRAY_BUFFER),
            componentType=FLOAT,
            count=count,
            type="VEC4",
        ),
        pygltflib.Accessor(
            bufferView=blob.add(indices.tobytes(), ELEMENT_ARRAY_BUFFER),
            componentType=UNSIGNED_SHORT,
            count=len(indices),
            type="SCALAR",
        ),
        pygltflib.Accessor(
            bufferView=blob.add(inverse_binds.tobytes(), None),
            componentType=FLOAT,
            count=len(skeleton.joints),
            type="MAT4",
        ),
    ]
    nodes = []
    for index, joint in enumerate(skeleton.joints):
        node = pygltflib.Node(name=joint.name, translation=list(skeleton.local(index)))
        children = [i for i, j in enumerate(skeleton.joints) if j.parent == index]
        if children:
            node.children = children
        nodes.append(node)
    body = len(nodes)
    nodes.append(pygltflib.Node(name="Body", mesh=0, skin=0))
    root = skeleton.index("Hips")
    gltf = pygltflib.GLTF2(
        asset=pygltflib.Asset(version="2.0", generator=GENERATOR),
        scene=0,
        scenes=[pygltflib.Scene(name="Rig", nodes=[root, body])],
        nodes=nodes,
        skins=[
            pygltflib.Skin(
                name="Skeleton",
                joints=list(range(len(skeleton.joints))),
                skeleton=root,
                inverseBindMatrices=5,
            )
        ],
        meshes=[
            pygltflib.Mesh(
                name="Body",
                primitives=[
                    pygltflib.Primitive(
                        attributes=pygltflib.Attributes(
                            POSITION=0, NORMAL=1, JOINTS_0=2, WEIGHTS_0=3
                        ),
                        indices=4,
                        material=0,
                    )
                ],
            )
        ],
        materials=[
            pygltflib.Material(
                name="Clay",
                pbrMetallicRoughness=pygltflib.PbrMetallicRoughness(
                    baseColorFactor=[0.8, 0.78, 0.74, 1.0], metallicFactor=0.0, roughnessFactor=0.9
                ),
            )
        ],
        accessors=accessors,
        bufferViews=blob.views,
        buffers=[pygltflib.Buffer(byteLength=len(blob.data))],
    )
    gltf.set_binary_blob(bytes(blob.data))
    chunks: Any = gltf.save_to_bytes()
    return b"".join(chunks)
