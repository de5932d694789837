"""Assertions on RFC 9457 answers, shared by every service's tests."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from storycore_testkit.polling import settle


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


def settle_gone(
    api: httpx.Client, url: str, headers: Mapping[str, str], *, within: float, what: str
) -> dict[str, Any]:
    """Wait until ``GET url`` answers 404 (a cascade's rows go at its commit), then check it is
    our problem."""
    settle(lambda: api.get(url, headers=headers).status_code == 404, within=within, what=what)
    return assert_problem(api.get(url, headers=headers), 404)
