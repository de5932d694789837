"""Restarts the dev stack's processes when they die, with exponential backoff.

A crash is any exit the stack did not ask for. A deliberate stop first *holds* the process, so
the supervisor leaves it alone until it is *released*::

    supervisor = Supervisor(log=print)
    supervisor.watch("projects.1", start=spawn_projects, process=spawn_projects())
    supervisor.start()                    # a thread polls every process
    process = supervisor.hold("projects.1"); process.stop()    # not restarted
    supervisor.release("projects.1")      # started again (not counted as a restart)
    supervisor.stop()                     # before stopping the processes themselves

``start`` callables start a fresh process on the same port and return it; they may block
until it is ready (embedded Postgres and NATS do), but services and workers only spawn.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from storycore_testkit.infra.processes import ManagedProcess


@dataclass(frozen=True)
class Backoff:
    """``initial`` seconds before the first restart, doubling up to ``cap`` while the process
    keeps dying; once it has stayed up ``reset_after`` seconds, the next crash starts over."""

    initial: float = 0.5
    cap: float = 10.0
    reset_after: float = 30.0

    def delay(self, failures: int) -> float:
        return float(min(self.cap, self.initial * 2 ** max(0, failures - 1)))


@dataclass
class Watched:
    name: str
    start: Callable[[], ManagedProcess]
    process: ManagedProcess | None
    restarts: int = 0
    failures: int = 0  # crashes in a row, each soon after its start: drives the backoff
    last_exit: int | None = None
    held: bool = False  # stopped on purpose: not restarted until released
    due: float | None = None  # time.monotonic() of a pending restart
    starting: bool = False

    def state(self) -> str:
        if self.held:
            return "stopped"
        if self.starting or self.due is not None:
            return "restarting"
        return "running" if self.process is not None and self.process.running() else "exited"

    def snapshot(self) -> dict[str, Any]:
        return {
            "pid": self.process.pid if self.process is not None else None,
            "state": self.state(),
            "restarts": self.restarts,
            "last_exit": self.last_exit,
        }


class Supervisor:
    def __init__(
        self,
        *,
        log: Callable[[str], None],
        on_change: Callable[[], None] | None = None,
        backoff: Backoff | None = None,
        interval: float = 0.1,
    ) -> None:
        self.backoff = backoff or Backoff()
        self._log = log
        self._on_change = on_change or (lambda: None)
        self._interval = interval
        self._watched: dict[str, Watched] = {}
        self._lock = threading.Condition()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(
        self, name: str, start: Callable[[], ManagedProcess], process: ManagedProcess
    ) -> None:
        with self._lock:
            self._watched[name] = Watched(name, start, process)

    def start(self) -> None:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, daemon=True, name="supervisor")
        self._thread.start()

    def stop(self) -> None:
        """No restart from now on; returns once a restart in progress has finished."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Per process: pid, state (running/restarting/stopped/exited), restarts, last_exit."""
        with self._lock:
            return {name: w.snapshot() for name, w in self._watched.items()}

    def hold(self, name: str) -> ManagedProcess | None:
        """Leave ``name`` alone (it is about to be stopped on purpose); returns its process."""
        with self._lock:
            watched = self._watched[name]
            self._lock.wait_for(lambda: not watched.starting)
            watched.held = True
            watched.due = None
            process = watched.process
        self._on_change()
        return process

    def release(self, name: str) -> ManagedProcess:
        """Supervise ``name`` again, starting it first unless it runs (not counted as a
        restart). Never a second process on the same port: a pending restart is dropped."""
        with self._lock:
            watched = self._watched[name]
            self._lock.wait_for(lambda: not watched.starting)
            watched.due = None
            current = watched.process
            if current is not None and current.poll() is None:
                watched.held = False
                return current
            if current is not None:
                watched.last_exit = current.returncode
            watched.starting = True
        process: ManagedProcess | None = None
        try:
            process = watched.start()
        finally:
            with self._lock:
                watched.starting = False
                if process is not None:
                    watched.process = process
                    watched.held = False
                    watched.failures = 0
                self._lock.notify_all()
            self._on_change()
        return process

    # -- the loop ----------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.wait(self._interval):
            self._tick()

    def _tick(self) -> None:
        now = time.monotonic()
        due: list[Watched] = []
        changed = False
        with self._lock:
            for watched in self._watched.values():
                if watched.held or watched.starting or watched.process is None:
                    continue
                if watched.due is None:
                    code = watched.process.poll()
                    if code is None:
                        continue
                    stayed_up = now - watched.process.started_at >= self.backoff.reset_after
                    watched.failures = 1 if stayed_up else watched.failures + 1
                    watched.last_exit = code
                    self._schedule(watched, now, f"exited with {code}")
                    changed = True
                elif now >= watched.due:
                    watched.due = None
                    watched.starting = True
                    due.append(watched)
        for watched in due:
            if self._stopping.is_set():
                self._unmark(watched)
                continue
            self._restart(watched)
            changed = True
        if changed:
            self._on_change()

    def _schedule(self, watched: Watched, now: float, why: str) -> None:
        watched.restarts += 1
        delay = self.backoff.delay(watched.failures)
        watched.due = now + delay
        self._log(f"{watched.name} {why}; restarting in {delay:g} s (restart {watched.restarts})")

    def _restart(self, watched: Watched) -> None:
        process: ManagedProcess | None = None
        error: Exception | None = None
        try:
            process = watched.start()
        except Exception as exc:  # a start that fails is one more crash: back off, try again
            error = exc
        with self._lock:
            watched.starting = False
            if process is not None:
                watched.process = process
                self._log(f"{watched.name} restarted (pid {process.pid})")
            else:
                watched.failures += 1
                self._schedule(watched, time.monotonic(), f"did not start ({error})")
            self._lock.notify_all()

    def _unmark(self, watched: Watched) -> None:
        with self._lock:
            watched.starting = False
            self._lock.notify_all()
