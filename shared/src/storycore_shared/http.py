"""HTTP conventions every service shares: optimistic concurrency, pagination, SSE resumption.

Every number a client sends in a query string or a header is bounded here to what the column
behind it holds, so an absurd value is a 422 (or, for ``Last-Event-ID``, ignored), never an
overflow in Postgres.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Header, Query, Response

from storycore_shared.errors import Unprocessable, VersionConflict
from storycore_shared.types import INT32_MAX

# Versions are Postgres ``integer`` columns: at most ten digits, at most 2^31-1.
_ETAG = re.compile(r'^\s*(?:W/)?"?([0-9]{1,10})"?\s*$')
_EVENT_ID = re.compile(r"^\s*([0-9]{1,10})\s*$")

IfMatch = Annotated[str | None, Header(alias="If-Match", max_length=64)]
IfNoneMatch = Annotated[str | None, Header(alias="If-None-Match", max_length=1024)]
# offset = (page - 1) * page_size stays far inside bigint.
Page = Annotated[int, Query(ge=1, le=INT32_MAX)]
PageSize = Annotated[int, Query(ge=1, le=100)]


def _if_match_invalid(message: str) -> Unprocessable:
    error = {"loc": ["header", "If-Match"], "msg": message, "type": "value_error"}
    return Unprocessable(f"Invalid request: header.If-Match: {message}", extra={"errors": [error]})


def expected_version(body_version: int | None, if_match: str | None) -> int | None:
    """The version the caller read: from the body, else from ``If-Match`` (``"3"``, ``W/"3"``)."""
    if if_match is None or if_match.strip() == "*":
        return body_version
    match = _ETAG.match(if_match)
    if match is None or int(match.group(1)) > INT32_MAX:
        raise _if_match_invalid('If-Match must be a version such as "3".')
    header_version = int(match.group(1))
    if body_version is not None and body_version != header_version:
        raise _if_match_invalid("The body's version and If-Match disagree.")
    return header_version


def last_event_id(value: str | None) -> int:
    """The SSE ``Last-Event-ID`` a reconnecting client sends back: our frame ids are integers
    (a Postgres ``integer``). Anything else (absent, not a number, out of range) is taken as 0,
    "replay from the start", which a reconnect survives; a 422 would only end the stream."""
    match = _EVENT_ID.match(value or "")
    if match is None or int(match.group(1)) > INT32_MAX:
        return 0
    return int(match.group(1))


def check_version(kind: str, current: int, expected: int | None) -> None:
    """409 ``version_conflict`` when the caller read an older ``version`` than the stored one."""
    if expected is not None and expected != current:
        raise VersionConflict(
            f"The {kind} is at version {current}, not {expected}; reload and retry.",
            extra={"current_version": current},
        )


def etag(version: int) -> str:
    return f'"{version}"'


def not_modified(if_none_match: str | None, version: int) -> Response | None:
    """A 304 answer (with the ETag, no body) when ``If-None-Match`` names ``version``'s ETag
    or is ``*``; None when the full answer is due. For a GET that sends ``etag(version)``::

        if cached := not_modified(if_none_match, project.version):
            return cached
    """
    if if_none_match is None:
        return None
    tags = [tag.strip() for tag in if_none_match.split(",")]
    current = etag(version)
    if "*" in tags or any(tag.removeprefix("W/") == current for tag in tags):
        return Response(status_code=304, headers={"ETag": current})
    return None
