"""One error hierarchy, rendered once as RFC 9457 ``application/problem+json``.

Below the route layer code raises a :class:`ServiceError` subclass, never ``HTTPException``::

    class ProjectNotFound(NotFound):
        code = "project_not_found"
        title = "Project not found"

Every answer carries ``type, title, status, detail, code, request_id``; validation errors add
``errors``. Unexpected exceptions are logged with their traceback and answered with a bare 500
problem: no stack trace ever reaches a client. :class:`CatchAllMiddleware` answers them without
re-raising, so the server keeps the connection open (uvicorn closes a connection when an
exception escapes the app after the answer has started, and a gateway that had already pooled
that connection would hand the next request to a dead socket: a 502 for someone else).
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from storycore_shared.logs import request_id_var

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


class ServiceError(Exception):
    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    title: ClassVar[str] = "Internal server error"
    # An error that records state (e.g. revoking a token family on reuse) asks the request's
    # session to commit before the error is answered.
    commit_session: ClassVar[bool] = False

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.headers = headers or {}
        self.extra = extra or {}


class BadRequest(ServiceError):
    status = 400
    code = "bad_request"
    title = "Bad request"


class Unauthorized(ServiceError):
    status = 401
    code = "not_authenticated"
    title = "Not authenticated"

    def __init__(self, detail: str | None = None, **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        self.headers.setdefault("WWW-Authenticate", "Bearer")


class Forbidden(ServiceError):
    status = 403
    code = "forbidden"
    title = "Forbidden"


class NotFound(ServiceError):
    status = 404
    code = "not_found"
    title = "Not found"


class Conflict(ServiceError):
    status = 409
    code = "conflict"
    title = "Conflict"


class VersionConflict(Conflict):
    code = "version_conflict"
    title = "Version conflict"


class InvalidState(Conflict):
    code = "invalid_state"
    title = "Invalid state"


class PayloadTooLarge(ServiceError):
    status = 413
    code = "payload_too_large"
    title = "Payload too large"


class RangeNotSatisfiable(ServiceError):
    """No byte of the requested ``Range`` exists; carries ``Content-Range: bytes */<size>``."""

    status = 416
    code = "range_not_satisfiable"
    title = "Range not satisfiable"


class Unprocessable(ServiceError):
    status = 422
    code = "validation_error"
    title = "Validation error"


class InvalidBody(Unprocessable):
    """The body is not strict JSON (:mod:`storycore_shared.bodies`); ``errors`` as FastAPI's."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(_invalid_fields(errors), extra={"errors": errors})


class TooManyRequests(ServiceError):
    status = 429
    code = "rate_limited"
    title = "Too many requests"


class UpstreamError(ServiceError):
    status = 502
    code = "upstream_error"
    title = "Bad answer from an upstream service"


class ServiceUnavailable(ServiceError):
    status = 503
    code = "service_unavailable"
    title = "Service unavailable"


class DatabaseUnavailable(ServiceUnavailable):
    code = "database_unavailable"
    title = "Database unavailable"


class UpstreamTimeout(ServiceError):
    status = 504
    code = "upstream_timeout"
    title = "Upstream timed out"


class RequestRejected(StarletteHTTPException):
    """A :class:`ServiceError` raised while the body is read (FastAPI turns any other exception
    from its body reading into a bare 400); rendered as that error."""

    def __init__(self, error: ServiceError) -> None:
        super().__init__(error.status, error.detail)
        self.error = error


def _invalid_fields(errors: list[dict[str, Any]]) -> str:
    fields = ", ".join(".".join(str(p) for p in e["loc"]) for e in errors)
    return f"Invalid request: {fields}"


def problem_response(
    status: int,
    code: str,
    title: str,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"https://storycore.dev/problems/{code.replace('_', '-')}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "request_id": request_id_var.get(),
    }
    body.update(extra or {})
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


_HTTP_CODES = {
    400: ("bad_request", "Bad request"),
    401: ("not_authenticated", "Not authenticated"),
    403: ("forbidden", "Forbidden"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    406: ("not_acceptable", "Not acceptable"),
    413: ("payload_too_large", "Payload too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
}


async def _service_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    if exc.status >= 500:
        logger.warning("request.failed", extra={"code": exc.code, "detail": exc.detail})
    return problem_response(
        exc.status, exc.code, exc.title, exc.detail, headers=exc.headers, extra=exc.extra
    )


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # Never echo "input" back: it may be a password.
    errors = [
        {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type", "")}
        for err in exc.errors()
    ]
    return problem_response(
        422,
        "validation_error",
        "Validation error",
        _invalid_fields(errors),
        extra={"errors": errors},
    )


async def _rejected(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestRejected)
    return await _service_error(request, exc.error)


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code, title = _HTTP_CODES.get(exc.status_code, ("http_error", "HTTP error"))
    detail = exc.detail if isinstance(exc.detail, str) else title
    headers = dict(exc.headers) if exc.headers else None
    return problem_response(exc.status_code, code, title, detail, headers=headers)


async def _database_error(_: Request, exc: Exception) -> JSONResponse:
    logger.warning("database.unavailable", extra={"error": repr(exc)})
    err = DatabaseUnavailable("The database did not answer; try again shortly.")
    return problem_response(
        err.status, err.code, err.title, err.detail, headers={"Retry-After": "2"}
    )


async def _unexpected_error(_: Request, exc: Exception) -> JSONResponse:
    if is_connection_failure(exc):
        return await _database_error(_, exc)
    logger.exception("request.unhandled_error", exc_info=exc)
    return problem_response(
        500,
        "internal_error",
        "Internal server error",
        "An unexpected error occurred; it has been logged.",
    )


def is_connection_failure(exc: BaseException) -> bool:
    """True when the database (or the network to it) failed, not the request."""
    if isinstance(exc, OperationalError | InterfaceError | PoolTimeoutError):
        return True
    if isinstance(exc, DBAPIError):
        return bool(exc.connection_invalidated) or isinstance(
            exc.orig, asyncpg.PostgresConnectionError | asyncpg.CannotConnectNowError
        )
    return isinstance(
        exc,
        ConnectionError
        | TimeoutError
        | asyncpg.PostgresConnectionError
        | asyncpg.CannotConnectNowError
        | asyncpg.InterfaceError,
    )


class CatchAllMiddleware:
    """Answers an unhandled exception with a 500 (or 503) problem and returns normally.

    Starlette's ``ServerErrorMiddleware`` re-raises after answering, and uvicorn then closes the
    connection even though the answer was complete; a proxy that had already put the connection
    back in its pool hands it the next request, which fails (a 502 for a POST it cannot retry).
    Only an exception after the answer has started still escapes: closing the connection is the
    one way to end a half-sent answer.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:
            if started:
                raise
            response = await _unexpected_error(Request(scope), exc)
            await response(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    """The problem+json handlers, and :class:`CatchAllMiddleware` (add it before middleware
    that should see its 500s, such as the access log)."""
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(RequestRejected, _rejected)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    # Only reached when CatchAllMiddleware could not answer (an answer had started).
    app.add_exception_handler(Exception, _unexpected_error)
    app.add_middleware(CatchAllMiddleware)


# -- documentation: the problem shape, for the OpenAPI ``responses`` of every router ------------

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "description": "RFC 9457 problem details.",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string"},
        "request_id": {"type": ["string", "null"]},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["loc", "msg", "type"],
                "properties": {
                    "loc": {"type": "array", "items": {"type": ["string", "integer"]}},
                    "msg": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        },
    },
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` documenting ``statuses`` as problem+json, for a router or route."""
    return {
        status: {
            "description": _PROBLEM_DESCRIPTIONS.get(status, "Problem"),
            "content": {PROBLEM_JSON: {"schema": PROBLEM_SCHEMA}},
        }
        for status in statuses
    }


_PROBLEM_DESCRIPTIONS = {
    400: "Malformed request",
    401: "Not authenticated",
    403: "Forbidden",
    404: "Not found",
    409: "Conflict",
    413: "Request body too large",
    422: "Validation error (`errors` names each field)",
    429: "Too many requests (`Retry-After`)",
    500: "Unexpected error (logged)",
    503: "A dependency is unavailable (`Retry-After`)",
}

# What any route of any service may answer, whatever it does.
SHARED_PROBLEMS = problem_responses(401, 404, 413, 422, 429, 500, 503)


# -- the project guard's errors, the same in every service holding project-scoped data ----------


class ProjectNotFound(NotFound):
    """No such project, or another user's private one (404, so ids cannot be probed)."""

    code = "project_not_found"
    title = "Project not found"


class ProjectReadOnly(Forbidden):
    """A public project is readable by anyone, writable only by its owner."""

    code = "project_read_only"
    title = "Project is read-only for you"
