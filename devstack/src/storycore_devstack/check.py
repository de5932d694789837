"""The project's one check: format, lint, types, import boundaries, then the whole test suite."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from storycore_devstack.routes import REPO_ROOT

SERVICE_SOURCES = sorted(str(p.relative_to(REPO_ROOT)) for p in REPO_ROOT.glob("services/*/src"))
STEPS: list[tuple[str, list[str]]] = [
    ("ruff format", ["ruff", "format", "--check", "."]),
    ("ruff lint", ["ruff", "check", "."]),
    ("mypy", ["mypy", "shared/src", "testkit/src", *SERVICE_SOURCES, "devstack/src"]),
    ("import boundaries", ["lint-imports"]),
]


def run_checks(pytest_args: list[str]) -> int:
    bin_dir = Path(sys.executable).parent
    for title, argv in STEPS:
        began = time.monotonic()
        print(f"== {title}", flush=True)
        result = subprocess.run([str(bin_dir / argv[0]), *argv[1:]], cwd=REPO_ROOT, check=False)
        if result.returncode != 0:
            print(f"== {title} failed", flush=True)
            return result.returncode
        print(f"== {title} ok ({time.monotonic() - began:.1f}s)", flush=True)
    print("== pytest", flush=True)
    return subprocess.run(
        [sys.executable, "-m", "pytest", *pytest_args], cwd=REPO_ROOT, check=False
    ).returncode
