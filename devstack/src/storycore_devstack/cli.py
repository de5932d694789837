"""``python3 storycore.py <command>``: the dev stack's command line.

up [--scale projects=2] [--port 8080] [--host 127.0.0.1]
                                        start everything; Ctrl-C stops it. The gateway
                                        listens on this machine only unless --host says
                                        otherwise (--host 0.0.0.0: every interface)
down                                    stop a stack started elsewhere
status                                  what runs, is it ready, how often it restarted
token --user <uuid>                     a valid access token, for scripts
migrate                                 run every service's migrations
republish --service S --since T [--until T]
provision-nats                          create the bus's streams and buckets (NATS_URL: as whom)
nats-config                             print deploy/nats/nats.conf, made from the bus declaration
openapi [--check]                       write openapi/storycore.json, the suite's merged OpenAPI
                                        (--check: fail when the committed file is stale)
errors-doc [--check]                    write docs/errors.md, the error-code catalogue made from
                                        the code (--check: fail when the committed file is stale)
kubernetes [--check]                    write deploy/kubernetes/ (base, overlays, NATS values)
                                        from the route table, compose and the bus declaration
kubernetes-secrets [--out DIR] [--postgres HOST:PORT] [--postgres-direct HOST:PORT]
                                        print the storycore-secrets env file, random values
                                        (--out: write it and the auth signing key into DIR)
test [pytest args]                      lint, types, import boundaries, then every test
bench [name ...] [-- script args]       the benchmarks under benchmarks/, printing figures
film story.txt [--out film.mp4] [--url U] [--token T | --email E --password P] [--open]
                                        story -> film through the running suite: a project, a
                                        production followed live, the film downloaded (without
                                        credentials, on this machine: a local demo user)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import ipaddress
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx

from storycore_devstack.routes import REPO_ROOT, load_route_table
from storycore_devstack.stack import Stack, StackConfig
from storycore_testkit.infra.processes import LogSink

DEFAULT_DATA_DIR = REPO_ROOT / ".storycore"
# How long `down` waits for the stack to stop.
DOWN_WAIT_SECONDS = 120.0
_print_lock = threading.Lock()


def _prefixed_sink(width: int) -> LogSink:
    def sink(name: str, line: str) -> None:
        with _print_lock:
            print(f"{name:<{width}} | {line}", flush=True)

    return sink


def _parse_scale(values: list[str]) -> dict[str, int]:
    scale: dict[str, int] = {}
    table = load_route_table().services
    names = set(table) | {f"{n}-worker" for n, s in table.items() if s.worker}
    for value in values:
        name, _, count = value.partition("=")
        if name not in names or not count.isdigit() or int(count) < 1:
            raise SystemExit(f"--scale takes NAME=N with NAME in {sorted(names)}")
        scale[name] = int(count)
    return scale


def _listen_host(value: str) -> str:
    """An address for Traefik's entrypoint: an IPv6 literal goes in brackets."""
    value = value.strip()
    try:
        address = ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        if not value or any(c in value for c in " /:@"):
            raise argparse.ArgumentTypeError(f"not a host name or IP address: {value!r}") from None
        return value
    return f"[{address}]" if address.version == 6 else str(address)


def _config_from(args: argparse.Namespace, **extra: object) -> StackConfig:
    return StackConfig(
        data_dir=Path(args.data_dir),
        database_url=os.environ.get("DATABASE_URL"),
        nats_url=os.environ.get("NATS_URL"),
        **extra,  # type: ignore[arg-type]
    )


def cmd_up(args: argparse.Namespace) -> int:
    config = _config_from(
        args,
        gateway_port=args.port,
        gateway_host=args.host,
        scale=_parse_scale(args.scale),
        nats_cluster=args.nats_cluster,
        sink=_prefixed_sink(18),
    )
    stack = Stack(config)
    stopping = threading.Event()

    def request_stop(*_: object) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        stack.start()
    except BaseException:
        stack.stop()
        raise
    base = stack.gateway_url
    print(f"\nStoryCore is up in {stack.started_in:.1f}s. Ctrl-C stops everything.")
    print(f"  API gateway      {base}/api")
    for entry in stack.table.domain_services:
        print(
            f"  {entry.name:<16} {base}/api/{entry.name}/docs   "
            f"(replicas: {', '.join(r.url for r in stack.replicas[entry.name])})"
        )
    print(f"  NATS             {stack.nats_server_url}   (users: {stack.secrets_dir}/nats.json)")
    print(f"  data folder      {stack.data_dir}")
    print("A process that dies is restarted (`status` counts restarts).\n", flush=True)
    while not stopping.wait(0.5):
        pass  # the supervisor thread restarts what dies
    print("\nstorycore: stopping", flush=True)
    stack.stop()
    print("storycore: stopped", flush=True)
    return 0


def _state(args: argparse.Namespace) -> dict[str, object] | None:
    path = Path(args.data_dir) / "stack.json"
    return json.loads(path.read_text()) if path.exists() else None


def cmd_down(args: argparse.Namespace) -> int:
    state = _state(args)
    if state is None:
        print("storycore: no stack is running from this data folder")
        return 0
    pid = int(str(state["pid"]))
    os.kill(pid, signal.SIGTERM)
    print(f"storycore: asked the stack (pid {pid}) to stop")
    # Until every process has exited (Postgres last): an `up` right after must find the data
    # folder free, not a server still shutting down.
    deadline = time.monotonic() + DOWN_WAIT_SECONDS
    while _alive(pid):
        if time.monotonic() > deadline:
            print(f"storycore: the stack is still stopping after {DOWN_WAIT_SECONDS:.0f} s")
            return 1
        time.sleep(0.2)
    print("storycore: stopped")
    return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # An exited process its parent has not reaped yet is gone too.
    with contextlib.suppress(OSError, IndexError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def cmd_status(args: argparse.Namespace) -> int:
    state = _state(args)
    if state is None:
        print("storycore: not running")
        return 1
    if not _alive(int(str(state["pid"]))):
        print(f"storycore: the stack (pid {state['pid']}) is gone; its state file is stale")
        return 1
    healthy = True
    services = state["services"]
    assert isinstance(services, dict)
    for name, urls in services.items():
        for url in urls:
            try:
                answer = httpx.get(url, timeout=2)
                status = answer.json().get("status", answer.status_code)
            except (httpx.HTTPError, ValueError):
                status = "down"
            healthy &= status in ("ok", "degraded")
            print(f"{name:<18} {url:<28} {status}")
    print(f"gateway            {state['gateway']}")
    processes = state.get("processes", {})
    assert isinstance(processes, dict)
    if processes:
        print(f"\n{'process':<22} {'pid':>8}  {'state':<11} {'restarts':>8}  last exit")
    for name, process in processes.items():
        last = process["last_exit"]
        print(
            f"{name:<22} {process['pid'] or '-':>8}  {process['state']:<11} "
            f"{process['restarts']:>8}  {'-' if last is None else last}"
        )
        healthy &= process["state"] == "running"
    return 0 if healthy else 1


def cmd_token(args: argparse.Namespace) -> int:
    from auth.config import Settings
    from auth.keys import KeyRing

    key_file = Path(args.data_dir) / "secrets" / "auth-signing-key.pem"
    if not key_file.exists():
        raise SystemExit("no signing key yet: run `python3 storycore.py up` once")
    defaults = Settings.model_fields
    keyring = KeyRing.from_pem(key_file.read_bytes())
    print(
        keyring.mint_access_token(
            user_id=uuid.UUID(args.user),
            issuer=os.environ.get("STORYCORE_JWT_ISSUER", str(defaults["JWT_ISSUER"].default)),
            audience=os.environ.get(
                "STORYCORE_JWT_AUDIENCE", str(defaults["JWT_AUDIENCE"].default)
            ),
            ttl_seconds=args.ttl,
        )
    )
    return 0


@contextlib.contextmanager
def _infrastructure(args: argparse.Namespace) -> Iterator[Stack]:
    """Postgres and NATS only (embedded or external), for one-off commands."""
    stack = Stack(_config_from(args))
    stack.prepare_secrets()
    stack.start_infrastructure()
    try:
        yield stack
    finally:
        stack.stop()


def cmd_migrate(args: argparse.Namespace) -> int:
    with _infrastructure(args) as stack:
        asyncio.run(stack.prepare_database())
    print("storycore: migrations are at head")
    return 0


def cmd_republish(args: argparse.Namespace) -> int:
    from storycore_shared.events.relay import republish

    with _infrastructure(args) as stack:
        module = importlib.import_module(f"{args.service}.models")
        count = asyncio.run(
            republish(
                database_url=stack.database_url(args.service),
                tables=module.event_tables,
                nats_url=stack.nats_url_for(args.service),  # the service's own identity
                since=args.since,
                until=args.until,
            )
        )
    print(f"storycore: re-published {count} events from {args.service}")
    return 0


def cmd_provision_nats(args: argparse.Namespace) -> int:
    with _infrastructure(args) as stack:
        asyncio.run(stack.provision_nats())
    print("storycore: the bus's streams and buckets are provisioned")
    return 0


def cmd_nats_config(_: argparse.Namespace) -> int:
    from storycore_devstack.nats_config import compose_config

    print(compose_config(), end="")
    return 0


def cmd_openapi(args: argparse.Namespace) -> int:
    from storycore_devstack.openapi import SPEC_PATH, build_spec, render, write_spec

    if args.check:
        current = SPEC_PATH.read_text() if SPEC_PATH.exists() else ""
        if current != render(build_spec()):
            print("storycore: openapi/storycore.json is stale: run `python3 storycore.py openapi`")
            return 1
        print("storycore: openapi/storycore.json is current")
        return 0
    path = write_spec()
    print(f"storycore: wrote {path.relative_to(REPO_ROOT)}")
    # The TypeScript client's types follow (when its npm packages are installed).
    client = REPO_ROOT / "clients" / "typescript"
    generator = client / "node_modules" / ".bin" / "openapi-typescript"
    if generator.exists():
        script = json.loads((client / "package.json").read_text())["scripts"]["generate"]
        argv = [str(generator), *script.split()[1:]]  # the flags live in package.json
        if subprocess.run(argv, cwd=client, check=False, capture_output=True).returncode != 0:
            print("storycore: regenerating clients/typescript/src/schema.d.ts failed")
            return 1
        print("storycore: wrote clients/typescript/src/schema.d.ts")
    else:
        print("storycore: clients/typescript has no node_modules: its types were not regenerated")
    return 0


def cmd_errors_doc(args: argparse.Namespace) -> int:
    from storycore_devstack.errors_doc import ERRORS_DOC, render, write

    if args.check:
        if not ERRORS_DOC.exists() or ERRORS_DOC.read_text() != render():
            print("storycore: docs/errors.md is stale: run `python3 storycore.py errors-doc`")
            return 1
        print("storycore: docs/errors.md is current")
        return 0
    print(f"storycore: wrote {write().relative_to(REPO_ROOT)}")
    return 0


def cmd_kubernetes(args: argparse.Namespace) -> int:
    from storycore_devstack.kubernetes import KUBE_DIR, rendered, write

    folder = KUBE_DIR.relative_to(REPO_ROOT)
    if args.check:
        stale = [p for p, text in rendered().items() if not p.exists() or p.read_text() != text]
        if stale:
            print(f"storycore: {folder} is stale: run `python3 storycore.py kubernetes`")
            return 1
        print(f"storycore: {folder} is current")
        return 0
    print(f"storycore: wrote {len(write())} files under {folder}")
    return 0


def cmd_kubernetes_secrets(args: argparse.Namespace) -> int:
    from storycore_devstack.kubernetes import secrets_env, write_secrets

    if args.out is None:
        print(secrets_env(postgres=args.postgres, postgres_direct=args.postgres_direct), end="")
        return 0
    try:
        written = write_secrets(
            Path(args.out), postgres=args.postgres, postgres_direct=args.postgres_direct
        )
    except FileExistsError as exc:
        print(f"storycore: not replacing {exc} (Postgres and NATS keep the first passwords)")
        return 1
    print(f"storycore: wrote {', '.join(str(p) for p in written)} (keep them out of git)")
    return 0


def cmd_test(args: argparse.Namespace) -> int:
    from storycore_devstack.check import run_checks

    return run_checks(args.pytest_args)


def cmd_bench(args: argparse.Namespace) -> int:
    from storycore_devstack.check import BENCH_TOOLS, install_debian_tools

    install_debian_tools(BENCH_TOOLS)
    scripts = sorted((REPO_ROOT / "benchmarks").glob("*_bench.py"))
    chosen = [s for s in scripts if not args.names or s.stem in args.names]
    failed = 0
    for script in chosen:
        print(f"== {script.stem}", flush=True)
        argv = [sys.executable, str(script), *getattr(args, "script_args", [])]
        failed |= subprocess.run(argv, check=False).returncode
    return failed


def cmd_film(args: argparse.Namespace) -> int:
    from storycore_devstack.film import run  # rich and the rest load for this command only

    return run(args)


def _add_film(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    film = sub.add_parser("film", help="turn a story file into a film (through the running suite)")
    film.add_argument("story", help="the story, a UTF-8 text file (-: standard input)")
    film.add_argument("--out", help="where the film goes (default: <story name>.mp4)")
    film.add_argument("--url", help="the gateway (default: the running dev stack's)")
    film.add_argument("--token", help="an access token (else STORYCORE_TOKEN)")
    film.add_argument("--email", help="sign in with this account (else STORYCORE_EMAIL)")
    film.add_argument("--password", help="its password (else STORYCORE_PASSWORD)")
    film.add_argument("--project", help="an existing project's id (default: a new project)")
    film.add_argument("--title", help="the film's title (default: the scenario's)")
    film.add_argument("--shots-per-scene", type=int, choices=range(1, 9), metavar="{1..8}")
    film.add_argument(
        "--preset",
        choices=("youtube_1080p", "youtube_4k", "tiktok", "instagram_feed", "twitter", "custom"),
        help="the film's frame size (default: youtube_1080p; custom takes --width and --height)",
    )
    film.add_argument("--width", type=int, help="with --preset custom: the frame's width")
    film.add_argument("--height", type=int, help="with --preset custom: the frame's height")
    film.add_argument("--fps", type=int, help="frames per second (default: 24)")
    film.add_argument("--quality", choices=("draft", "standard", "high"), help="default: draft")
    film.add_argument("--language", help="the narration's language, e.g. en-US (default: fr-FR)")
    film.add_argument(
        "--open",
        action="store_true",
        help="also download the storyboards and the audio into <out stem>_assets/",
    )
    film.set_defaults(func=cmd_film)


def _timestamp(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="storycore", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data-dir",
        default=str(DEFAULT_DATA_DIR),
        help="where the dev stack keeps its data (default: .storycore)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the whole suite")
    up.add_argument(
        "--port",
        type=int,
        default=load_route_table().port,
        help="the gateway port (default: gateway/routes.toml)",
    )
    up.add_argument(
        "--host",
        type=_listen_host,
        default="127.0.0.1",
        help="the gateway's listen address (default: 127.0.0.1; 0.0.0.0 for every interface)",
    )
    up.add_argument("--scale", action="append", default=[], metavar="SERVICE=N")
    up.add_argument(
        "--nats-cluster",
        type=int,
        choices=(1, 3, 5),
        default=1,
        metavar="N",
        help="run N NATS servers as one JetStream cluster (3 or 5; streams keep 3 replicas)",
    )
    up.set_defaults(func=cmd_up)
    sub.add_parser("down", help="stop a running stack").set_defaults(func=cmd_down)
    sub.add_parser("status", help="show what runs").set_defaults(func=cmd_status)
    token = sub.add_parser("token", help="print an access token")
    token.add_argument("--user", required=True, type=str)
    token.add_argument(
        "--ttl",
        type=int,
        default=1800,
        help="seconds, at most the services' STORYCORE_ACCESS_TOKEN_TTL_SECONDS",
    )
    token.set_defaults(func=cmd_token)
    sub.add_parser("migrate", help="run all migrations").set_defaults(func=cmd_migrate)
    rep = sub.add_parser("republish", help="re-send outbox events of a time range")
    rep.add_argument("--service", required=True)
    rep.add_argument("--since", required=True, type=_timestamp)
    rep.add_argument("--until", type=_timestamp, default=datetime.now(UTC))
    rep.set_defaults(func=cmd_republish)
    sub.add_parser(
        "provision-nats", help="create the bus's streams and buckets (as the provisioner)"
    ).set_defaults(func=cmd_provision_nats)
    sub.add_parser(
        "nats-config", help="print the compose NATS config made from the bus declaration"
    ).set_defaults(func=cmd_nats_config)
    openapi = sub.add_parser("openapi", help="write openapi/storycore.json (merged OpenAPI)")
    openapi.add_argument("--check", action="store_true", help="fail when the file is stale")
    openapi.set_defaults(func=cmd_openapi)
    errors_doc = sub.add_parser("errors-doc", help="write docs/errors.md (the error codes)")
    errors_doc.add_argument("--check", action="store_true", help="fail when the file is stale")
    errors_doc.set_defaults(func=cmd_errors_doc)
    kubernetes = sub.add_parser("kubernetes", help="write deploy/kubernetes/ (the manifests)")
    kubernetes.add_argument("--check", action="store_true", help="fail when a file is stale")
    kubernetes.set_defaults(func=cmd_kubernetes)
    kube_secrets = sub.add_parser(
        "kubernetes-secrets", help="print the storycore-secrets env file (random values)"
    )
    kube_secrets.add_argument(
        "--out", help="write secrets.env and auth-signing-key.pem here instead (never replaced)"
    )
    kube_secrets.add_argument(
        "--postgres",
        default="postgres:5432",
        metavar="HOST:PORT",
        help="where the services' DATABASE_URLs point (default: the dev overlay's postgres)",
    )
    kube_secrets.add_argument(
        "--postgres-direct",
        metavar="HOST:PORT",
        help="where DATABASE_DIRECT_URLs (migrations) point (default: --postgres)",
    )
    kube_secrets.set_defaults(func=cmd_kubernetes_secrets)
    bench = sub.add_parser("bench", help="run the benchmarks in benchmarks/ (prints figures)")
    bench.add_argument("names", nargs="*", help="only these (file names without .py)")
    bench.set_defaults(func=cmd_bench)
    _add_film(sub)
    test = sub.add_parser("test", help="lint, types, boundaries and the whole test suite")
    test.set_defaults(func=cmd_test)
    args, extra = parser.parse_known_args(argv)
    if args.command == "test":  # everything after `test` goes to pytest
        args.pytest_args = [a for a in extra if a != "--"]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "bench":  # `bench load_bench -- --seconds 10`: after `--`, the scripts'
        first = next((i for i, a in enumerate(args.names) if a.startswith("-")), len(args.names))
        args.names, args.script_args = args.names[:first], args.names[first:]
    if args.command == "token":
        try:
            uuid.UUID(args.user)
        except ValueError:
            parser.error("--user takes a user id (a UUID)")
    sys.exit(args.func(args))
