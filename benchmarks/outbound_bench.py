"""Outbound clients: what a service pays to open an httpx client for one call to a sibling.

httpx's default client builds a TLS context of its own, reading certifi's bundle, even for a
plain-http URL; ``storycore_shared.outbound.client`` shares one context per process and reads the
bundle only at its first TLS handshake. For each kind, in a fresh process that has imported the
service kit:

- CPU milliseconds to open (and close) one client, the median of 5 rounds of 20;
- the RSS the process gained after opening 50 clients and making one plain-http GET with each
  (against a local server in the same process), over its RSS before the first.

    python3 storycore.py bench outbound_bench
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys

from harness import machine_speed_ms

PROGRAM = """
import asyncio, json, statistics, sys, time
import storycore_shared.app  # noqa: F401  (what a service has imported before its first call)
import httpx
from storycore_shared import outbound

KIND = sys.argv[1]
open_client = outbound.client if KIND == "outbound" else httpx.AsyncClient


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def main() -> dict[str, float]:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\\r\\n\\r\\n")
        writer.write(b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\nConnection: close\\r\\n\\r\\nok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    # Import httpcore, h11 and anyio's backend for both kinds, with a context that reads nothing.
    async with httpx.AsyncClient(verify=False) as warm:
        await warm.get(url)
    before = rss_mb()
    for _ in range(50):
        async with open_client(timeout=5) as client:
            assert (await client.get(url)).text == "ok"
    grown = rss_mb() - before
    rounds = []
    for _ in range(5):
        began = time.process_time()
        for _ in range(20):
            async with open_client(timeout=5):
                pass
        rounds.append((time.process_time() - began) / 20 * 1000)
    server.close()
    return {"cpu_ms": statistics.median(rounds), "rss_mb": grown}


print(json.dumps(asyncio.run(main())))
"""


def measure(kind: str) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM, kind], check=True, capture_output=True, text=True
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    print(f"Machine speed: sum(range(10**6)) takes {machine_speed_ms():.1f} ms of CPU.")
    print()
    print("| client | CPU ms to open one | RSS gained over 50 clients with one GET each |")
    print("|---|---|---|")
    for kind, label in (("httpx", "httpx.AsyncClient()"), ("outbound", "outbound.client()")):
        runs = [measure(kind) for _ in range(3)]
        cpu = statistics.median(run["cpu_ms"] for run in runs)
        rss = ", ".join(f"{run['rss_mb']:.1f}" for run in runs)
        print(f"| {label} | {cpu:.2f} | {rss} MB |")


if __name__ == "__main__":
    main()
