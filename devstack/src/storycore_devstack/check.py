"""The project's one check: format, lint, types, import boundaries, then the whole test suite."""

from __future__ import annotations

import json
import os
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

# Node packages the tests (and the gateway's docs page) use where node is installed, each
# folder's pinned in its package.json; installed without a lock file, node_modules is not
# committed: the Khronos glTF validator, Swagger UI's files for /api/docs, the TypeScript client.
NODE_TOOLS = REPO_ROOT / "testkit" / "node"
NODE_FOLDERS = [NODE_TOOLS, REPO_ROOT / "openapi", REPO_ROOT / "clients" / "typescript"]


def node_tools_current(folder: Path = NODE_TOOLS) -> bool:
    """Whether ``folder``/node_modules holds exactly the versions its package.json pins."""
    manifest = json.loads((folder / "package.json").read_text())
    wanted = {**manifest.get("dependencies", {}), **manifest.get("devDependencies", {})}
    for name, version in wanted.items():
        installed = folder / "node_modules" / name / "package.json"
        if not installed.is_file() or json.loads(installed.read_text()).get("version") != version:
            return False
    return True


def install_node_tools() -> int:
    """``npm install`` the pinned node packages when node is here and they are missing or stale."""
    npm = shutil.which("npm")
    if shutil.which("node") is None or npm is None:
        return 0
    for folder in NODE_FOLDERS:
        if not (folder / "package.json").is_file() or node_tools_current(folder):
            continue
        print(f"== npm install ({folder.relative_to(REPO_ROOT)})", flush=True)
        argv = [npm, "install", "--no-audit", "--no-fund", "--no-package-lock", "--ignore-scripts"]
        returncode = subprocess.run([*argv, "--prefix", "."], cwd=folder, check=False).returncode
        if returncode != 0:
            return returncode
    return 0


DebianTool = tuple[str, tuple[str, ...], str]
DEBIAN_TOOLS: tuple[DebianTool, ...] = (
    # (package, the commands it gives, what uses it)
    ("chromium", ("chromium", "chromium-browser", "google-chrome"), "the docs-page test"),
    ("pgbouncer", ("pgbouncer",), "the PgBouncer test (shared/tests/test_pgbouncer.py)"),
)
BENCH_TOOLS: tuple[DebianTool, ...] = (
    ("wrk", ("wrk",), "the load and gateway benchmarks' load generator"),
)


def install_debian_tools(tools: tuple[DebianTool, ...] = DEBIAN_TOOLS) -> None:
    """Tests drive headless Chromium and a real PgBouncer, benchmarks wrk: install Debian's when
    missing and we are root (what needs one says so, and skips, when there is still none)."""
    apt = shutil.which("apt-get")
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for package, commands, users in tools:
        if any(shutil.which(name) for name in commands):
            continue
        if apt is None or not root:
            print(f"== {package} is not installed (and cannot be here): {users} skips")
            continue
        print(f"== apt-get install {package} (for {users})", flush=True)
        install = [apt, "install", "-y", "-q", package]
        if subprocess.run(install, env=env, check=False).returncode:
            subprocess.run([apt, "update", "-q"], env=env, check=False)
            subprocess.run(install, env=env, check=False)


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
        print("== npm install failed", flush=True)
        return 1
    install_debian_tools()
    print("== pytest", flush=True)
    return subprocess.run(
        [sys.executable, "-m", "pytest", *pytest_args], cwd=REPO_ROOT, check=False
    ).returncode
