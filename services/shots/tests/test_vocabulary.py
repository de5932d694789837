"""Framing values sent as ``shot_type`` become ``framing``; anything else names both lists."""

from __future__ import annotations

import uuid

import pytest
from pydantic import ValidationError

from shots.schemas import ShotCreate, ShotUpdate
from storycore_shared.contracts.vocabulary import FRAMINGS, SHOT_TYPES

BASE = {"project_id": str(uuid.uuid4()), "name": "A shot", "prompt": "A cliff at dusk"}


@pytest.mark.parametrize(
    ("sent", "framing"),
    [
        ("medium", "medium"),
        ("pov", "pov"),
        ("over-the-shoulder", "over-the-shoulder"),
        ("extreme-wide", "extreme-wide"),
        ("extreme-close-up", "extreme-close-up"),
        ("wide", "wide"),
        ("close-up", "close-up"),
        ("closeup", "close-up"),
        ("close_up", "close-up"),
        ("over_the_shoulder", "over-the-shoulder"),
    ],
)
def test_every_framing_sent_as_shot_type_becomes_framing(sent: str, framing: str):
    created = ShotCreate.model_validate({**BASE, "shot_type": sent})
    assert created.framing == framing
    assert created.shot_type == "action"
    updated = ShotUpdate.model_validate({"shot_type": sent})
    assert updated.framing == framing
    assert "shot_type" not in updated.changes()


def test_narrative_shot_types_stay_and_framing_spellings_are_accepted():
    for shot_type in SHOT_TYPES:
        assert ShotCreate.model_validate({**BASE, "shot_type": shot_type}).shot_type == shot_type
    assert ShotCreate.model_validate({**BASE, "framing": "extreme_close_up"}).framing == (
        "extreme-close-up"
    )


def test_an_unknown_shot_type_is_an_error_naming_the_field_and_both_vocabularies():
    with pytest.raises(ValidationError) as raised:
        ShotCreate.model_validate({**BASE, "shot_type": "dolly-zoom"})
    (error,) = raised.value.errors()
    assert error["loc"] == ("shot_type",)
    assert all(value in error["msg"] for value in SHOT_TYPES + FRAMINGS)
    with pytest.raises(ValidationError):
        ShotUpdate.model_validate({"shot_type": "dolly-zoom"})


def test_a_framing_shot_type_that_contradicts_framing_is_refused():
    with pytest.raises(ValidationError, match="framing"):
        ShotCreate.model_validate({**BASE, "shot_type": "pov", "framing": "wide"})
    same = ShotCreate.model_validate({**BASE, "shot_type": "pov", "framing": "pov"})
    assert same.framing == "pov"
