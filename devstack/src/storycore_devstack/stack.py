"""The whole suite as local processes: Postgres, NATS, every service, Traefik on one port.

Used by ``storycore up`` and by the suite-level test fixtures::

    stack = Stack(StackConfig(data_dir=Path(".storycore"), gateway_port=8080)).start()
    stack.gateway_url            # http://127.0.0.1:8080
    stack.stop_replica("projects"); stack.start_replica("projects")
    stack.supervision()["projects.1"]   # {"pid", "state", "restarts", "last_exit"}
    stack.stop()

Every process it starts is supervised (:mod:`storycore_devstack.supervisor`): one that dies
is started again on the same port, with backoff. ``stop_*`` and ``kill_nats`` are deliberate:
the process stays down until the matching ``start_*``; ``stop()`` restarts nothing.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import secrets
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg
import httpx
import yaml
from sqlalchemy.engine import make_url

from auth.keys import generate_private_key_pem
from storycore_devstack.nats_config import authorization_block
from storycore_devstack.routes import (
    GATEWAY_DIR,
    GATEWAY_IDLE_CONN_TIMEOUT,
    SERVICE_KEEP_ALIVE_SECONDS,
    RouteTable,
    ServiceEntry,
    connect_host,
    fallback_services,
    load_route_table,
    local_routes,
)
from storycore_devstack.supervisor import Backoff, Supervisor
from storycore_shared.db import asyncpg_dsn, provision_service_role
from storycore_shared.events.bus import BUS, PROVISIONER
from storycore_shared.events.provision import REPLICAS_SETTING, provision, replicas_setting
from storycore_shared.migrations import migrate
from storycore_testkit.infra.processes import LogSink, ManagedProcess, free_port, wait_until
from storycore_testkit.infra.servers import (
    EmbeddedNats,
    EmbeddedPostgres,
    NatsCluster,
    go_env,
    wheel_binary,
)

DATABASE_NAME = "storycore"
GATEWAY_RESPONSE_TIMEOUT = "90s"  # above the LLM providers' default 60 s


def env_prefix(service: str) -> str:
    return service.upper().replace("-", "_") + "_"


def _without_credentials(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    return f"{scheme}{sep}{rest.rpartition('@')[2]}" if sep else url


def role_url(admin_url: str, role: str, password: str) -> str:
    return (
        make_url(admin_url)
        .set(username=role, password=password)
        .render_as_string(hide_password=False)
    )


@dataclass
class StackConfig:
    data_dir: Path
    gateway_port: int = 8080
    gateway_host: str = "127.0.0.1"  # this machine only; "0.0.0.0" (or "") = every interface
    scale: dict[str, int] = field(default_factory=dict)
    database_url: str | None = None  # an existing server's admin URL instead of the embedded one
    nats_url: str | None = None
    # Embedded NATS servers: 1, or a JetStream cluster of 3 (or 5) whose streams and buckets
    # keep STORYCORE_NATS_REPLICAS copies (3 by default on a cluster).
    nats_cluster: int = 1
    sink: LogSink | None = None
    durable: bool = True
    environment: str = "development"
    extra_env: dict[str, str] = field(default_factory=dict)
    ready_timeout: float = 60.0
    supervise: bool = True  # restart processes that die
    restart_backoff: Backoff = field(default_factory=Backoff)


@dataclass
class Replica:
    service: ServiceEntry
    index: int
    port: int
    process: ManagedProcess | None = None

    @property
    def name(self) -> str:
        return f"{self.service.name}.{self.index}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class Stack:
    def __init__(self, config: StackConfig, table: RouteTable | None = None) -> None:
        self.config = config
        self.table = table or load_route_table()
        self.data_dir = config.data_dir.resolve()
        self.log_dir = self.data_dir / "logs"
        self.secrets_dir = self.data_dir / "secrets"
        self.postgres: EmbeddedPostgres | None = None
        self.nats: EmbeddedNats | None = None  # the first node; None: an external server
        self.nats_nodes: list[EmbeddedNats] = []
        self.admin_url = ""
        # The provisioner's URL (with its credentials): the bus's administrator, for
        # provisioning, operator commands and tests. Services get their own (nats_url_for).
        self.nats_url = ""
        self.nats_server_url = ""  # without credentials: safe to print and to write down
        self.nats_passwords: dict[str, str] = {}
        self.replicas: dict[str, list[Replica]] = {}
        self.traefik: ManagedProcess | None = None
        self.workers: dict[str, list[ManagedProcess]] = {}
        self._alive_files: dict[str, Path] = {}
        self.role_passwords: dict[str, str] = {}
        self.internal_token = ""
        self.media_signing_key = ""
        self.started_in: float = 0.0
        self.supervisor = Supervisor(
            log=self._supervisor_log, on_change=self._write_state, backoff=config.restart_backoff
        )
        self._state_lock = threading.Lock()
        self._running = False  # the state file exists only while the stack runs

    # -- public ------------------------------------------------------------------------------

    @property
    def gateway_url(self) -> str:
        return f"http://{connect_host(self.config.gateway_host)}:{self.config.gateway_port}"

    @property
    def signing_key_file(self) -> Path:
        return self.secrets_dir / "auth-signing-key.pem"

    def database_url(self, service: str) -> str:
        return role_url(self.admin_url, service.replace("-", "_"), self.role_passwords[service])

    def nats_url_for(self, user: str) -> str:
        """The NATS URL with the credentials of ``user``, an identity of the bus declaration.

        With an external server (``NATS_URL``) the operator provides them: ``<USER>_NATS_URL``
        (``SHOTS_NATS_URL``, ``SEQUENCES_WORKER_NATS_URL``) when set, else ``NATS_URL`` itself.
        """
        if self.nats is None:
            return os.environ.get(f"{env_prefix(user)}NATS_URL") or self.nats_url
        password = quote(self.nats_passwords[user], safe="")
        return ",".join(
            f"nats://{quote(user, safe='')}:{password}@{node.url.partition('://')[2]}"
            for node in self.nats_nodes
        )

    @property
    def nats_replicas(self) -> int:
        """Copies of each stream and bucket: STORYCORE_NATS_REPLICAS, else 3 on an embedded
        cluster of three or more nodes, else 1."""
        configured = self._bus_env.get(REPLICAS_SETTING)
        if configured:
            return replicas_setting(self._bus_env)
        return 3 if len(self.nats_nodes) >= 3 else 1

    @property
    def _bus_env(self) -> dict[str, str]:
        """What renames declared buckets (SEQUENCES_KEYFRAME_BUCKET), as the services see it."""
        return {**os.environ, **self.config.extra_env}

    def start(self) -> Stack:
        began = time.monotonic()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.prepare_secrets()
        self.start_infrastructure()
        asyncio.run(self.prepare_database())
        asyncio.run(self.provision_nats())
        for service in self.table.services.values():
            count = self.config.scale.get(service.name, 1)
            self.replicas[service.name] = [
                Replica(service, i + 1, free_port()) for i in range(count)
            ]
        self._write_gateway_config()
        self._supervised("traefik", self._start_traefik)
        for replicas in self.replicas.values():
            for replica in replicas:
                self._supervised(replica.name, partial(self._spawn, replica))
        for replicas in self.replicas.values():
            for replica in replicas:
                self._wait_ready(replica)
        for service in self.table.services.values():
            if service.worker:
                count = self.config.scale.get(f"{service.name}-worker", 1)
                self.workers[service.name] = []
                for index in range(1, count + 1):
                    self._supervised(
                        f"{service.name}-worker.{index}", partial(self._worker, service, index)
                    )
        for processes in self.workers.values():
            for process in processes:
                self._wait_worker(process)
        self._wait_gateway()
        self.started_in = time.monotonic() - began
        with self._state_lock:
            self._running = True
        self._write_state()
        if self.config.supervise:
            self.supervisor.start()
        return self

    def supervision(self) -> dict[str, dict[str, Any]]:
        """Per process: ``pid``, ``state``, ``restarts`` and ``last_exit`` (as ``status``)."""
        return self.supervisor.snapshot()

    def stop(self) -> None:
        with self._state_lock:
            self._running = False
        self.supervisor.stop()  # first: nothing that stops from here on is restarted
        processes = [p for workers in self.workers.values() for p in workers]
        processes += [r.process for reps in self.replicas.values() for r in reps if r.process]
        for process in processes:  # all at once: each takes a few seconds to drain
            process.signal_stop()
        for process in processes:
            process.stop()
        if self.traefik:
            self.traefik.stop()
        if self.nats:
            self.nats.stop()
        if self.postgres:
            self.postgres.stop()
        (self.data_dir / "stack.json").unlink(missing_ok=True)

    def stop_replica(self, service: str, index: int = 1, *, kill: bool = False) -> None:
        """Stop (or SIGKILL) a replica on purpose: it stays down until :meth:`start_replica`."""
        process = self.supervisor.hold(self.replicas[service][index - 1].name)
        if process:
            process.kill() if kill else process.stop()

    def start_replica(self, service: str, index: int = 1) -> None:
        """Start a replica stopped by :meth:`stop_replica` (if it is not running) and wait."""
        replica = self.replicas[service][index - 1]
        self.supervisor.release(replica.name)
        self._wait_ready(replica)

    def stop_worker(self, service: str, index: int = 1, *, kill: bool = False) -> None:
        process = self.supervisor.hold(f"{service}-worker.{index}")
        if process:
            process.kill() if kill else process.stop()

    def start_worker(self, service: str, index: int = 1) -> None:
        self._wait_worker(self.supervisor.release(f"{service}-worker.{index}"))

    def _supervised(self, name: str, start: Callable[[], ManagedProcess]) -> None:
        self.supervisor.watch(name, start, start())

    def _supervisor_log(self, line: str) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now().isoformat(sep=" ", timespec="seconds")
        with (self.log_dir / "supervisor.log").open("a", encoding="utf-8") as log:
            log.write(f"{stamp} {line}\n")
        if self.config.sink is not None:
            self.config.sink("supervisor", line)

    def _worker(self, service: ServiceEntry, index: int) -> ManagedProcess:
        assert service.worker is not None
        name = f"{service.name}-worker.{index}"
        # The worker touches this file while its fetch loop runs: readiness that does not
        # depend on the log level.
        alive = self.data_dir / "run" / f"{name}.alive"
        alive.parent.mkdir(parents=True, exist_ok=True)
        alive.unlink(missing_ok=True)
        self._alive_files[name] = alive
        env = {
            **self.service_env(service),
            f"{env_prefix(service.name)}WORKER_ALIVE_FILE": str(alive),
        }
        worker = f"{service.name}-worker"  # the workers' own, narrower NATS identity
        if worker in BUS and (
            self.nats is not None or f"{env_prefix(worker)}NATS_URL" in os.environ
        ):
            env[f"{env_prefix(service.name)}NATS_URL"] = self.nats_url_for(worker)
        process = ManagedProcess(
            name,
            [sys.executable, "-m", service.worker],
            env=env,
            log_file=self.log_dir / f"{name}.log",
            sink=self.config.sink,
        ).start()
        workers = self.workers.setdefault(service.name, [])
        if index <= len(workers):
            workers[index - 1] = process
        else:
            workers.append(process)
        return process

    def _wait_worker(self, process: ManagedProcess) -> None:
        alive = self._alive_files[process.name]

        def ready() -> bool:
            if not process.running():
                raise RuntimeError(f"{process.name} exited during start-up; see its log")
            return alive.exists()

        wait_until(ready, timeout=self.config.ready_timeout, what=process.name, interval=0.1)

    def _nats_process_name(self, node: int) -> str:
        return "nats" if len(self.nats_nodes) == 1 else f"nats-{node}"

    def kill_nats(self, node: int = 1) -> None:
        """SIGKILL an embedded NATS node (1-based) on purpose: it stays down until
        :meth:`start_nats`."""
        assert self.nats_nodes, "NATS is external"
        self.supervisor.hold(self._nats_process_name(node))
        self.nats_nodes[node - 1].kill()

    def start_nats(self, node: int = 1) -> None:
        assert self.nats_nodes, "NATS is external"
        self.supervisor.release(self._nats_process_name(node))

    def nats_meta_leader(self) -> int | None:
        """The node (1-based) that leads the JetStream cluster's metadata, asked of any live
        node's monitoring port; None while there is no leader (or no cluster)."""
        for node in self.nats_nodes:
            if node.cluster is None or not (node.process and node.process.running()):
                continue
            port = node.cluster.monitor_ports[node.server_name]
            try:
                jsz = httpx.get(f"http://127.0.0.1:{port}/jsz", timeout=2).json()
            except (httpx.HTTPError, ValueError):
                continue
            leader = (jsz.get("meta_cluster") or {}).get("leader")
            for index, candidate in enumerate(self.nats_nodes, start=1):
                if candidate.server_name == leader:
                    return index
        return None

    # -- pieces ------------------------------------------------------------------------------

    def prepare_secrets(self) -> None:
        self.secrets_dir.mkdir(parents=True, exist_ok=True)
        self.secrets_dir.chmod(0o700)
        if not self.signing_key_file.exists():
            self.signing_key_file.write_bytes(generate_private_key_pem())
            self.signing_key_file.chmod(0o600)
        roles_file = self.secrets_dir / "roles.json"
        known = json.loads(roles_file.read_text()) if roles_file.exists() else {}
        for name in self.table.services:
            known.setdefault(name, secrets.token_urlsafe(24))
        known.setdefault("internal-token", secrets.token_urlsafe(32))
        known.setdefault("media-signing-key", secrets.token_urlsafe(32))
        self.internal_token = known.pop("internal-token")
        self.media_signing_key = known.pop("media-signing-key")
        roles_file.write_text(
            json.dumps(
                {
                    **known,
                    "internal-token": self.internal_token,
                    "media-signing-key": self.media_signing_key,
                },
                indent=2,
            )
        )
        roles_file.chmod(0o600)
        self.role_passwords = known
        # One NATS user per identity of the bus declaration; delete the file to rotate them all.
        nats_file = self.secrets_dir / "nats.json"
        users = json.loads(nats_file.read_text()) if nats_file.exists() else {}
        for identity in BUS:
            users.setdefault(identity.user, secrets.token_urlsafe(24))
        nats_file.write_text(json.dumps(users, indent=2))
        nats_file.chmod(0o600)
        self.nats_passwords = users

    def start_infrastructure(self) -> None:
        sink = self.config.sink
        if self.config.database_url:
            self.admin_url = self.config.database_url
        else:
            self.postgres = EmbeddedPostgres(
                self.data_dir / "postgres",
                sink=sink,
                log_file=self.log_dir / "postgres.log",
                durable=self.config.durable,
            )
            self._supervised("postgres", self._start_postgres)
            self.admin_url = (
                make_url(self.postgres.admin_url)
                .set(database=DATABASE_NAME)
                .render_as_string(hide_password=False)
            )
        if self.config.nats_url:
            self.nats_url = self.config.nats_url
            self.nats_server_url = _without_credentials(self.config.nats_url)
        else:
            self.nats_nodes = self._nats_nodes(self.config.nats_cluster)
            for index, node in enumerate(self.nats_nodes, start=1):
                self._supervised(self._nats_process_name(index), partial(self._start_nats, node))
            self.nats = self.nats_nodes[0]
            self.nats_server_url = ",".join(node.url for node in self.nats_nodes)
            self.nats_url = self.nats_url_for(PROVISIONER)
            if self.nats_replicas > len(self.nats_nodes):
                raise ValueError(
                    f"{REPLICAS_SETTING}={self.nats_replicas} needs as many NATS nodes "
                    f"(--nats-cluster {self.nats_replicas})"
                )

    def _nats_nodes(self, count: int) -> list[EmbeddedNats]:
        """One node, or ``count`` nodes of one JetStream cluster (routes on 127.0.0.1)."""
        if count not in (1, 3, 5):
            raise ValueError(
                f"a NATS cluster has 1, 3 or 5 nodes (a majority decides), not {count}"
            )
        authorization = authorization_block(self.nats_passwords, self._bus_env)
        if count == 1:
            return [
                EmbeddedNats(
                    self.data_dir / "nats",
                    sink=self.config.sink,
                    log_file=self.log_dir / "nats.log",
                    authorization=authorization,
                )
            ]
        names = [f"storycore-{index}" for index in range(1, count + 1)]
        cluster = NatsCluster.of("storycore", names)
        return [
            EmbeddedNats(
                self.data_dir / f"nats-{index}",
                sink=self.config.sink,
                log_file=self.log_dir / f"nats-{index}.log",
                authorization=authorization,
                server_name=name,
                cluster=cluster,
            )
            for index, name in enumerate(names, start=1)
        ]

    # Both wait until ready, on the port they had; one that never gets ready is killed, so a
    # later attempt does not find the port taken.

    def _start_postgres(self) -> ManagedProcess:
        assert self.postgres is not None
        try:
            self.postgres.start()
        except BaseException:
            self.postgres.kill()
            raise
        assert self.postgres.process is not None
        return self.postgres.process

    def _start_nats(self, node: EmbeddedNats) -> ManagedProcess:
        try:
            node.start()
        except BaseException:
            node.kill()
            raise
        assert node.process is not None
        return node.process

    async def prepare_database(self) -> None:
        if self.postgres is not None:
            conn = await asyncpg.connect(asyncpg_dsn(self.postgres.admin_url))
            try:
                exists = await conn.fetchval(
                    "select 1 from pg_database where datname = $1", DATABASE_NAME
                )
                if not exists:
                    await conn.execute(f'create database "{DATABASE_NAME}"')
            finally:
                await conn.close()
        for service in self.table.domain_services:
            role = service.name.replace("-", "_")
            await provision_service_role(self.admin_url, role, self.role_passwords[service.name])
        await self.migrate_all()

    async def provision_nats(self) -> None:
        """Streams and buckets, as the provisioning identity, before any service starts. A new
        cluster answers only once it has elected its metadata leader: until then, try again."""
        env = {**self._bus_env, REPLICAS_SETTING: str(self.nats_replicas)}
        clustered = len(self.nats_nodes) > 1
        deadline = time.monotonic() + self.config.ready_timeout
        while True:
            try:
                await provision(self.nats_url, env=env)
                return
            except Exception as exc:
                if clustered and time.monotonic() < deadline:
                    await asyncio.sleep(0.5)
                    continue
                raise RuntimeError(
                    f"provisioning NATS at {self.nats_server_url} failed ({exc!r}); with "
                    "NATS_URL, it must carry credentials allowed to manage streams (README, "
                    "event bus)"
                ) from exc

    async def migrate_all(self) -> None:
        for service in self.table.domain_services:
            module = importlib.import_module(service.app.split(":")[0])
            role = service.name.replace("-", "_")
            await migrate(self.database_url(service.name), role, module.MIGRATIONS)

    def service_env(self, service: ServiceEntry) -> dict[str, str]:
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "STORYCORE_ENVIRONMENT": self.config.environment,
            # Each identity's own URL is set below; this one only serves an external NATS.
            "STORYCORE_NATS_URL": self.nats_url if self.nats is None else self.nats_server_url,
            "STORYCORE_JWKS_URL": f"{self.gateway_url}/api/auth/.well-known/jwks.json",
            "STORYCORE_PROJECTS_URL": self.gateway_url,
            # Media imported by reference is fetched through the gateway with the caller's token.
            "STORYCORE_SEQUENCES_URL": self.gateway_url,
            "STORYCORE_AUDIO_URL": self.gateway_url,
            "STORYCORE_INTERNAL_TOKEN": self.internal_token,
            # Signs the media URLs answers carry (storycore_shared.media).
            "STORYCORE_MEDIA_SIGNING_KEY": self.media_signing_key,
            # Internal routes are not behind the gateway: the llm replica itself.
            "STORYCORE_LLM_URL": self.replicas["llm"][0].url if "llm" in self.replicas else "",
            "AUTH_SIGNING_KEY_FILE": str(self.signing_key_file),
            **self.config.extra_env,
        }
        if service.is_fallback:
            addresses = {n: [r.url for r in reps] for n, reps in self.replicas.items()}
            env["STORYCORE_GATEWAY_SERVICES"] = fallback_services(self.table, addresses)
        else:
            env[f"{env_prefix(service.name)}DATABASE_URL"] = self.database_url(service.name)
        if service.name in BUS:  # its own NATS user (bus declaration)
            env[f"{env_prefix(service.name)}NATS_URL"] = self.nats_url_for(service.name)
        return env

    def _spawn(self, replica: Replica) -> ManagedProcess:
        argv = [
            sys.executable,
            "-m",
            "uvicorn",
            replica.service.app,
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(replica.port),
            "--no-access-log",
            "--no-server-header",
            # No service serves WebSockets; uvicorn would load a WebSocket library if one is
            # installed (the test tooling has one).
            "--ws",
            "none",
            "--timeout-graceful-shutdown",
            "5",
            "--timeout-keep-alive",
            str(SERVICE_KEEP_ALIVE_SECONDS),
        ]
        replica.process = ManagedProcess(
            replica.name,
            argv,
            env=self.service_env(replica.service),
            log_file=self.log_dir / f"{replica.name}.log",
            sink=self.config.sink,
        ).start()
        return replica.process

    def _wait_ready(self, replica: Replica) -> None:
        url = replica.url + replica.service.health_path

        def ready() -> bool:
            if replica.process is None or not replica.process.running():
                raise RuntimeError(
                    f"{replica.name} exited during start-up; see {self.log_dir / replica.name}.log"
                )
            try:
                return httpx.get(url, timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, timeout=self.config.ready_timeout, what=replica.name, interval=0.1)

    def _write_gateway_config(self) -> None:
        gateway_dir = self.data_dir / "gateway"
        dynamic_dir = gateway_dir / "dynamic"
        dynamic_dir.mkdir(parents=True, exist_ok=True)
        (dynamic_dir / "dynamic.yml").write_text((GATEWAY_DIR / "dynamic.yml").read_text())
        addresses = {name: [r.url for r in reps] for name, reps in self.replicas.items()}
        (dynamic_dir / "routes.yml").write_text(
            yaml.safe_dump(local_routes(self.table, addresses), sort_keys=False)
        )
        static: dict[str, Any] = {
            "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
            "entryPoints": {
                self.table.entrypoint: {
                    "address": f"{self.config.gateway_host}:{self.config.gateway_port}"
                }
            },
            "providers": {"file": {"directory": str(dynamic_dir), "watch": True}},
            "ping": {"entryPoint": self.table.entrypoint},
            # Traefik waits forever for a backend's headers unless told otherwise.
            "serversTransport": {
                "forwardingTimeouts": {
                    "dialTimeout": "5s",
                    "responseHeaderTimeout": GATEWAY_RESPONSE_TIMEOUT,
                    "idleConnTimeout": GATEWAY_IDLE_CONN_TIMEOUT,
                }
            },
            "log": {"level": "ERROR"},
        }
        (gateway_dir / "traefik.yml").write_text(yaml.safe_dump(static, sort_keys=False))

    def _start_traefik(self) -> ManagedProcess:
        config = self.data_dir / "gateway" / "traefik.yml"
        self.traefik = ManagedProcess(
            "traefik",
            [str(wheel_binary("traefik")), f"--configFile={config}"],
            env=go_env({**os.environ, **self.config.extra_env}),
            cwd=self.data_dir / "gateway",
            log_file=self.log_dir / "traefik.log",
            sink=self.config.sink,
        ).start()
        return self.traefik

    def _wait_gateway(self) -> None:
        url = f"{self.gateway_url}/api/auth/.well-known/jwks.json"

        def ready() -> bool:
            if self.traefik is None or not self.traefik.running():
                raise RuntimeError(f"traefik exited; see {self.log_dir / 'traefik.log'}")
            try:
                return httpx.get(url, timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, timeout=self.config.ready_timeout, what="gateway", interval=0.05)

    def _write_state(self) -> None:
        """``stack.json``, read by ``status`` and ``down``; rewritten on every restart."""
        with self._state_lock:
            if not self._running:
                return
            state = {
                "pid": os.getpid(),
                "gateway": self.gateway_url,
                "nats_url": self.nats_server_url,  # credentials: secrets/nats.json
                "services": {
                    n: [r.url + r.service.health_path for r in reps]
                    for n, reps in self.replicas.items()
                },
                "processes": self.supervisor.snapshot(),
                "supervised": self.config.supervise,
                "started_in_seconds": round(self.started_in, 2),
            }
            path = self.data_dir / "stack.json"
            partial_path = path.with_name("stack.json.partial")
            partial_path.write_text(json.dumps(state, indent=2))
            partial_path.replace(path)  # a reader never sees half a file
