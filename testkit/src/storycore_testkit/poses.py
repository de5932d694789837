"""One test figure for the rigging tests: keypoints on a 400x600 sheet, arms out, facing the
viewer (its left on the image's right). Tests add or drop points from a copy."""

from __future__ import annotations

FIGURE: dict[str, list[float]] = {
    "nose": [200, 80],
    "neck": [200, 130],
    "left_shoulder": [250, 135],
    "right_shoulder": [150, 135],
    "left_elbow": [300, 140],
    "right_elbow": [100, 140],
    "left_wrist": [350, 145],
    "right_wrist": [50, 145],
    "left_hip": [225, 300],
    "right_hip": [175, 300],
    "left_knee": [230, 420],
    "right_knee": [170, 420],
    "left_ankle": [232, 540],
    "right_ankle": [168, 545],
}
