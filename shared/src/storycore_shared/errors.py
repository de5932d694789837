"""One error hierarchy, rendered once as RFC 9457 ``application/problem+json``.

Below the route layer code raises a :class:`ServiceError` subclass, never ``HTTPException``::

    class ProjectNotFound(NotFound):
        code = "project_not_found"
        title = "Project not found"

Every answer carries ``type, title, status, detail, code, request_id``; validation errors add
``errors``. Unexpected exceptions are logged with their traceback and answered with a bare 500:
no stack trace ever reaches a client.
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
    fields = ", ".join(".".join(str(p) for p in e["loc"]) for e in errors)
    return problem_response(
        422,
        "validation_error",
        "Validation error",
        f"Invalid request: {fields}",
        extra={"errors": errors},
    )


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


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)


# -- the project guard's errors, the same in every service holding project-scoped data ----------


class ProjectNotFound(NotFound):
    """No such project, or another user's private one (404, so ids cannot be probed)."""

    code = "project_not_found"
    title = "Project not found"


class ProjectReadOnly(Forbidden):
    """A public project is readable by anyone, writable only by its owner."""

    code = "project_read_only"
    title = "Project is read-only for you"
