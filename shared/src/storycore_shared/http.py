"""HTTP conventions every service shares: optimistic concurrency and pagination."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Header, Query

from storycore_shared.errors import Unprocessable, VersionConflict

_ETAG = re.compile(r'^\s*(?:W/)?"?(\d+)"?\s*$')

IfMatch = Annotated[str | None, Header(alias="If-Match")]
Page = Annotated[int, Query(ge=1)]
PageSize = Annotated[int, Query(ge=1, le=100)]


def expected_version(body_version: int | None, if_match: str | None) -> int | None:
    """The version the caller read: from the body, else from ``If-Match`` (``"3"``, ``W/"3"``)."""
    if if_match is None or if_match.strip() == "*":
        return body_version
    match = _ETAG.match(if_match)
    if match is None:
        raise Unprocessable('If-Match must be a version such as "3".')
    header_version = int(match.group(1))
    if body_version is not None and body_version != header_version:
        raise Unprocessable("The body's version and If-Match disagree.")
    return header_version


def check_version(kind: str, current: int, expected: int | None) -> None:
    """409 ``version_conflict`` when the caller read an older ``version`` than the stored one."""
    if expected is not None and expected != current:
        raise VersionConflict(
            f"The {kind} is at version {current}, not {expected}; reload and retry.",
            extra={"current_version": current},
        )


def etag(version: int) -> str:
    return f'"{version}"'
