"""A failing request must not hurt the next one on the same upstream connection.

Before the fix an unhandled exception was answered by Starlette's ``ServerErrorMiddleware``,
which re-raises after answering; uvicorn then closed the connection although the answer was
complete. Traefik had already pooled that connection, handed it the next request, and a POST
(which Go's transport never replays) came back as 502: a victim's login failed right after an
attacker's 500, 18 times in 20. Now the shared catch-all answers the 500 and returns normally,
and the gateway drops idle connections before uvicorn would (see storycore_devstack.routes).

A real 500 needs a route that fails: in test mode only, every service has
``POST /api/<service>/_diagnostics/unhandled-error`` (storycore_shared.app).
"""

from __future__ import annotations

import http.client
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from storycore_devstack.stack import Stack

FAIL = "/api/{service}/_diagnostics/unhandled-error"


def test_a_500_is_a_bare_problem(api: httpx.Client):
    answer = api.post(FAIL.format(service="projects"))
    assert answer.status_code == 500
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["code"] == "internal_error"
    assert problem["request_id"] == answer.headers["x-request-id"]
    assert "deliberate" not in answer.text
    assert "Traceback" not in answer.text


@pytest.mark.parametrize("service", ["auth", "projects", "llm"])
def test_the_service_keeps_the_connection_open_after_a_500(stack: Stack, service: str):
    """Straight to the replica, on one socket: the request after a 500 is answered on it."""
    address = urlsplit(stack.replicas[service][0].url)
    assert address.hostname is not None
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
    try:
        for _ in range(3):
            connection.request("POST", FAIL.format(service=service), body=b"")
            failed = connection.getresponse()
            failed.read()
            assert failed.status == 500
            assert failed.getheader("connection", "").lower() != "close"
            connection.request("GET", "/healthz")
            healthy = connection.getresponse()  # RemoteDisconnected when the server closed it
            healthy.read()
            assert healthy.status == 200
    finally:
        connection.close()


def test_a_victims_login_right_after_an_attackers_500_succeeds(stack: Stack, make_user: Any):
    user = make_user()
    credentials = {"email": user.email, "password": user.password}
    statuses = []
    with (
        httpx.Client(base_url=stack.gateway_url, timeout=15) as attacker,
        httpx.Client(base_url=stack.gateway_url, timeout=15) as victim,
    ):
        for _ in range(20):
            assert attacker.post(FAIL.format(service="auth")).status_code == 500
            statuses.append(victim.post("/api/auth/login", json=credentials).status_code)
    assert statuses == [200] * 20
