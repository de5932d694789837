"""The dev stack's promises: scaling behind Traefik, the token command for scripts, and
supervision (a process that dies comes back on its port; a deliberate stop does not)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from storycore_devstack.stack import Stack, StackConfig
from storycore_devstack.supervisor import Backoff, Supervisor
from storycore_testkit.infra.processes import ManagedProcess, free_port
from storycore_testkit.infra.servers import GO_MAXPROCS_SETTING, go_env
from storycore_testkit.polling import settle


def _served(replica_url: str) -> float:
    metrics = httpx.get(f"{replica_url}/metrics", timeout=5).text
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith("storycore_http_requests_total{") and 'route="/api/projects"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_scale_projects_to_two_replicas_behind_the_gateway(
    stack: Stack, infra_dir: Path, make_user: Any
):
    data_dir = infra_dir / "scaled"
    # Same database and roles as the main test stack, so reuse its role passwords and key.
    shutil.copytree(stack.secrets_dir, data_dir / "secrets")
    scaled = Stack(
        StackConfig(
            data_dir=data_dir,
            gateway_port=free_port(),
            gateway_host="127.0.0.1",
            database_url=stack.config.database_url,
            scale={"projects": 2},
            durable=False,
            environment="test",
        )
    )
    try:
        scaled.start()
        assert len(scaled.replicas["projects"]) == 2
        user = make_user()
        with httpx.Client(base_url=scaled.gateway_url, timeout=10) as client:
            for i in range(10):
                answer = client.post(
                    "/api/projects", json={"name": f"scaled {i}"}, headers=user.headers
                )
                assert answer.status_code == 201, answer.text
            listed = client.get("/api/projects", headers=user.headers).json()
        assert listed["total"] == 10
        served = [_served(r.url) for r in scaled.replicas["projects"]]
        assert all(count >= 3 for count in served), f"load was not shared: {served}"
    finally:
        scaled.stop()


def _token_command(stack: Stack, user: str) -> subprocess.CompletedProcess[str]:
    argv = [
        sys.executable,
        "-m",
        "storycore_devstack",
        "--data-dir",
        str(stack.data_dir),
        "token",
        "--user",
        user,
    ]
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)


def test_token_command_mints_a_token_the_services_accept(stack: Stack, api: httpx.Client):
    minted = _token_command(stack, str(uuid.uuid4()))
    assert minted.returncode == 0, minted.stderr
    token = minted.stdout.strip()
    assert re.fullmatch(r"[\w-]+\.[\w-]+\.[\w-]+", token)
    answer = api.get("/api/projects", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200
    assert answer.json()["total"] == 0
    bad = _token_command(stack, "not-a-uuid")
    assert bad.returncode != 0
    assert "UUID" in bad.stderr


# -- supervision ----------------------------------------------------------------------------


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_supervisor_backs_off_and_leaves_deliberate_stops_alone(tmp_path: Path):
    lines: list[str] = []
    argv = {"now": _python("import sys; sys.exit(3)")}

    def start() -> ManagedProcess:
        return ManagedProcess("toy", argv["now"], log_file=tmp_path / "toy.log").start()

    supervisor = Supervisor(
        log=lines.append, backoff=Backoff(initial=0.05, cap=0.2, reset_after=30), interval=0.02
    )
    supervisor.watch("toy", start, start())
    supervisor.start()
    try:
        settle(lambda: supervisor.snapshot()["toy"]["restarts"] >= 4, within=10, what="4 restarts")
        process = supervisor.hold("toy")  # a deliberate stop from here on
        assert process is not None
        process.stop()
        delays = [re.search(r"restarting in (\S+) s", line) for line in lines]
        assert [float(m[1]) for m in delays if m][:4] == [0.05, 0.1, 0.2, 0.2]
        assert lines[0] == "toy exited with 3; restarting in 0.05 s (restart 1)"
        held = supervisor.snapshot()["toy"]
        time.sleep(0.3)
        assert supervisor.snapshot()["toy"] == held
        assert held["state"] == "stopped"
        assert held["last_exit"] == 3

        argv["now"] = _python("import time; time.sleep(60)")
        running = supervisor.release("toy")  # started by hand: not a restart
        assert supervisor.snapshot()["toy"]["restarts"] == held["restarts"]
        assert running.pid is not None
        os.kill(running.pid, signal.SIGKILL)
        settle(
            lambda: supervisor.snapshot()["toy"]["restarts"] == held["restarts"] + 1,
            within=5,
            what="the crash seen",
        )
        # release() reset the backoff: this crash waits the initial delay again.
        assert lines[-1].startswith("toy exited with -9; restarting in 0.05 s")
        settle(
            lambda: supervisor.snapshot()["toy"]["state"] == "running", within=5, what="restarted"
        )
    finally:
        supervisor.stop()
    restarted = supervisor.snapshot()["toy"]
    last = supervisor.hold("toy")
    assert last is not None
    last.kill()  # after stop(): nothing restarts it
    time.sleep(0.3)
    assert supervisor.snapshot()["toy"]["restarts"] == restarted["restarts"]


def test_a_dead_process_leaves_nothing_behind_in_its_group():
    lines: list[str] = []
    leader = ManagedProcess(
        "leader",
        _python(
            "import subprocess, sys, time\n"
            "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
            "print(child.pid, flush=True)\n"
            "time.sleep(60)\n"
        ),
        sink=lambda _, line: lines.append(line),
    ).start()
    try:
        settle(lambda: bool(lines), within=10, what="the child's pid")
        child = psutil.Process(int(lines[0]))
        assert leader.pid is not None
        os.kill(leader.pid, signal.SIGKILL)  # the leader only, as `kill -9 <pid>` does
        settle(lambda: leader.poll() is not None, within=5, what="the leader's exit")
        assert leader.returncode == -signal.SIGKILL

        def child_gone() -> bool:
            try:
                return child.status() == psutil.STATUS_ZOMBIE
            except psutil.NoSuchProcess:
                return True

        settle(child_gone, within=5, what="the orphan killed with its group")
    finally:
        leader.kill()


def _restarts(stack: Stack, name: str) -> int:
    return int(stack.supervision()[name]["restarts"])


def _supervisor_log(stack: Stack) -> str:
    return (stack.log_dir / "supervisor.log").read_text()


def test_a_killed_service_is_restarted_on_its_port_and_back_behind_the_gateway(
    stack: Stack, api: httpx.Client, make_user: Any
):
    user = make_user()
    replica = stack.replicas["projects"][0]
    before = _restarts(stack, replica.name)
    killed, port = replica.process, replica.port
    assert killed is not None
    assert killed.pid is not None
    began = time.monotonic()
    os.kill(killed.pid, signal.SIGKILL)
    settle(
        lambda: _restarts(stack, replica.name) == before + 1,
        within=5,
        what="the supervisor saw the crash",
    )
    # The old process is reaped by now: a 200 can only come from the restarted one.
    settle(
        lambda: api.get("/api/projects", headers=user.headers).status_code == 200,
        within=10,
        what="projects back behind the gateway",
    )
    took = time.monotonic() - began
    assert took <= 10, f"projects was back after {took:.1f}s"
    assert replica.process is not killed
    assert replica.port == port  # Traefik's generated routes still point at it
    seen = stack.supervision()[replica.name]
    assert seen["state"] == "running"
    assert seen["last_exit"] == -signal.SIGKILL
    assert seen["pid"] == replica.process.pid != killed.pid
    line = f"{replica.name} exited with -9; restarting in 0.5 s (restart {before + 1})"
    assert line in _supervisor_log(stack)

    # `status` reads what the running stack wrote under its data folder.
    state = json.loads((stack.data_dir / "stack.json").read_text())
    assert state["processes"][replica.name]["restarts"] == before + 1
    shown = subprocess.run(
        [sys.executable, "-m", "storycore_devstack", "--data-dir", str(stack.data_dir), "status"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    row = next(r for r in shown.stdout.splitlines() if r.startswith(f"{replica.name} "))
    assert row.split()[2:] == ["running", str(before + 1), "-9"], shown.stdout


def _job_status(api: httpx.Client, user: Any, job_id: str) -> dict[str, Any]:
    return dict(api.get(f"/api/sequences/{job_id}/status", headers=user.headers).json())


def test_a_worker_killed_mid_job_is_restarted_and_the_job_completes(
    stack: Stack, api: httpx.Client, make_user: Any
):
    user = make_user()
    project = api.post("/api/projects", headers=user.headers, json={"name": "supervised"})
    assert project.status_code == 201, project.text
    answer = api.post(
        "/api/sequences/generate",
        headers=user.headers,
        json={
            "project_id": project.json()["id"],
            "prompt": "A lighthouse keeper sees a ship. The storm breaks. The lamp flares.",
            "shot_count": 12,
            "settings": {"image_backend": "comfyui"},
        },
    )
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["job_id"]
    settle(
        lambda: _job_status(api, user, job_id)["progress"] >= 32,
        within=30,
        what="the job is rendering",
    )
    name = "sequences-worker.1"
    before = _restarts(stack, name)
    killed = stack.workers["sequences"][0]
    assert killed.pid is not None
    os.kill(killed.pid, signal.SIGKILL)
    assert _job_status(api, user, job_id)["status"] == "processing"
    settle(
        lambda: (
            stack.supervision()[name] | {"pid": None}
            == {"pid": None, "state": "running", "restarts": before + 1, "last_exit": -9}
        ),
        within=5,
        what="the worker restarted",
    )
    assert stack.workers["sequences"][0] is not killed
    assert f"{name} exited with -9; restarting in" in _supervisor_log(stack)
    final: dict[str, Any] = {}

    def finished() -> bool:
        final.update(_job_status(api, user, job_id))
        return final["status"] in {"completed", "failed", "cancelled"}

    settle(finished, within=60, what="the job finished with no manual step")
    assert final["status"] == "completed", final
    assert len(final["result"]["shots"]) == 12


def test_bench_passes_the_arguments_after_a_double_dash_to_the_scripts(tmp_path: Path):
    benchmarks = tmp_path / "benchmarks"
    benchmarks.mkdir()
    (benchmarks / "echo_bench.py").write_text(
        "import pathlib, sys\n"
        "pathlib.Path(__file__).with_name('argv.json').write_text(__import__('json').dumps("
        "sys.argv[1:]))\n"
    )
    (benchmarks / "other_bench.py").write_text("raise SystemExit('must not run')\n")
    code = (
        "import sys; from pathlib import Path\n"
        "import storycore_devstack.cli as cli\n"
        f"cli.REPO_ROOT = Path({str(tmp_path)!r})\n"
        "cli.main(sys.argv[1:])\n"
    )
    subprocess.run(
        [sys.executable, "-c", code, "bench", "echo_bench", "--", "--seconds", "3"],
        check=True,
        timeout=60,
    )
    assert json.loads((benchmarks / "argv.json").read_text()) == ["--seconds", "3"]


def test_the_go_servers_run_go_code_on_one_thread_unless_told_otherwise(stack: Stack):
    assert stack.traefik is not None
    assert stack.traefik.pid is not None
    servers = {"traefik": stack.traefik.pid}
    if stack.nats is not None and stack.nats.process is not None:  # else: an external server
        servers["nats"] = stack.nats.process.pid
    wanted = go_env()["GOMAXPROCS"]  # "1", unless this run's environment says otherwise
    for name, pid in servers.items():
        assert pid is not None
        assert psutil.Process(pid).environ().get("GOMAXPROCS") == wanted, name

    assert go_env({})["GOMAXPROCS"] == "1"
    assert go_env({GO_MAXPROCS_SETTING: "4"})["GOMAXPROCS"] == "4"
    assert go_env({GO_MAXPROCS_SETTING: "4", "GOMAXPROCS": "2"})["GOMAXPROCS"] == "2"
    for wrong in ("0", "-1", "two", ""):
        with pytest.raises(ValueError, match=GO_MAXPROCS_SETTING):
            go_env({GO_MAXPROCS_SETTING: wrong})
