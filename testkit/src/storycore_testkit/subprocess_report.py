"""Run a short Python program in a fresh interpreter and read the JSON report it prints last.

For what only a new process can show: which modules an import loads, what a process that never
imported something can still do::

    report = python_report("import json, sys; import x; print(json.dumps(sorted(sys.modules)))")
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from typing import Any


def python_report(program: str, *args: str, env: Mapping[str, str] | None = None) -> Any:
    """The JSON value on the program's last line of output; fails with its stderr if it fails."""
    answer = subprocess.run(
        [sys.executable, "-c", program, *args],
        env=None if env is None else dict(env),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert answer.returncode == 0, answer.stderr[-2000:]
    return json.loads(answer.stdout.strip().splitlines()[-1])
