"""Serving an asset over HTTP: ``Range``, ``ETag``/``If-None-Match``, ``Content-Disposition``."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar
from urllib.parse import quote

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from storycore_shared.assets.base import AssetStore, StoredObject
from storycore_shared.assets.records import AssetRecord
from storycore_shared.errors import RangeNotSatisfiable

Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])

_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


def file_route(router: APIRouter, path: str, **options: Any) -> Callable[[Endpoint], Endpoint]:
    """Register ``GET path`` for an endpoint that answers with :func:`asset_response`, and
    ``HEAD path`` for the same endpoint: the file's status and headers (size, type, ``ETag``,
    ``Accept-Ranges``) without its bytes, for a download manager, ``curl -I`` or a player
    probing the size. FastAPI adds no ``HEAD`` to a ``GET`` route by itself, so without this
    a ``HEAD`` answered 405. The ``HEAD`` route stays out of the OpenAPI document (it would
    repeat the ``GET``'s operation)::

        @file_route(router, "/{audio_id}/download", responses={200: {...}})
        async def download_audio(audio_id: uuid.UUID, request: Request, ...) -> Response:
            ...
    """

    def register(endpoint: Endpoint) -> Endpoint:
        router.head(path, response_class=Response, include_in_schema=False)(endpoint)
        return router.get(path, response_class=Response, **options)(endpoint)

    return register


def asset_response(
    request: Request,
    store: AssetStore,
    asset: AssetRecord | StoredObject,
    *,
    filename: str | None = None,
    inline: bool = True,
    max_age: int = 3600,
) -> Response:
    """Answer a GET or HEAD for ``asset``, streaming its bytes from ``store``.

    - ``Range: bytes=a-b``, ``bytes=a-`` and ``bytes=-n`` get 206 with ``Content-Range``; a range
      starting past the end raises :class:`~storycore_shared.errors.RangeNotSatisfiable` (416
      with ``Content-Range: bytes */<size>``, rendered as problem+json). A request for several
      ranges, or a malformed one, gets the whole body with 200, as RFC 9110 allows.
    - ``If-Range`` is honoured with the entity tag: a range is served only when it names the
      current one; anything else (another tag, a date) gets the whole body.
    - ``ETag`` is the quoted sha256; ``If-None-Match`` naming it gets 304.
    - ``Content-Disposition`` is ``inline`` (or ``attachment``) with the filename as an ASCII
      fallback and as RFC 5987 ``filename*=UTF-8''...``; ``filename`` defaults to the record's.

    ::

        @router.get("/assets/{key:path}")
        async def get_asset(key: str, request: Request, session: SessionDep) -> Response:
            \"\"\"Download an asset.\"\"\"
            record = await assets.get(session, key)
            if record is None:
                raise AssetNotFound()
            return asset_response(request, assets.store, record)
    """
    if isinstance(asset, AssetRecord):
        size, content_type = asset.size_bytes, asset.content_type
        filename = filename if filename is not None else asset.filename
    else:
        size, content_type = asset.size, asset.content_type
    headers = {
        "accept-ranges": "bytes",
        "cache-control": f"private, max-age={max_age}",
        "content-type": content_type,
        "content-disposition": content_disposition(filename, inline=inline),
        "x-content-type-options": "nosniff",
    }
    etag = asset.etag if asset.sha256 else None
    if etag is not None:
        headers["etag"] = etag
        if _matches(request.headers.get("if-none-match"), etag):
            del headers["content-type"], headers["content-disposition"]
            return Response(status_code=304, headers=headers)
    status, first, last = 200, 0, size - 1
    header = request.headers.get("range")
    if header is not None and _if_range_holds(request.headers.get("if-range"), etag):
        wanted = parse_range(header, size)
        if wanted is not None:
            status, (first, last) = 206, wanted
            headers["content-range"] = f"bytes {first}-{last}/{size}"
    headers["content-length"] = str(last - first + 1)
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers)
    return _AssetStream(store.read(asset.key, first, last + 1), status, headers=headers)


class _AssetStream(StreamingResponse):
    """An asset's bytes, the first piece read before the status line goes out.

    The route found the asset, but its object can be gone by the time it is read: a project's
    cascade deleting it, say. Read lazily, that showed only after "200" and the headers had been
    sent, so the connection was cut. Through the gateway's unbuffered read routes the client
    then saw it close with no answer at all. Read first, the store's ``AssetNotFound`` (or an
    outage) is raised before anything is sent, and the service's error handlers answer it as a
    problem: 404, or 503. An object deleted later, part-way through a large body, still cuts the
    stream, because nothing else can be said once the bytes flow.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        pieces = aiter(self.body_iterator)
        try:
            first = await anext(pieces)
        except StopAsyncIteration:
            first = b""
        self.body_iterator = _then(first, pieces)
        await super().__call__(scope, receive, send)


async def _then(
    first: str | bytes | memoryview, rest: AsyncIterator[str | bytes | memoryview]
) -> AsyncIterator[str | bytes | memoryview]:
    try:
        if first:
            yield first
        async for piece in rest:
            yield piece
    finally:
        close = getattr(rest, "aclose", None)
        if close is not None:
            await close()


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """The inclusive ``(first, last)`` byte of a single ``Range``, or None to send it all.

    Raises :class:`~storycore_shared.errors.RangeNotSatisfiable` when no byte of the range
    exists (``bytes=-0``, a start at or past the end, anything of an empty object).
    """
    match = _RANGE.match(header)
    if match is None:  # several ranges, another unit, or malformed
        return None
    start, end = match.groups()
    if start:
        first = int(start)
        last = int(end) if end else size - 1
        if end and last < first:
            return None  # syntactically invalid: ignored
    elif end:
        first, last = max(size - int(end), 0), size - 1
        if int(end) == 0:
            first = size
    else:
        return None
    if first >= size:
        raise RangeNotSatisfiable(
            f"the asset has {size} bytes", headers={"Content-Range": f"bytes */{size}"}
        )
    return first, min(last, size - 1)


def content_disposition(filename: str | None, *, inline: bool = True) -> str:
    """``inline``/``attachment`` with the filename as ASCII fallback and RFC 5987 UTF-8."""
    kind = "inline" if inline else "attachment"
    if not filename:
        return kind
    name = "".join("_" if ch in "/\\" or ord(ch) < 32 or ord(ch) == 127 else ch for ch in filename)
    fallback = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"%' else "_" for ch in name)
    encoded = quote(name, safe="!#$&+-.^_`|~")
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"


def _tags(header: str) -> list[str]:
    return [tag.strip().removeprefix("W/") for tag in header.split(",")]


def _matches(header: str | None, etag: str) -> bool:
    """``If-None-Match`` uses the weak comparison: ``W/"x"`` matches ``"x"``."""
    if header is None:
        return False
    return header.strip() == "*" or etag in _tags(header)


def _if_range_holds(header: str | None, etag: str | None) -> bool:
    """``If-Range`` uses the strong comparison; a date never holds (there is no Last-Modified)."""
    return header is None or (etag is not None and header.strip() == etag)
