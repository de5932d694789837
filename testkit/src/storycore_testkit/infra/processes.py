"""Child processes whose output is copied, line by line and prefixed, to a sink."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

LogSink = Callable[[str, str], None]


EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
# Listening ports are drawn from here, below Linux's usual ephemeral range (32768-60999).
LISTEN_PORTS = range(20000, 32768)
_handed_out: set[int] = set()
_handed_out_lock = threading.Lock()


def _ephemeral() -> range:
    try:
        low, high = (int(part) for part in EPHEMERAL_RANGE.read_text().split())
    except (OSError, ValueError):
        return range(32768, 61000)
    return range(low, high + 1)


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now, for a server that binds it seconds later.

    It is outside the kernel's ephemeral range: a port from that range (what binding port 0
    gives) can meanwhile become the source port of an outgoing connection, and the server's
    bind then fails with "address already in use" (seen when a service's start-up raced the
    others' connections to Postgres and NATS). Ports are never handed out twice by one process;
    5432, 4222 and 8080 are outside the range.
    """
    ephemeral = _ephemeral()
    candidates = [p for p in LISTEN_PORTS if p not in ephemeral]
    with _handed_out_lock:
        for _ in range(200 if candidates else 0):
            port = random.choice(candidates)  # not a secret, only a spread
            if port not in _handed_out and _bindable(host, port):
                _handed_out.add(port)
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:  # a crowded range
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def wait_until(
    check: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.05
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise TimeoutError(f"{what} not ready after {timeout:.0f}s")


class ManagedProcess:
    """One child process. Its stdout and stderr go to ``sink(name, line)`` and a log file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        log_file: Path | None = None,
        sink: LogSink | None = None,
        user: int | None = None,
        group: int | None = None,
        stop_signal: int = signal.SIGTERM,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = env
        self.cwd = cwd
        self.log_file = log_file
        self.sink = sink
        self.user = user
        self.group = group
        self.stop_signal = stop_signal
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0  # time.monotonic() of the last start
        self._pump: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def returncode(self) -> int | None:
        """The exit code once it has exited (negative: killed by that signal), else None."""
        return self.proc.returncode if self.proc else None

    def running(self) -> bool:
        return self.proc is not None and self.poll() is None

    def poll(self) -> int | None:
        """None while the process runs; once it has exited, its exit code.

        Whatever it left behind in its process group (children it forked that outlived a
        SIGKILL) is killed first, so that a restart does not find its port still held. That
        happens before the exit is reaped: until then the pid, and so the group id, cannot be
        reused by another process.
        """
        if self.proc is None:
            return None
        if self.proc.returncode is not None:
            return self.proc.returncode
        if hasattr(os, "waitid"):
            try:
                exited = os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:  # reaped by another thread meanwhile
                exited = None
            if exited is not None and exited.si_pid == self.proc.pid:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
        return self.proc.poll()

    def start(self) -> ManagedProcess:
        kwargs: dict[str, object] = {}
        if self.user is not None:
            kwargs.update(user=self.user, group=self.group, extra_groups=[])
        self.proc = subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the supervisor only; it stops us in order
            **kwargs,  # type: ignore[call-overload]
        )
        self.started_at = time.monotonic()
        self._pump = threading.Thread(target=self._copy_output, daemon=True, name=self.name)
        self._pump.start()
        return self

    def _copy_output(self) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        log: IO[str] | None = None
        if self.log_file is not None:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            log = self.log_file.open("a", encoding="utf-8")
        try:
            for raw in self.proc.stdout:
                line = raw.decode("utf-8", errors="replace").rstrip("\n")
                if log is not None:
                    log.write(line + "\n")
                    log.flush()
                if self.sink is not None:
                    self.sink(self.name, line)
        finally:
            self.proc.stdout.close()
            if log is not None:
                log.close()

    def signal_stop(self) -> None:
        """Ask the process to stop, without waiting (see :meth:`stop`)."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, self.stop_signal)

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.signal_stop()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        if self._pump is not None:
            self._pump.join(timeout=2)

    def kill(self) -> None:
        """SIGKILL, no goodbye: for fault-injection tests."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
