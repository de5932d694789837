"""The project's one check: format, lint, types, import boundaries, then the whole test suite."""

from __future__ import annotations

import json
import shutil
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

# Node tools the tests run where node is installed (the Khronos glTF validator), pinned in
# testkit/node/package.json; installed without a lock file, node_modules is not committed.
NODE_TOOLS = REPO_ROOT / "testkit" / "node"


def node_tools_current() -> bool:
    """Whether testkit/node/node_modules holds exactly the versions package.json pins."""
    wanted = json.loads((NODE_TOOLS / "package.json").read_text()).get("dependencies", {})
    for name, version in wanted.items():
        installed = NODE_TOOLS / "node_modules" / name / "package.json"
        if not installed.is_file() or json.loads(installed.read_text()).get("version") != version:
            return False
    return True


def install_node_tools() -> int:
    """``npm install`` the pinned node tools when node is here and they are missing or stale."""
    npm = shutil.which("npm")
    if shutil.which("node") is None or npm is None or node_tools_current():
        return 0
    print("== npm install (testkit/node)", flush=True)
    argv = [npm, "install", "--no-audit", "--no-fund", "--no-package-lock", "--prefix", "."]
    return subprocess.run(argv, cwd=NODE_TOOLS, check=False).returncode


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
    if install_node_tools() != 0:
        print("== npm install (testkit/node) failed", flush=True)
        return 1
    print("== pytest", flush=True)
    return subprocess.run(
        [sys.executable, "-m", "pytest", *pytest_args], cwd=REPO_ROOT, check=False
    ).returncode
