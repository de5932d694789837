"""Shared pieces of the benchmark scripts: a throwaway stack, users, load, percentiles.

Load comes from an asyncio httpx client in this process, bounded by request count, on
loopback only. On a 2-core machine the client competes with the servers for CPU, so figures
are for comparison (the ratios), not absolute capacity.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from storycore_devstack.stack import Stack, StackConfig
from storycore_testkit.infra.processes import free_port

QUIET = {
    "STORYCORE_LOG_LEVEL": "WARNING",
    "LLM_RATE_LIMIT_PER_MINUTE": "1000000",
    "SEQUENCES_RATE_LIMIT_PER_MINUTE": "1000000",
}


@contextmanager
def stack(**config: object) -> Iterator[Stack]:
    folder = Path(tempfile.mkdtemp(prefix="storycore-bench-"))
    folder.chmod(0o755)
    extra = {**QUIET, **config.pop("extra_env", {})}  # type: ignore[dict-item]
    running = Stack(
        StackConfig(
            data_dir=folder / "stack",
            gateway_port=free_port(),
            gateway_host="127.0.0.1",
            durable=True,
            environment="test",
            extra_env=extra,
            **config,
        )
    )  # type: ignore[arg-type]
    try:
        running.start()
        yield running
    finally:
        running.stop()
        shutil.rmtree(folder, ignore_errors=True)


def machine_speed_ms(rounds: int = 5) -> float:
    """CPU milliseconds of one fixed piece of Python work (``sum(range(10**6))``), best of
    ``rounds``: how fast this machine is right now. On a shared virtual machine it moves by half
    or more within a day, and every CPU-per-request figure moves with it."""
    best = float("inf")
    for _ in range(rounds):
        began = time.process_time()
        sum(range(10**6))
        best = min(best, time.process_time() - began)
    return 1000 * best


# A child that echoes every byte it reads, one at a time (see round_trip_us).
_ECHO = "import os\nwhile chunk := os.read(0, 1):\n    os.write(1, chunk)\n"


def round_trip_us(count: int = 5000) -> float:
    """Microseconds per one-byte round trip through pipes to a child process and back: two
    system calls and two context switches each way, the price a request pays at every hop of
    the stack. On a virtual machine it moves with the host's load, which a pure computation
    such as :func:`machine_speed_ms` does not show."""
    with subprocess.Popen(
        [sys.executable, "-c", _ECHO], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    ) as child:
        assert child.stdin is not None
        assert child.stdout is not None
        send, receive = child.stdin.fileno(), child.stdout.fileno()
        os.write(send, b"x")  # the child has started once this comes back
        os.read(receive, 1)
        began = time.perf_counter()
        for _ in range(count):
            os.write(send, b"x")
            os.read(receive, 1)
        elapsed = time.perf_counter() - began
        child.stdin.close()
    return 1e6 * elapsed / count


def new_user(base_url: str) -> dict[str, str]:
    email = f"bench-{uuid.uuid4().hex[:10]}@example.com"
    with httpx.Client(base_url=base_url, timeout=30) as client:
        client.post(
            "/api/auth/register",
            json={"email": email, "password": "benchmark pw 1", "name": "Bench"},
        )
        pair = client.post(
            "/api/auth/login", json={"email": email, "password": "benchmark pw 1"}
        ).json()
    return {"Authorization": f"Bearer {pair['access_token']}"}


@dataclass
class Run:
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    bodies: list[object] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return len(self.latencies_ms) / self.seconds if self.seconds else 0.0

    def pct(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else 0.0

    def line(self) -> str:
        errors = {s: n for s, n in self.statuses.items() if s >= 400}
        return (
            f"{self.rps:8.1f} req/s  p50 {self.pct(50):6.2f} ms  p95 {self.pct(95):6.2f} ms"
            f"  p99 {self.pct(99):6.2f} ms  errors {errors or 0}"
        )


RequestFactory = Callable[[int], tuple[str, str, dict[str, object] | None]]


async def _load(
    base_url: str,
    headers: dict[str, str],
    make: RequestFactory,
    total: int,
    concurrency: int,
    keep_bodies: bool,
) -> Run:
    run = Run()
    counter = iter(range(total))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=base_url, headers=headers, timeout=60, limits=limits
    ) as client:

        async def lane() -> None:
            for i in counter:
                method, path, body = make(i)
                began = time.perf_counter()
                answer = await client.request(method, path, json=body)
                run.latencies_ms.append((time.perf_counter() - began) * 1000)
                run.statuses[answer.status_code] += 1
                if keep_bodies:
                    run.bodies.append(answer.json() if answer.content else None)

        began = time.perf_counter()
        await asyncio.gather(*(lane() for _ in range(concurrency)))
        run.seconds = time.perf_counter() - began
    return run


async def _load_aiohttp(
    base_url: str, headers: dict[str, str], make: RequestFactory, total: int, concurrency: int
) -> Run:
    """The same lanes on aiohttp, whose client spends a fraction of httpx's CPU per request."""
    import aiohttp

    run = Run()
    counter = iter(range(total))
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(
        base_url, headers=headers, connector=connector, timeout=timeout
    ) as client:

        async def lane() -> None:
            for i in counter:
                method, path, body = make(i)
                began = time.perf_counter()
                async with client.request(method, path, json=body) as answer:
                    await answer.read()
                run.latencies_ms.append((time.perf_counter() - began) * 1000)
                run.statuses[answer.status] += 1

        began = time.perf_counter()
        await asyncio.gather(*(lane() for _ in range(concurrency)))
        run.seconds = time.perf_counter() - began
    return run


def load(
    base_url: str,
    headers: dict[str, str],
    make: RequestFactory,
    *,
    total: int,
    concurrency: int,
    keep_bodies: bool = False,
    client: str = "httpx",
) -> Run:
    if client == "aiohttp":
        return asyncio.run(_load_aiohttp(base_url, headers, make, total, concurrency))
    return asyncio.run(_load(base_url, headers, make, total, concurrency, keep_bodies))


def interleaved(
    a: Callable[[], float], b: Callable[[], float], pairs: int = 3
) -> tuple[list[float], list[float], float]:
    """Run A, B, A, B, ...; return both series and the median of the per-pair ratios A/B."""
    xs, ys = [], []
    for _ in range(pairs):
        xs.append(a())
        ys.append(b())
    return xs, ys, statistics.median(x / y for x, y in zip(xs, ys, strict=True))


def fmt(values: list[float]) -> str:
    return ", ".join(f"{v:.1f}" for v in values)
