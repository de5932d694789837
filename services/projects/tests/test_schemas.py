"""Update rules of the projects service that need no database."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from projects.schemas import ProjectUpdate
from storycore_shared.errors import Unprocessable
from storycore_shared.http import expected_version


@pytest.mark.parametrize(
    ("body", "header", "expected"),
    [
        (None, None, None),
        (3, None, 3),
        (None, '"4"', 4),
        (None, 'W/"5"', 5),
        (None, "6", 6),
        (2, '"2"', 2),
        (7, "*", 7),
    ],
)
def test_expected_version_comes_from_body_or_if_match(body, header, expected):
    assert expected_version(body, header) == expected


@pytest.mark.parametrize(("body", "header"), [(None, "abc"), (2, '"3"')])
def test_bad_or_contradicting_if_match_is_rejected(body, header):
    with pytest.raises(Unprocessable):
        expected_version(body, header)


def test_update_changes_only_what_was_sent():
    update = ProjectUpdate.model_validate({"name": "  New  ", "description": None, "version": 2})
    assert update.changes() == {"name": "New", "description": None}


@pytest.mark.parametrize("field", ["name", "status", "tags", "metadata", "is_public", "fps"])
def test_null_is_refused_for_fields_that_cannot_be_empty(field):
    with pytest.raises(ValidationError, match="cannot be null"):
        ProjectUpdate.model_validate({field: None})
