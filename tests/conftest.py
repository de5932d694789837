"""Suite-level fixtures: the whole stack (real Postgres, NATS, services, Traefik) on a free port."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from storycore_devstack.stack import Stack, StackConfig
from storycore_testkit.fake_comfyui import FakeComfyUI
from storycore_testkit.fake_llm import API_KEY, FakeLLMServer
from storycore_testkit.infra.processes import free_port

MAX_BODY_BYTES = 65536
ALLOWED_ORIGIN = "http://localhost:5173"


PROVIDER_TIMEOUT = "2"
RATE_LIMIT = 40


@pytest.fixture(scope="session")
def fake_llms() -> Iterator[dict[str, FakeLLMServer]]:
    """Ollama, OpenAI-compatible and Anthropic fakes the llm service is configured with."""
    fakes = {kind: FakeLLMServer(kind).start() for kind in ("ollama", "openai", "anthropic")}
    yield fakes
    for fake in fakes.values():
        fake.stop()


@pytest.fixture(scope="session")
def fake_comfyui() -> Iterator[FakeComfyUI]:
    fake = FakeComfyUI().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def stack(
    postgres_admin_url: str,
    infra_dir: Path,
    fake_llms: dict[str, FakeLLMServer],
    fake_comfyui: FakeComfyUI,
) -> Iterator[Stack]:
    config = StackConfig(
        data_dir=infra_dir / "stack",
        gateway_port=free_port(),
        gateway_host="127.0.0.1",
        database_url=postgres_admin_url,
        nats_url=os.environ.get("STORYCORE_TEST_NATS_URL"),
        durable=False,
        environment="test",
        extra_env={
            "STORYCORE_CORS_ORIGINS": ALLOWED_ORIGIN,
            "STORYCORE_MAX_BODY_BYTES": str(MAX_BODY_BYTES),
            "STORYCORE_LOG_LEVEL": "INFO",
            "STORYCORE_DATABASE_TIMEOUT_SECONDS": "2",
            # Every test client shares 127.0.0.1: the per-address login allowance would block
            # the whole suite (it is tested on its own in services/auth/tests).
            "AUTH_LOGIN_CLIENT_ALLOWANCE": "100000",
            "AUTH_LOGIN_BACKOFF_BASE_SECONDS": "1",
            "AUTH_LOGIN_BACKOFF_MAX_SECONDS": "2",
            "LLM_DEFAULT_PROVIDER": "mock",
            "LLM_OLLAMA_URL": fake_llms["ollama"].url,
            "LLM_OPENAI_URL": fake_llms["openai"].url,
            "LLM_OPENAI_API_KEY": API_KEY,
            "LLM_ANTHROPIC_URL": fake_llms["anthropic"].url,
            "LLM_ANTHROPIC_API_KEY": API_KEY,
            "LLM_OLLAMA_TIMEOUT_SECONDS": PROVIDER_TIMEOUT,
            "LLM_OPENAI_TIMEOUT_SECONDS": PROVIDER_TIMEOUT,
            "LLM_ANTHROPIC_TIMEOUT_SECONDS": PROVIDER_TIMEOUT,
            "LLM_RATE_LIMIT_PER_MINUTE": str(RATE_LIMIT),
            "SEQUENCES_COMFYUI_URL": fake_comfyui.url,
            "SEQUENCES_COMFYUI_TIMEOUT_SECONDS": "20",
            "SEQUENCES_WORKER_ACK_WAIT_SECONDS": "3",
            "SEQUENCES_TICKET_TTL_SECONDS": "2",
            "SEQUENCES_RATE_LIMIT_PER_MINUTE": "8",
            "SEQUENCES_MAX_STREAMS": "6",
            "AUDIO_WORKER_ACK_WAIT_SECONDS": "3",
            "AUDIO_RATE_LIMIT_PER_MINUTE": "1000",
            "VIDEO_EDITOR_WORKER_ACK_WAIT_SECONDS": "3",
            "VIDEO_EDITOR_RATE_LIMIT_PER_MINUTE": "1000",
            "VIDEO_EDITOR_UPLOAD_MAX_BYTES": str(320 * 2**20),
        },
    )
    running = Stack(config)
    try:
        running.start()
    except BaseException:
        running.stop()
        raise
    yield running
    running.stop()


@pytest.fixture
def api(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.gateway_url, timeout=15) as client:
        yield client


@dataclass
class User:
    id: str
    email: str
    password: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


@pytest.fixture
def make_user(api: httpx.Client) -> Callable[[], User]:
    """Register and log in a brand-new user."""

    def make() -> User:
        email = f"user-{uuid.uuid4().hex[:10]}@example.com"
        password = "a long enough password"
        created = api.post(
            "/api/auth/register", json={"email": email, "password": password, "name": "Tester"}
        )
        assert created.status_code == 201, created.text
        login = api.post("/api/auth/login", json={"email": email, "password": password})
        assert login.status_code == 200, login.text
        pair = login.json()
        return User(
            created.json()["id"], email, password, pair["access_token"], pair["refresh_token"]
        )

    return make


# -- what the stack logged while a test failed ---------------------------------------------------

_LOG_OFFSETS = pytest.StashKey[dict[Path, int]]()
FAILURE_LOG_LINES = 40


def _log_offsets(stack: Stack) -> dict[Path, int]:
    return {log: log.stat().st_size for log in stack.log_dir.glob("*.log")}


def _noteworthy(line: str) -> bool:
    """Warnings, errors and 5xx answers; a line that is not JSON (a traceback) unless it is
    uvicorn's own start-up chatter."""
    try:
        entry: Any = json.loads(line)
    except ValueError:
        return bool(line.strip()) and not line.startswith("INFO:")
    if not isinstance(entry, dict):
        return True
    status = entry.get("status")
    return entry.get("level") in ("warning", "error", "critical") or (
        isinstance(status, int) and status >= 500
    )


def _logged_since(offsets: dict[Path, int], stack: Stack) -> list[str]:
    lines: list[str] = []
    for log in sorted(stack.log_dir.glob("*.log")):
        with log.open("rb") as handle:
            handle.seek(offsets.get(log, 0))
            text = handle.read().decode("utf-8", errors="replace")
        lines += [f"{log.stem}: {line}" for line in text.splitlines() if _noteworthy(line)]
    return lines[-FAILURE_LOG_LINES:]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    stack = getattr(item, "funcargs", {}).get("stack")
    if isinstance(stack, Stack):
        item.stash[_LOG_OFFSETS] = _log_offsets(stack)
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Generator[Any, Any, None]:
    """A failed stack test's report carries the warnings and 5xx lines the stack logged during it:
    CI keeps the test output, not the stack's log files."""
    outcome = yield
    report = outcome.get_result()
    offsets = item.stash.get(_LOG_OFFSETS, None)
    stack = getattr(item, "funcargs", {}).get("stack")
    if report.when == "call" and report.failed and offsets is not None and isinstance(stack, Stack):
        lines = _logged_since(offsets, stack)
        report.sections.append(
            ("stack log: warnings, errors and 5xx", "\n".join(lines) or "(none)")
        )
