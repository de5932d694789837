"""Assertions on RFC 9457 answers, shared by every service's tests."""

from __future__ import annotations

from typing import Any

import httpx


def assert_problem(
    response: httpx.Response, status: int, code: str | None = None
) -> dict[str, Any]:
    """The answer is an RFC 9457 problem with our fields."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    body: dict[str, Any] = response.json()
    assert {"type", "title", "status", "detail", "code", "request_id"} <= set(body)
    assert body["status"] == status
    if code is not None:
        assert body["code"] == code, body
    assert "Traceback" not in response.text
    return body
