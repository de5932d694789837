"""CRUD load through the gateway, driven by wrk (the Debian package) with a Lua script
(`benchmarks/wrk/crud.lua`: bearer token, JSON bodies): create, get and update a project, and
add shots to one project, at c = 1, 32 and 128, for --seconds each (default 60).

Per run: req/s, p50, p99, the non-2xx answers and socket errors, and the CPU milliseconds per
request summed over every process of the stack (psutil over the process tree this script
started: every service and worker, Postgres and its backends, NATS, Traefik; not wrk), counted
from the start of the run until the outboxes are drained and every event consumer is idle, so
the consumers' work for each request is in it. Lost / duplicated: the id of every 201 must be
listed exactly once afterwards (and nothing listed that no 201 announced).

Then the Python client's figure (httpx, in this process, as the issue's table was measured) at
c=32 with its own CPU per request, the latency the gateway adds at c=1 (wrk, GET project,
through Traefik vs the replica directly), and RSS per process.

    python3 storycore.py bench load_bench                      # 60 s per route and level
    python3 storycore.py bench load_bench -- --seconds 10      # a shorter run
    python3 storycore.py bench load_bench -- --profile 15      # + py-spy's top functions
    python3 storycore.py bench load_bench -- --profile 15 --profile-services projects,locations
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import itertools
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import nats
import psutil
from harness import load, machine_speed_ms, new_user, round_trip_us, stack

from storycore_devstack.stack import Stack
from storycore_shared.db import asyncpg_dsn

LUA = Path(__file__).with_name("wrk") / "crud.lua"
ROUTES = ("create-project", "get-project", "update-project", "add-shot")
LEVELS = (1, 32, 128)
# The targets: CPU ms per request over all processes.
CPU_TARGETS = {"create-project": 3.0, "get-project": 1.5, "update-project": 3.0, "add-shot": 3.0}


@dataclass
class WrkRun:
    requests: int = 0
    seconds: float = 0.0
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    problems: collections.Counter[str] = field(default_factory=collections.Counter)
    errors: dict[str, int] = field(default_factory=dict)
    ids: list[str] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def non_2xx(self) -> int:
        return sum(n for status, n in self.statuses.items() if not 200 <= status < 300)

    @property
    def socket_errors(self) -> int:
        """Connect, read, write and timeout errors (wrk's ``status`` is the non-2xx count)."""
        return sum(n for kind, n in self.errors.items() if kind != "status")


def run_wrk(
    url: str, route: str, token: str, project: str, *, connections: int, seconds: float
) -> WrkRun:
    with tempfile.TemporaryDirectory() as folder:
        result = Path(folder) / "result.txt"
        subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{max(1, round(seconds))}s",
                "--timeout",
                "30s",
                "-s",
                str(LUA),
                url,
                "--",
                route,
                token,
                project,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            env={**os.environ, "STORYCORE_WRK_RESULT": str(result)},
        )
        run = WrkRun()
        for line in result.read_text().splitlines():
            key, *values = line.split()
            if key == "requests":
                run.requests = int(values[0])
            elif key == "duration_us":
                run.seconds = int(values[0]) / 1e6
            elif key == "errors":
                run.errors[values[0]] = int(values[1])
            elif key in ("p50_us", "p90_us", "p99_us"):
                setattr(run, f"{key[:3]}_ms", int(values[0]) / 1000)
            elif key == "status":
                run.statuses[int(values[0])] += int(values[1])
            elif key == "problem":
                run.problems[f"{values[0]} {values[1]}"] += int(values[2])
            elif key == "id":
                run.ids.append(values[0])
        return run


def stack_cpu(running: Stack, exclude: set[int]) -> collections.Counter[str]:
    """CPU seconds (user + system, reaped children included) of every process under this one
    except ``exclude`` (wrk, py-spy), by process: a service replica by its name, a Postgres
    backend by its role. A process that exits in the window is counted in its parent's
    reaped-children times, so the difference of two readings is the window's CPU."""
    names = {info["pid"]: name for name, info in running.supervision().items() if info.get("pid")}
    seconds: collections.Counter[str] = collections.Counter()
    for process in psutil.Process().children(recursive=True):
        if process.pid in exclude:
            continue
        try:
            times = process.cpu_times()
            name = names.get(process.pid) or _label(process)
        except psutil.Error:
            continue
        seconds[name] += times.user + times.system + times.children_user + times.children_system
    return seconds


def _label(process: psutil.Process) -> str:
    """``postgres: projects storycore 127.0.0.1(5001) idle`` -> ``postgres projects``."""
    title = " ".join(process.cmdline())
    if title.startswith("postgres: "):
        words = title.split()
        return f"postgres {words[1]}" if len(words) > 3 else f"postgres {words[1].rstrip(':')}"
    return process.name()


def stack_cpu_seconds(running: Stack, exclude: set[int]) -> float:
    return sum(stack_cpu(running, exclude).values())


async def _idle(running: Stack) -> bool:
    """Outboxes drained and every durable consumer with nothing pending or unacknowledged."""
    schemas = [s.name.replace("-", "_") for s in running.table.domain_services]
    conn = await asyncpg.connect(asyncpg_dsn(running.admin_url))
    try:
        pending = await conn.fetchval(
            "select "
            + " + ".join(
                f'(select count(*) from "{schema}".outbox where published_at is null)'
                for schema in schemas
            )
        )
    finally:
        await conn.close()
    if pending:
        return False
    nc = await nats.connect(running.nats_url)
    try:
        js = nc.jetstream()
        for stream in await js.streams_info():
            for consumer in await js.consumers_info(stream.config.name):
                if consumer.num_pending or consumer.num_ack_pending:
                    return False
    finally:
        await nc.close()
    return True


def wait_idle(running: Stack, within: float = 300.0) -> None:
    deadline = time.monotonic() + within
    quiet = 0
    while time.monotonic() < deadline:
        quiet = quiet + 1 if asyncio.run(_idle(running)) else 0
        if quiet >= 2:
            return
        time.sleep(0.1)
    raise RuntimeError("the event consumers did not become idle")


def listed_ids(base: str, headers: dict[str, str], path: str, key: str) -> list[str]:
    ids: list[str] = []
    with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
        for page in itertools.count(1):
            items = client.get(path, params={"page": page, "page_size": 100}).json()[key]
            ids += [item["id"] for item in items]
            if len(items) < 100:
                return ids
    return ids


def check_records(created: list[str], listed: list[str], connections: int) -> str:
    """Lost: a 201 whose record is not listed; duplicated: a record listed twice. Records
    listed without a 201 are the requests still in flight when wrk stopped (it does not wait
    for their answers): at most one per connection, more would be writes that failed but
    stayed."""
    lost = len(set(created) - set(listed))
    duplicated = len(listed) - len(set(listed))
    unannounced = len(set(listed) - set(created))
    flag = " **more than in flight**" if unannounced > connections else ""
    return f"{lost} / {duplicated} ({unannounced} in flight at the end{flag})"


def new_project(base: str, headers: dict[str, str]) -> str:
    """A project to load (retried: after an overload the service may need a moment)."""
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        for _ in range(60):
            answer = client.post("/api/projects", json={"name": "load target"})
            if answer.status_code == 201:
                return str(answer.json()["id"])
            time.sleep(0.5)
        answer.raise_for_status()
        raise RuntimeError(f"no project: {answer.status_code}")


@dataclass
class Profiler:
    """``py-spy record`` on some replicas during a run; the top functions by own time."""

    seconds: float
    services: tuple[str, ...] = ("projects", "shots")
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    folder: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="py-spy-")))

    def start(self, running: Stack, label: str) -> set[int]:
        spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        for service in self.services:
            process = running.replicas[service][0].process
            pid = process.pid if process is not None else None
            if pid is None:
                raise RuntimeError(f"{service} is not running")
            out = self.folder / f"{label}-{service}.txt"
            self.processes[service] = subprocess.Popen(
                [
                    spy,
                    "record",
                    "--pid",
                    str(pid),
                    "--duration",
                    str(int(self.seconds)),
                    "--rate",
                    "200",
                    "--format",
                    "raw",
                    "--nonblocking",
                    "--output",
                    str(out),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        return {p.pid for p in self.processes.values()}

    def report(self, label: str, top: int = 12) -> None:
        for service, process in self.processes.items():
            process.wait()
            out = self.folder / f"{label}-{service}.txt"
            if not out.exists():
                print(f"    py-spy {service}: no profile (is py-spy installed?)")
                continue
            own: collections.Counter[str] = collections.Counter()
            inclusive: collections.Counter[str] = collections.Counter()
            samples = 0
            for line in out.read_text().splitlines():
                stack_text, _, count = line.rpartition(" ")
                if not count.isdigit():  # a frame name py-spy wrapped onto its own line
                    continue
                frames = stack_text.split(";")
                n = int(count)
                samples += n
                own[_short(frames[-1])] += n
                for frame in {_short(f) for f in frames}:
                    inclusive[frame] += n
            print(f"    py-spy {service} ({samples} samples): top own time")
            for frame, n in own.most_common(top):
                print(f"      {100 * n / samples:5.1f}%  {frame}")
            print(f"    py-spy {service}: top inclusive time (our code and libraries)")
            shown = 0
            for frame, n in inclusive.most_common():
                if "asyncio" in frame or "<module>" in frame or "run (uvicorn" in frame:
                    continue
                print(f"      {100 * n / samples:5.1f}%  {frame}")
                shown += 1
                if shown == top:
                    break
        self.processes.clear()


def _short(frame: str) -> str:
    """``name (path/to/site-packages/pkg/mod.py:12)`` -> ``name (pkg/mod.py)``."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/src/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{name} ({path})"


def run_routes(running: Stack, args: argparse.Namespace, profiler: Profiler | None) -> None:
    base = running.gateway_url
    print(
        "| route | c | req/s | p50 ms | p99 ms | non-2xx | socket errors "
        "| CPU ms/req (all processes) | lost / duplicated |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for route in args.routes:
        for level in args.levels:
            headers = new_user(base)
            token = headers["Authorization"].removeprefix("Bearer ")
            project = new_project(base, headers) if route != "create-project" else ""
            wait_idle(running)
            exclude: set[int] = set()
            if profiler is not None and level == max(args.levels):
                exclude = profiler.start(running, f"{route}-c{level}")
            before = stack_cpu(running, exclude)
            run = run_wrk(base, route, token, project, connections=level, seconds=args.seconds)
            wait_idle(running)
            spent = stack_cpu(running, exclude)
            spent.subtract(before)
            cpu = sum(spent.values())
            records = ""
            if route == "create-project":
                records = check_records(
                    run.ids, listed_ids(base, headers, "/api/projects", "projects"), level
                )
            elif route == "add-shot":
                listed = listed_ids(base, headers, f"/api/projects/{project}/shots", "shots")
                records = check_records(run.ids, listed, level)
            per_request = 1000 * cpu / run.requests if run.requests else 0.0
            print(
                f"| {route} | {level} | {run.rps:.1f} | {run.p50_ms:.2f} | {run.p99_ms:.2f} "
                f"| {run.non_2xx} | {run.socket_errors or 0} | {per_request:.2f} "
                f"(target {CPU_TARGETS[route]}) | {records} |",
                flush=True,
            )
            if run.non_2xx:
                print(
                    f"|   statuses {dict(run.statuses)}, problems {dict(run.problems)} "
                    "| | | | | | | | |",
                    flush=True,
                )
            if args.breakdown and run.requests:
                top = ", ".join(
                    f"{name} {1000 * value / run.requests:.2f}"
                    for name, value in spent.most_common(8)
                )
                print(f"|   CPU ms/req by process: {top} | | | | | | | | |", flush=True)
            if profiler is not None and exclude:
                profiler.report(f"{route}-c{level}")


def python_client(running: Stack, requests: int) -> None:
    """The issue's way of measuring: a Python client at c=32, in this process; httpx, then
    aiohttp (whose own CPU per request is a fraction of httpx's, so it measures the stack more
    than itself)."""
    base = running.gateway_url
    headers = new_user(base)
    target = new_project(base, headers)
    makers = {
        "create-project": lambda i: ("POST", "/api/projects", {"name": f"py {i}"}),
        "get-project": lambda _: ("GET", f"/api/projects/{target}", None),
        "update-project": lambda i: ("PUT", f"/api/projects/{target}", {"name": f"py {i}"}),
        "add-shot": lambda i: (
            "POST",
            "/api/shots",
            {"project_id": target, "name": f"py {i}", "prompt": "a prompt"},
        ),
    }
    print("\nPython clients (asyncio, c=32, through the gateway, in this process):\n")
    print("| client | route | req/s | p50 ms | p99 ms | non-2xx | client CPU ms/req |")
    print("|---|---|---|---|---|---|---|")
    for client in ("httpx", "aiohttp"):
        for route, make in makers.items():
            wait_idle(running)
            before = resource.getrusage(resource.RUSAGE_SELF)
            run = load(base, headers, make, total=requests, concurrency=32, client=client)
            after = resource.getrusage(resource.RUSAGE_SELF)
            client_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            non_2xx = sum(n for status, n in run.statuses.items() if not 200 <= status < 300)
            print(
                f"| {client} | {route} | {run.rps:.1f} | {run.pct(50):.2f} | {run.pct(99):.2f} "
                f"| {non_2xx} | {1000 * client_cpu / requests:.2f} |",
                flush=True,
            )


def gateway_latency(running: Stack, seconds: float) -> None:
    """p50 at c=1 of GET project through Traefik and straight to the replica (interleaved)."""
    headers = new_user(running.gateway_url)
    token = headers["Authorization"].removeprefix("Bearer ")
    project = new_project(running.gateway_url, headers)
    direct = running.replicas["projects"][0].url
    via, straight = [], []
    for _ in range(2):
        via.append(
            run_wrk(
                running.gateway_url, "get-project", token, project, connections=1, seconds=seconds
            ).p50_ms
        )
        straight.append(
            run_wrk(direct, "get-project", token, project, connections=1, seconds=seconds).p50_ms
        )
    added = [v - s for v, s in zip(via, straight, strict=True)]
    print(
        f"\nGateway at c=1 (wrk, GET project, {seconds:.0f} s each, twice): p50 through Traefik "
        f"{', '.join(f'{v:.3f}' for v in via)} ms, direct {', '.join(f'{s:.3f}' for s in straight)}"
        f" ms; added {', '.join(f'{a:+.3f}' for a in added)} ms (target <= 0.3 ms)"
    )


def memory(running: Stack, when: str) -> None:
    rows = []
    for name, replicas in running.replicas.items():
        for replica in replicas:
            if replica.process is not None and replica.process.pid is not None:
                rss = psutil.Process(replica.process.pid).memory_info().rss / 2**20
                rows.append(f"{name} {rss:.1f} MB")
    for name, workers in running.workers.items():
        for worker in workers:
            if worker.pid is not None:
                rss = psutil.Process(worker.pid).memory_info().rss / 2**20
                rows.append(f"{name}-worker {rss:.1f} MB")
    print(f"\nRSS {when}: " + ", ".join(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="per route and level")
    parser.add_argument(
        "--levels", type=lambda v: tuple(int(x) for x in v.split(",")), default=LEVELS
    )
    parser.add_argument(
        "--routes", type=lambda v: tuple(v.split(",")), default=ROUTES, help=",".join(ROUTES)
    )
    parser.add_argument("--python-requests", type=int, default=3000, help="0: skip the client")
    parser.add_argument(
        "--breakdown", action="store_true", help="CPU per request of the busiest processes"
    )
    parser.add_argument(
        "--profile",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="py-spy the projects and shots replicas for this long at the highest level",
    )
    parser.add_argument(
        "--profile-services",
        type=lambda v: tuple(v.split(",")),
        default=("projects", "shots"),
        help="the services --profile records (their first replica)",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("load_bench needs wrk (Debian: apt-get install wrk)")
    profiler = Profiler(args.profile, args.profile_services) if args.profile else None
    with stack() as running:
        memory(running, "after start")
        print(
            f"wrk, 1 thread, {args.seconds:.0f} s per run, through the gateway; "
            f"{os.cpu_count()} CPUs\n"
        )
        wait_idle(running)
        before, began = stack_cpu_seconds(running, set()), time.monotonic()
        time.sleep(5)
        idle = (stack_cpu_seconds(running, set()) - before) / (time.monotonic() - began)
        print(f"The idle stack uses {1000 * idle:.0f} ms of CPU per second.")
        print(
            f"Machine speed: sum(range(10**6)) takes {machine_speed_ms():.1f} ms of CPU; a "
            f"one-byte round trip to another process takes {round_trip_us():.1f} µs.\n"
        )
        run_routes(running, args, profiler)
        if args.python_requests:
            python_client(running, args.python_requests)
        gateway_latency(running, min(args.seconds, 10.0))
        memory(running, "after the load")
        print(
            f"\nMachine speed at the end: {machine_speed_ms():.1f} ms, "
            f"round trip {round_trip_us():.1f} µs."
        )


if __name__ == "__main__":
    main()
