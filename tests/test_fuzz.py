"""Schemathesis against every service's OpenAPI, through the gateway, with a real token.

Each operation under ``/api/`` gets a few generated requests that fit its schema and a few that
break it (Hypothesis, derandomized: the same requests every run). Every answer must be:

- no server error (``not_a_server_error``): no input is a 5xx;
- a documented status (``status_code_conformance``): each router documents the problems every
  route may answer (401, 404, 413, 422, 429, 500, 503, in storycore_shared.errors);
- a documented content type (``content_type_conformance``): problems are
  ``application/problem+json``, as documented;
- a body that fits the documented schema (``response_schema_conformance``).

Left: the statuses in ``ROUTE_SPECIFIC`` are not documented per route yet.

The budget is small on purpose (two cores, the whole file in about a minute and a half);
``STORYCORE_FUZZ_EXAMPLES`` raises it for a longer run.
"""

from __future__ import annotations

import logging
import os
import re
import time
import uuid
from collections.abc import Callable
from typing import Any, get_args

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.openapi.checks import UndefinedStatusCode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from llm.config import ProviderName
from storycore_devstack.routes import load_route_table
from storycore_devstack.stack import Stack
from storycore_shared.contracts.planning import PlannerProvider

logger = logging.getLogger(__name__)
TABLE = load_route_table()

SERVICES = ["auth", "projects", "shots", "locations", "llm", "sequences", "audio", "video-editor"]
EXAMPLES = int(os.environ.get("STORYCORE_FUZZ_EXAMPLES", "10"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Statuses only some routes answer, which those routes do not document yet (their routes.py
# would add ``responses=problem_responses(409)``): left out of status_code_conformance.
ROUTE_SPECIFIC = {
    403: "a public project is read-only for others (project-scoped writes)",
    409: "a stale version (updates, deletes), a taken email (register), a job's state",
}
MODES = [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]


@pytest.fixture(scope="module")
def bearer(stack: Stack) -> dict[str, str]:
    email = f"fuzz-{uuid.uuid4().hex[:10]}@example.com"
    password = "a long enough password"
    with httpx.Client(base_url=stack.gateway_url, timeout=15) as client:
        created = client.post(
            "/api/auth/register", json={"email": email, "password": password, "name": "Fuzz"}
        )
        assert created.status_code == 201, created.text
        login = client.post("/api/auth/login", json={"email": email, "password": password})
        assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


def gateway_service(path: str) -> str | None:
    """The service Traefik sends ``path`` to (the highest-priority matching rule of
    gateway/routes.toml), ``{params}`` filled with a sample value."""
    concrete = re.sub(r"\{[^}]+\}", "00000000-0000-0000-0000-000000000000", path)
    best: tuple[int, str] | None = None
    for entry in TABLE.services.values():
        for route in entry.routes:
            kind, _, argument = route.rule.partition("(`")
            argument = argument.removesuffix("`)")
            matched = {
                "PathPrefix": lambda a: concrete.startswith(a),
                "Path": lambda a: concrete == a,
                "PathRegexp": lambda a: re.search(a, concrete) is not None,
            }[kind](argument)
            if matched and (best is None or route.priority > best[0]):
                best = (route.priority, entry.name)
    return best[1] if best else None


def documented_paths(stack: Stack, service: str) -> dict[str, Any]:
    spec = httpx.get(f"{stack.gateway_url}/api/{service}/openapi.json", timeout=15)
    assert spec.status_code == 200, spec.text
    return dict(spec.json())


def _runner(
    operation: schemathesis.APIOperation,
    mode: schemathesis.GenerationMode,
    call: Callable[[schemathesis.Case], None],
) -> Callable[[], None]:
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure is reported as met
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: schemathesis.Case) -> None:
        call(case)

    return run


@pytest.mark.parametrize("service", SERVICES)
def test_no_input_is_a_server_error(stack: Stack, bearer: dict[str, str], service: str):
    # Only what the gateway sends to this service (test_every_operation_is_routed_to_its_service
    # reports the rest).
    schema = schemathesis.openapi.from_dict(documented_paths(stack, service)).include(
        lambda ctx: gateway_service(ctx.operation.path) == service
    )
    failures: list[str] = []
    sent = 0

    def call(case: schemathesis.Case) -> None:
        nonlocal sent
        sent += 1
        response = case.call(base_url=stack.gateway_url, headers=bearer, timeout=20)
        try:
            case.validate_response(response, checks=CHECKS, headers=bearer)
        except (AssertionError, FailureGroup) as exc:  # one failure, or several
            found = exc.exceptions if isinstance(exc, FailureGroup) else (exc,)
            for failure in found:
                if isinstance(failure, UndefinedStatusCode) and (
                    failure.status_code in ROUTE_SPECIFIC
                ):
                    continue
                failures.append(f"{case.operation.label}: {str(failure).strip()[:1500]}")

    began = time.monotonic()
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        for mode in MODES:
            try:
                _runner(operation, mode, call)()
            except Unsatisfiable:  # nothing to break: a route without parameters or body
                assert mode == schemathesis.GenerationMode.NEGATIVE, operation.label
    elapsed = time.monotonic() - began
    logger.info("fuzz %s: %d operations, %d requests in %.1fs", service, operations, sent, elapsed)
    assert operations > 0
    assert not failures, "\n\n".join(dict.fromkeys(failures))


def test_every_operation_is_routed_to_its_service(stack: Stack):
    """A documented operation the gateway sends elsewhere is unreachable (routes.toml lacks it)."""
    unrouted = [
        f"{service}: {method.upper()} {path} goes to {gateway_service(path)}"
        for service in SERVICES
        for path, item in documented_paths(stack, service)["paths"].items()
        for method in item
        if gateway_service(path) != service
    ]
    assert not unrouted, "\n".join(unrouted)


def test_the_planner_contract_names_the_llm_providers():
    assert get_args(PlannerProvider) == get_args(ProviderName)


def test_every_service_documents_its_problems(stack: Stack):
    """The shared problem answers are in every operation's spec, as problem+json."""
    for service in SERVICES:
        for path, item in documented_paths(stack, service)["paths"].items():
            for method, operation in item.items():
                for status in ("401", "404", "422", "429", "500", "503"):
                    answer = operation["responses"].get(status)
                    assert answer is not None, (service, method, path, status)
                    assert list(answer["content"]) == ["application/problem+json"]
