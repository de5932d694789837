"""Gateway cost: req/s through Traefik vs direct to the service, on a trivial route (the
JWKS, no database) and on GET /api/projects/{id}, at concurrency 32; and the latency Traefik
adds at concurrency 1. Ratios are medians of interleaved pairs (gateway, direct, ...).
Targets: ratio >= 0.80 (trivial), >= 0.95 (database), added p50 <= 0.3 ms."""

from __future__ import annotations

import httpx
from harness import fmt, interleaved, load, new_user, stack

REQUESTS = 3000
CONCURRENCY = 32


def main() -> None:
    with stack() as running:
        headers = new_user(running.gateway_url)
        with httpx.Client(base_url=running.gateway_url, headers=headers) as client:
            pid = client.post("/api/projects", json={"name": "bench"}).json()["id"]
        routes = {
            "trivial (JWKS)": ("auth", "/api/auth/.well-known/jwks.json"),
            "database (GET project)": ("projects", f"/api/projects/{pid}"),
        }
        for label, (service, path) in routes.items():
            direct_url = running.replicas[service][0].url

            def rps(base: str, path: str = path) -> float:
                run = load(
                    base,
                    headers,
                    lambda _: ("GET", path, None),
                    total=REQUESTS,
                    concurrency=CONCURRENCY,
                )
                assert set(run.statuses) == {200}, run.statuses
                return run.rps

            load(
                running.gateway_url,
                headers,
                lambda _, p=path: ("GET", p, None),
                total=300,
                concurrency=CONCURRENCY,
            )  # warm both paths
            via, direct, ratio = interleaved(
                lambda: rps(running.gateway_url), lambda d=direct_url: rps(d)
            )
            one_via = load(
                running.gateway_url,
                headers,
                lambda _, p=path: ("GET", p, None),
                total=400,
                concurrency=1,
            )
            one_direct = load(
                direct_url, headers, lambda _, p=path: ("GET", p, None), total=400, concurrency=1
            )
            print(
                f"{label}: c={CONCURRENCY} gateway [{fmt(via)}] req/s, direct "
                f"[{fmt(direct)}] req/s, ratio (median of pairs) {ratio:.2f}; c=1 p50 "
                f"gateway {one_via.pct(50):.2f} ms, direct {one_direct.pct(50):.2f} ms, "
                f"added {one_via.pct(50) - one_direct.pct(50):+.2f} ms"
            )


if __name__ == "__main__":
    main()
