"""Cold start: from an empty data folder until every service answers through the gateway
(embedded Postgres initdb included), and the resident memory of each service process.
Targets: <= 8 s, <= 100 MB RSS per service."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import psutil

from storycore_devstack.stack import Stack, StackConfig
from storycore_testkit.infra.processes import free_port

RUNS = 2


def main() -> None:
    for run in range(1, RUNS + 1):
        folder = Path(tempfile.mkdtemp(prefix="storycore-cold-"))
        folder.chmod(0o755)
        began = time.perf_counter()
        stack = Stack(
            StackConfig(
                data_dir=folder / "stack",
                gateway_port=free_port(),
                gateway_host="127.0.0.1",
                environment="test",
                extra_env={"STORYCORE_LOG_LEVEL": "WARNING"},
            )
        )
        try:
            stack.start()
            took = time.perf_counter() - began
            print(
                f"run {run}: empty folder -> every service ready through the gateway in "
                f"{took:.2f} s"
            )
            time.sleep(2)  # let start-up garbage settle before reading memory
            processes = {r.name: r.process for reps in stack.replicas.values() for r in reps}
            processes |= {p.name: p for workers in stack.workers.values() for p in workers}
            for name, process in sorted(processes.items()):
                if process is None or process.pid is None:
                    continue
                rss = psutil.Process(process.pid).memory_info().rss / 2**20
                print(f"  {name:<22} RSS {rss:6.1f} MB")
        finally:
            stack.stop()
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
