"""Shot vocabulary shared by the API, the planner and the frontend's values."""

from __future__ import annotations

from typing import Literal, get_args

# The shot's narrative purpose.
ShotType = Literal[
    "establishing", "action", "dialogue", "reaction", "insert", "transition", "custom"
]
# The camera's shot size.
Framing = Literal[
    "extreme-wide", "wide", "medium", "close-up", "extreme-close-up", "over-the-shoulder", "pov"
]
CameraAngle = Literal["eye-level", "high", "low", "dutch", "birds-eye", "worms-eye"]

SHOT_TYPES: tuple[str, ...] = get_args(ShotType)
FRAMINGS: tuple[str, ...] = get_args(Framing)

# Spellings of framing values that existing clients send, besides the canonical ones.
FRAMING_SPELLINGS = {
    "closeup": "close-up",
    "extreme-closeup": "extreme-close-up",
    "ots": "over-the-shoulder",
}


def as_framing(value: str) -> str | None:
    """The framing ``value`` names (``close_up``, ``closeup``, ``Over-The-Shoulder``...), or
    None when it names none."""
    spelled = value.strip().lower().replace("_", "-").replace(" ", "-")
    spelled = FRAMING_SPELLINGS.get(spelled, spelled)
    return spelled if spelled in FRAMINGS else None
