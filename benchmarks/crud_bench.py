"""CRUD workload at concurrency 1, 8 and 32, through the gateway: create project, get it,
create shots into one project, concurrent updates of one project, and list with 2,000
projects. Prints req/s, p50/p95/p99, errors by status, and lost or duplicated records (both
must be 0)."""

from __future__ import annotations

import itertools

import httpx
from harness import load, new_user, stack

LEVELS = (1, 8, 32)
PER_LEVEL = {1: 150, 8: 400, 32: 800}
LISTED_PROJECTS = 2000


def all_ids(base: str, headers: dict[str, str], path: str, key: str) -> list[str]:
    ids: list[str] = []
    with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
        for page in itertools.count(1):
            items = client.get(path, params={"page": page, "page_size": 100}).json()[key]
            ids += [i["id"] for i in items]
            if len(items) < 100:
                return ids
    return ids


def check(label: str, created: list[str], listed: list[str]) -> str:
    lost = len(set(created) - set(listed))
    duplicated = len(listed) - len(set(listed))
    return f"{label}: lost {lost}, duplicated {duplicated}"


def run_level(base: str, level: int) -> None:
    n = PER_LEVEL[level]
    headers = new_user(base)
    print(f"-- concurrency {level}")
    created = load(
        base,
        headers,
        lambda i: ("POST", "/api/projects", {"name": f"p{i}"}),
        total=n,
        concurrency=level,
        keep_bodies=True,
    )
    print(f"create project   {created.line()}")
    ids = [b["id"] for b in created.bodies if isinstance(b, dict) and "id" in b]
    got = load(
        base,
        headers,
        lambda i: ("GET", f"/api/projects/{ids[i % len(ids)]}", None),
        total=n,
        concurrency=level,
    )
    print(f"get project      {got.line()}")
    target = ids[0]
    shots = load(
        base,
        headers,
        lambda i: ("POST", "/api/shots", {"project_id": target, "name": f"s{i}", "prompt": "p"}),
        total=n,
        concurrency=level,
        keep_bodies=True,
    )
    print(f"create shot      {shots.line()}")
    shot_ids = [b["id"] for b in shots.bodies if isinstance(b, dict) and "id" in b]
    # Writers name versions 1..50 in turn: exactly one writer per version may win.
    racing = ids[1]
    updates = load(
        base,
        headers,
        lambda i: ("PUT", f"/api/projects/{racing}", {"name": f"u{i}", "version": 1 + i % 50}),
        total=n,
        concurrency=level,
    )
    with httpx.Client(base_url=base, headers=headers) as client:
        final = client.get(f"/api/projects/{racing}").json()["version"]
    wins = updates.statuses.get(200, 0)
    print(
        f"update (racing)  {updates.line()}; 200s {wins}, final version {final} "
        f"(lost updates {wins + 1 - final})"
    )
    print("  " + check("projects", ids, all_ids(base, headers, "/api/projects", "projects")))
    print(
        "  "
        + check("shots", shot_ids, all_ids(base, headers, f"/api/projects/{target}/shots", "shots"))
    )


def main() -> None:
    with stack() as running:
        base = running.gateway_url
        for level in LEVELS:
            run_level(base, level)
        headers = new_user(base)
        load(
            base,
            headers,
            lambda i: ("POST", "/api/projects", {"name": f"l{i}"}),
            total=LISTED_PROJECTS,
            concurrency=32,
        )
        for level in LEVELS:
            listed = load(
                base,
                headers,
                lambda _: ("GET", "/api/projects?page_size=20", None),
                total=PER_LEVEL[level],
                concurrency=level,
            )
            print(f"list (2,000 projects) c={level:<2} {listed.line()}")


if __name__ == "__main__":
    main()
