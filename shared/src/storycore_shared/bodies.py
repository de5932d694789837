"""Every request body, checked once at the boundary: a size limit, then strict JSON.

:func:`storycore_shared.app.create_service_app` installs :class:`RequestBodyMiddleware` in
every service. It enforces ``STORYCORE_MAX_BODY_BYTES`` itself (the gateway's limit does not
cover streaming routes, and a service must not rely on the gateway) and decodes a JSON body
(``application/json``, ``application/*+json``) strictly before a route parses it:

- a ``Content-Length`` above the limit: 413 problem+json before a byte is read;
- a body that grows past the limit as it is read (chunked): 413 problem+json;
- in a JSON body, anywhere: a duplicate key, ``NaN``/``Infinity``/``-Infinity``, a number too
  large for a float (``1e400``), an integer outside int64, NUL (``\\u0000``) or a lone
  surrogate (``\\udc00``) in a string or a key, nesting deeper than :data:`MAX_DEPTH`: 422
  problem+json whose ``errors[].loc`` names the place (``["body", "metadata", "a"]``).

Python's ``json`` accepts all of those, and Postgres or asyncpg would then fail on them (500);
the schema types (:mod:`storycore_shared.types`) hold the same rules per field.

The check is lazy: it runs when the route reads the body, so a route that takes no body never
pays for it. A problem found then is raised as :class:`~storycore_shared.errors.RequestRejected`
(FastAPI lets only an ``HTTPException`` out of its body reading) and rendered as the problem it
carries.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from storycore_shared.errors import (
    InvalidBody,
    PayloadTooLarge,
    RequestRejected,
    problem_response,
)
from storycore_shared.types import INT64_MAX, INT64_MIN, text_problem

# Deeper than any request the services take; the decoder itself stops near 1000 (recursion).
MAX_DEPTH = 64
MAX_ERRORS = 20
_BODYLESS = frozenset({"GET", "HEAD", "OPTIONS"})
_INT64_DIGITS = len(str(INT64_MAX))


class _Invalid:
    """A value the decoder met but must not accept; reported with its place by the walk."""

    __slots__ = ("message", "type")

    def __init__(self, type_: str, message: str) -> None:
        self.type = type_
        self.message = message


class _Pairs(list[tuple[str, Any]]):
    """A JSON object as its key/value pairs, so a duplicate key can be seen."""


def _parse_constant(name: str) -> _Invalid:
    return _Invalid("json_non_finite_number", f"{name} is not a JSON number")


def _parse_float(text: str) -> float | _Invalid:
    value = float(text)
    if not math.isfinite(value):
        return _Invalid("finite_number", "The number is too large for a float")
    return value


def _parse_int(text: str) -> int | _Invalid:
    # Checked before int(): a long digit string is slow to convert, and past 4300 digits Python
    # refuses it with a ValueError.
    if len(text.lstrip("-")) <= _INT64_DIGITS:
        value = int(text)
        if INT64_MIN <= value <= INT64_MAX:
            return value
    return _Invalid("json_int_out_of_range", "Integers must fit in 64 bits")


def _error(loc: tuple[str | int, ...], type_: str, message: str) -> dict[str, Any]:
    return {"loc": ["body", *loc], "msg": message, "type": type_}


def strict_json_errors(body: bytes) -> list[dict[str, Any]]:
    """The problems of ``body`` as a strict JSON document (empty when it is fine), each with
    ``loc``, ``msg`` and ``type`` as FastAPI's validation errors have them."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return [_error((exc.start,), "json_invalid", "JSON decode error: the body is not UTF-8")]
    try:
        document = json.loads(
            text,
            object_pairs_hook=_Pairs,
            parse_constant=_parse_constant,
            parse_float=_parse_float,
            parse_int=_parse_int,
        )
    except json.JSONDecodeError as exc:
        return [_error((exc.pos,), "json_invalid", f"JSON decode error: {exc.msg}")]
    except RecursionError:
        return [_error((), "json_too_deep", f"JSON nests deeper than {MAX_DEPTH} levels")]
    return _walk(document)


def _walk(document: Any) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = []
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(document, ())]
    while stack and len(errors) < MAX_ERRORS:
        value, loc = stack.pop()
        if len(loc) > MAX_DEPTH:
            errors.append(
                _error(loc, "json_too_deep", f"JSON nests deeper than {MAX_DEPTH} levels")
            )
            break
        if isinstance(value, _Invalid):
            errors.append(_error(loc, value.type, value.message))
        elif isinstance(value, str):
            if problem := text_problem(value):
                errors.append(_error(loc, *problem))
        elif isinstance(value, _Pairs):
            seen: set[str] = set()
            children = []
            for key, child in value:
                if problem := text_problem(key):
                    errors.append(
                        _error((*loc, _printable(key)), problem[0], f"{problem[1]} (key)")
                    )
                    continue
                if key in seen:
                    errors.append(_error((*loc, key), "json_duplicate_key", "Duplicate key"))
                seen.add(key)
                children.append((child, (*loc, key)))
            stack.extend(reversed(children))
        elif isinstance(value, list):
            stack.extend((value[i], (*loc, i)) for i in reversed(range(len(value))))
    return errors


def _printable(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace")


def is_json(content_type: str | None) -> bool:
    """True for the media types FastAPI parses as JSON (``application/json``, ``+json``)."""
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    kind, _, subtype = media.partition("/")
    return kind == "application" and (subtype == "json" or subtype.endswith("+json"))


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"The request body is larger than the limit of {limit} bytes.")


class RequestBodyMiddleware:
    """Body size limit and strict JSON for one service (see the module docstring)."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, streamed: Sequence[str] = ()) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        # Paths (regular expressions) whose route reads the body as a stream and enforces a
        # limit of its own (media uploads): neither this limit nor strict JSON applies there.
        self.streamed = [re.compile(pattern) for pattern in streamed]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or any(p.fullmatch(scope["path"]) for p in self.streamed):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        length = headers.get("content-length", "").strip()
        declared = length.isascii() and length.isdigit()
        if declared and (len(length) > 18 or int(length) > self.max_body_bytes):
            error = _too_large(self.max_body_bytes)
            response = problem_response(error.status, error.code, error.title, error.detail)
            await response(scope, receive, send)
            return
        # A GET's body is never parsed, and an SSE response listens on ``receive`` for the
        # disconnect: a problem raised there would cut a stream that had started.
        strict = scope["method"] not in _BODYLESS and is_json(headers.get("content-type"))
        reader = _BodyReader(receive, self.max_body_bytes, strict_json=strict)
        await self.app(scope, reader.receive, send)


class _BodyReader:
    def __init__(self, receive: Receive, limit: int, *, strict_json: bool) -> None:
        self._receive = receive
        self.limit = limit
        self.strict_json = strict_json
        self.size = 0
        self.done = False

    def _count(self, message: Message) -> None:
        self.size += len(message.get("body", b""))
        if self.size > self.limit:
            self.done = True
            raise RequestRejected(_too_large(self.limit))

    async def receive(self) -> Message:
        if self.done:
            return await self._receive()
        if not self.strict_json:
            message = await self._receive()
            if message["type"] == "http.request":
                self._count(message)
                self.done = not message.get("more_body", False)
            return message
        # JSON: the whole body, checked, as one message.
        chunks: list[bytes] = []
        while True:
            message = await self._receive()
            if message["type"] != "http.request":
                self.done = True
                return message  # the client left; the app sees the disconnect
            self._count(message)
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        self.done = True
        body = b"".join(chunks)
        if body and (errors := strict_json_errors(body)):
            raise RequestRejected(InvalidBody(errors))
        return {"type": "http.request", "body": body, "more_body": False}
