#!/usr/bin/env python3
"""StoryCore entry point: creates the project's virtualenv on first use, then runs the CLI.

    python3 storycore.py up        # the whole suite on http://localhost:8080/api
    python3 storycore.py test      # lint, types, import boundaries and every test

Only the standard library is used here, so a machine with nothing but python3 can run it.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
# shared and the testkit first, then every service found under services/, then the dev stack.
PACKAGES = [
    "shared[dev]",
    "testkit",
    *sorted(str(p.parent.relative_to(ROOT)) for p in ROOT.glob("services/*/pyproject.toml")),
    "devstack",
]


def _venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _fingerprint() -> str:
    digest = hashlib.sha256()
    for path in [ROOT / "constraints.txt", *sorted(ROOT.glob("**/pyproject.toml"))]:
        if ".venv" in path.parts:
            continue
        digest.update(str(path.relative_to(ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def ensure_environment() -> Path:
    """Create .venv and install the pinned packages when they are missing or out of date."""
    python = _venv_python()
    if not python.exists():
        print("storycore: creating .venv", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    stamp = VENV / ".storycore-installed"
    wanted = _fingerprint()
    if stamp.exists() and stamp.read_text() == wanted:
        return python
    print(
        "storycore: installing pinned dependencies into .venv (first run only; a few minutes)",
        flush=True,
    )
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    editable = [arg for pkg in PACKAGES for arg in ("-e", str(ROOT / pkg))]
    env = {**os.environ, "PIP_CONSTRAINT": str(ROOT / "constraints.txt")}
    subprocess.run([*pip, *editable], check=True, env=env)
    stamp.write_text(wanted)
    return python


def main() -> None:
    python = ensure_environment()
    argv = [str(python), "-m", "storycore_devstack", *sys.argv[1:]]
    if os.name == "nt":  # pragma: no cover - execv semantics differ on Windows
        sys.exit(subprocess.call(argv))
    os.execv(argv[0], argv)


if __name__ == "__main__":
    main()
