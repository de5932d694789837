"""Kubernetes manifests made from the route table, the bus declaration and docker-compose.yml.

``deploy/kubernetes/`` is generated, never edited by hand: ``python3 storycore.py kubernetes``
writes it and a test fails when the committed files differ from what this module makes. The
same three sources that already keep compose and the dev stack equal feed it, so Kubernetes
cannot drift from them either:

- ``gateway/routes.toml`` (:mod:`storycore_devstack.routes`): one Deployment, Service,
  HorizontalPodAutoscaler and PodDisruptionBudget per service, and Traefik ``IngressRoute``
  objects carrying exactly the table's rules, priorities and middlewares;
- ``gateway/dynamic.yml``: the Traefik ``Middleware`` objects, read from the file both other
  modes load (its Go template rendered with its own defaults);
- ``docker-compose.yml``: each container's command and environment, translated rule by rule
  (:func:`container_env`); a secret compose requires (``${X:?}``) becomes a ``secretKeyRef``;
- the bus declaration (:mod:`storycore_shared.events.bus`): each worker's KEDA trigger reads
  the lag of the durable consumer its NATS identity is granted, and the NATS Helm values carry
  the ``authorization`` block of ``deploy/nats/nats.conf`` (:mod:`storycore_devstack.nats_config`).

What Kubernetes adds and compose has no word for (sizes, replica bounds, who calls whom) lives
in the tables below, each entry saying where in the code it comes from.
"""

from __future__ import annotations

import importlib
import math
import re
import secrets
import textwrap
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml

from storycore_devstack.nats_config import Variable, compose_config, parse_conf, password_variable
from storycore_devstack.routes import (
    FALLBACK,
    GATEWAY_DIR,
    REPO_ROOT,
    RouteTable,
    ServiceEntry,
    load_route_table,
)
from storycore_shared.events.bus import BUS, Identity

Manifest = dict[str, Any]

KUBE_DIR = REPO_ROOT / "deploy" / "kubernetes"
NAMESPACE = "storycore"
PART_OF = "storycore"
NAME_LABEL = "app.kubernetes.io/name"
COMPONENT_LABEL = "app.kubernetes.io/component"
DATABASE_LABEL = "storycore.dev/database"

# One Secret holds every password, key and URL with credentials (no value is ever committed:
# the dev overlay generates it from a git-ignored env file, production creates it). The NATS
# Helm release reads the same Secret, so it lives in the same namespace and keeps its name.
SECRET = "storycore-secrets"
SIGNING_KEY_SECRET = "storycore-auth-signing-key"
SIGNING_KEY_FILE = "auth-signing-key.pem"
SECRETS_ENV_FILE = "secrets.env"
# What `kubernetes-secrets --out deploy/kubernetes/overlays/dev` writes; .gitignore lists both.
DEV_SECRET_FILES = (SECRETS_ENV_FILE, SIGNING_KEY_FILE)

# The images' user (`useradd --uid 10001` in every Dockerfile).
RUN_AS_USER = 10001
TMP_DIR = "/tmp"  # every service writes only here (tempfile, the worker's alive file)

# Where the rest of the platform runs, by namespace name: Traefik (routes to every API), KEDA
# (reads the NATS monitoring port) and CloudNativePG's operator (talks to its instances).
TRAEFIK_NAMESPACE = "traefik"
KEDA_NAMESPACE = "keda"
CNPG_NAMESPACE = "cnpg-system"
CLUSTER_DOMAIN = "cluster.local"

# NATS, installed by the official Helm chart as release "nats" in this namespace: its client
# Service is "nats" (as in compose) and its headless Service resolves each server by pod name,
# which KEDA needs to reach the leader of a consumer in a cluster.
NATS_RELEASE = "nats"
NATS_CLIENT_PORT = 4222
NATS_CLUSTER_PORT = 6222
NATS_MONITOR_PORT = 8222
NATS_REPLICAS = 3
NATS_REPLICAS_SETTING = "STORYCORE_NATS_REPLICAS"
NATS_GLOBAL_ACCOUNT = "$G"  # users declared without accounts live in the global account
POSTGRES_PORT = 5432
DATABASE_NAME = "storycore"

# Production's PostgreSQL: a CloudNativePG cluster and its PgBouncer Pooler.
CNPG_CLUSTER = "storycore-postgres"
CNPG_POOLER = "storycore-pooler-rw"  # also the Service name applications connect to
CNPG_INSTANCES = 3
CNPG_MAX_CONNECTIONS = 350
# superuser_reserved_connections (3), the instance manager and its exporter, the pooler's
# auth_query user: what Postgres keeps besides the applications' connections.
CNPG_OVERHEAD_CONNECTIONS = 10
POOLER_INSTANCES = 2
# Server connections per role and PgBouncer pod: what bounds a service's Postgres backends,
# whatever its replica count. The services need nothing else set: with DATABASE_PGBOUNCER they
# send only tracked startup parameters and keep no prepared statement across transactions.
POOLER_DEFAULT_POOL_SIZE = 10

# ServiceSettings' defaults (shared/src/storycore_shared/config.py).
DEFAULT_POOL_SIZE = 20
DEFAULT_MAX_OVERFLOW = 0
# Besides its pool, an API process holds two sessions of its own, on DATABASE_DIRECT_URL: the
# outbox relay's (leader lock and LISTEN, relay.py) and the readiness check's (health.py).
API_SESSIONS = 2
# Each Deployment rolls one pod at a time (maxSurge 1): one more process than maxReplicas,
# and one migration init container connecting at a time.
SURGE = 1

# The dev overlay: one NATS server, small pools and replica bounds, and a Postgres whose
# max_connections covers them (checked by tests/test_kubernetes.py).
DEV_POOL_SIZE = 5
DEV_MAX_REPLICAS = 2
DEV_POSTGRES_MAX_CONNECTIONS = 300
DEV_IMAGE_TAG = "dev"
BASE_TAG = "latest"  # the base's images; each overlay retags them
# Production images come from your registry; replace the placeholder host.
PRODUCTION_REGISTRY = "your-registry.invalid/storycore"
PRODUCTION_CORS_ORIGINS = ("https://studio.example.com",)

GENERATED_HEADER = "# Generated by `python3 storycore.py kubernetes`; do not edit by hand.\n"


# -- what Kubernetes adds: sizes, replica bounds, calls ----------------------------------------


@dataclass(frozen=True)
class Sizing:
    """Requests, limits, scratch space and replica bounds of one workload."""

    cpu: tuple[str, str]  # request, limit
    memory: tuple[str, str]
    tmp: str  # the emptyDir at /tmp: uploads and renders are written there before storing
    min_replicas: int
    max_replicas: int
    # Workers only: pending jobs per replica KEDA aims for, and how many database engines one
    # process opens (sequences.worker runs two job runners, each with its own engine).
    lag_threshold: int = 0
    engines: int = 1


SIZING: dict[str, Sizing] = {
    # argon2id hashes (64 MiB each, HASHING_CONCURRENCY=2 at once) set auth's memory.
    "auth": Sizing(("100m", "1"), ("256Mi", "512Mi"), "64Mi", 2, 6),
    "projects": Sizing(("100m", "1"), ("256Mi", "512Mi"), "64Mi", 2, 6),
    "shots": Sizing(("100m", "1"), ("256Mi", "512Mi"), "64Mi", 2, 6),
    "locations": Sizing(("100m", "1"), ("256Mi", "512Mi"), "64Mi", 2, 4),
    "llm": Sizing(("100m", "1"), ("256Mi", "512Mi"), "64Mi", 2, 4),
    # Character sheets (SHEET_MAX_BYTES, 20 MiB) are decoded by Pillow in the API.
    "sequences": Sizing(("100m", "1"), ("256Mi", "768Mi"), "256Mi", 2, 4),
    # Waveforms read stored files through a temporary directory (audio/service.py).
    "audio": Sizing(("100m", "1"), ("256Mi", "1Gi"), "1Gi", 2, 4),
    # Uploads (VIDEO_EDITOR_UPLOAD_MAX_BYTES, 2 GiB) are received into a temporary file.
    "video-editor": Sizing(("200m", "2"), ("512Mi", "1Gi"), "5Gi", 2, 4),
    FALLBACK: Sizing(("50m", "500m"), ("128Mi", "256Mi"), "16Mi", 2, 3),
    "sequences-worker": Sizing(
        ("250m", "2"), ("512Mi", "1536Mi"), "512Mi", 1, 8, lag_threshold=2, engines=2
    ),
    "audio-worker": Sizing(("500m", "2"), ("512Mi", "1Gi"), "2Gi", 1, 8, lag_threshold=2),
    # An export renders a whole timeline: one job per replica.
    "video-editor-worker": Sizing(("1", "4"), ("1Gi", "3Gi"), "10Gi", 1, 4, lag_threshold=1),
}

# Which services each workload calls over HTTP (port 8000), read from the code; NetworkPolicies
# allow exactly these. A test checks each one against the URL compose gives the caller.
CALLS: dict[str, tuple[str, ...]] = {
    "auth": (),  # signs its own tokens (NEEDS_JWKS = False)
    "projects": ("auth",),  # JWKS (storycore_shared.auth.TokenVerifier)
    # JWKS, and a replica miss asks projects once (ProjectDirectory in each main.py).
    "shots": ("auth", "projects"),
    "locations": ("auth", "projects"),
    "llm": ("auth",),
    "sequences": ("auth", "projects"),
    "audio": ("auth", "projects"),
    # Media imported by reference is fetched from its owner (media_service.py).
    "video-editor": ("auth", "projects", "sequences", "audio"),
    # /api/health probes every service's readiness (storycore_shared.fallback).
    FALLBACK: (
        "auth",
        "projects",
        "shots",
        "locations",
        "llm",
        "sequences",
        "audio",
        "video-editor",
    ),
    "sequences-worker": ("llm",),  # the planner: POST /internal/llm/plan (sequences/worker.py)
    "audio-worker": (),  # only the asset store (NATS) and its schema
    "video-editor-worker": (),
}

# Calls that leave the cluster, on these ports only: the LLM providers (HTTPS, and Ollama's
# 11434) and ComfyUI (HTTPS, or its 8188), wherever the operator points LLM_*_URL and
# SEQUENCES_COMFYUI_URL. Delete the policy where nothing is configured.
EXTERNAL_CALLS: dict[str, tuple[str, tuple[int, ...]]] = {
    "llm": ("llm-providers", (443, 11434)),
    "sequences-worker": ("comfyui", (443, 8188)),
}


# -- the workloads -----------------------------------------------------------------------------

Role = Literal["api", "worker"]


@dataclass(frozen=True)
class Workload:
    """One Deployment: an API of the route table (the gateway fallback included) or a worker."""

    name: str
    entry: ServiceEntry
    role: Role
    compose: dict[str, Any]

    @property
    def package(self) -> str:
        """The Python package (``video_editor``), also the database role and schema."""
        return self.entry.app.split(".")[0]

    @property
    def image(self) -> str:
        return f"{image_name(self.entry.name)}:{BASE_TAG}"

    @property
    def is_fallback(self) -> bool:
        return self.entry.is_fallback

    @property
    def uses_database(self) -> bool:
        return not self.is_fallback

    @property
    def env_prefix(self) -> str:
        return service_env_prefix(self.package)

    @property
    def sizing(self) -> Sizing:
        return SIZING[self.name]

    @property
    def labels(self) -> dict[str, str]:
        component = "gateway" if self.is_fallback else self.role
        labels = {
            NAME_LABEL: self.name,
            COMPONENT_LABEL: component,
            "app.kubernetes.io/part-of": PART_OF,
        }
        if self.uses_database:
            labels[DATABASE_LABEL] = "true"
        return labels

    @property
    def selector(self) -> dict[str, str]:
        return {NAME_LABEL: self.name}

    @property
    def worker_identity(self) -> Identity:
        """The worker's own NATS user, whose durable consumers KEDA watches."""
        return BUS[self.name]

    def pooled_connections(self, pool_size: int, max_overflow: int) -> int:
        """Connections one process's engines may hold (DATABASE_URL: PgBouncer, if any)."""
        if not self.uses_database:
            return 0
        engines = self.sizing.engines if self.role == "worker" else 1
        return engines * (pool_size + max_overflow)

    @property
    def session_connections(self) -> int:
        """Connections one process holds on DATABASE_DIRECT_URL, always to Postgres itself."""
        return API_SESSIONS if self.uses_database and self.role == "api" else 0


def image_name(service: str) -> str:
    """One image per Dockerfile, named after the service it serves; overlays retag it."""
    return f"storycore/{service}"


@cache
def service_env_prefix(package: str) -> str:
    """``PROJECTS_``: read from the service's own Settings, the prefix its fields answer to."""
    settings = importlib.import_module(f"{package}.config").Settings
    return str(settings.ENV_PREFIX)


def load_compose() -> dict[str, Any]:
    return dict(yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())["services"])


def workloads(table: RouteTable | None = None) -> list[Workload]:
    """Every API of the route table, then every worker, each with its compose service."""
    table = table or load_route_table()
    compose = load_compose()
    apis = [
        Workload(entry.name, entry, "api", compose[entry.name]) for entry in table.services.values()
    ]
    workers = [
        Workload(f"{entry.name}-worker", entry, "worker", compose[f"{entry.name}-worker"])
        for entry in table.services.values()
        if entry.worker
    ]
    return apis + workers


# -- compose environment → container env ---------------------------------------------------------

_REFERENCE = re.compile(r"\$\{(?P<name>\w+)(?P<op>:[-?])(?P<arg>[^}]*)\}")
_SECRET_LOOKING = ("PASSWORD", "TOKEN", "_KEY")


def secret_ref(key: str, *, optional: bool = False) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": SECRET, "key": key}
    if optional:
        ref["optional"] = True
    return {"secretKeyRef": ref}


def _translate(name: str, raw: str) -> list[Manifest]:
    """One compose variable as container env entries (helpers first: ``$(X)`` needs them).

    - ``*_DATABASE_URL``: the whole URL is the Secret's, so the database can be anywhere;
    - ``${X:?...}``: a required secret, read from the Secret under key X;
    - ``${X:-default}``: the default; an empty one is left out, unless X looks like a key,
      which then comes from the Secret when the operator put it there (optional);
    - a required secret inside a longer value (a NATS URL with its user's password): the
      secret as its own variable, referenced as ``$(X)``, as compose interpolates it.
    """
    value = str(raw)
    references = list(_REFERENCE.finditer(value))
    if not references:
        return [{"name": name, "value": value}]
    if name.endswith("DATABASE_URL"):
        return [{"name": name, "valueFrom": secret_ref(name)}]
    whole = references[0] if references[0].group(0) == value else None
    if whole is not None and whole["op"] == ":?":
        return [{"name": name, "valueFrom": secret_ref(whole["name"])}]
    if whole is not None:
        if whole["arg"]:
            return [{"name": name, "value": whole["arg"]}]
        if any(marker in whole["name"] for marker in _SECRET_LOOKING):
            return [{"name": name, "valueFrom": secret_ref(whole["name"], optional=True)}]
        return []
    helpers: list[Manifest] = []
    for reference in references:
        if reference["op"] != ":?":
            raise ValueError(f"{name}: only required secrets may be embedded, not {value!r}")
        helpers.append({"name": reference["name"], "valueFrom": secret_ref(reference["name"])})
    return [*helpers, {"name": name, "value": _REFERENCE.sub(r"$(\g<name>)", value)}]


def container_env(compose_env: dict[str, Any]) -> list[Manifest]:
    """A compose service's ``environment`` as Kubernetes env: secret helpers, then the
    variables by name (a stable order for review)."""
    helpers: dict[str, Manifest] = {}
    plain: list[Manifest] = []
    for name in sorted(compose_env):
        for entry in _translate(name, compose_env[name]):
            if "value" in entry or entry["name"] == name:
                plain.append(entry)
            else:
                helpers[entry["name"]] = entry
    return [*(helpers[name] for name in sorted(helpers)), *plain]


# -- pods ----------------------------------------------------------------------------------------


def _metadata(name: str, labels: dict[str, str]) -> Manifest:
    return {"name": name, "labels": dict(labels)}


def _resources(sizing: Sizing) -> Manifest:
    return {
        "requests": {"cpu": sizing.cpu[0], "memory": sizing.memory[0]},
        "limits": {"cpu": sizing.cpu[1], "memory": sizing.memory[1]},
    }


def container_security() -> Manifest:
    """Nothing to escalate to, no capability, nothing writable but the volumes."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def pod_security() -> Manifest:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_USER,
        "fsGroup": RUN_AS_USER,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _seconds(duration: str) -> int:
    match = re.fullmatch(r"(\d+)s", duration)
    if match is None:
        raise ValueError(f"expected whole seconds, not {duration!r}")
    return int(match.group(1))


def migration_command(workload: Workload) -> list[str]:
    """The init container's command: the ``migrate`` the service runs at start, alone, on the
    same URL (``DATABASE_DIRECT_URL``, else ``DATABASE_URL``: ``direct_database_url``).

    Kept to the package's ``MIGRATIONS`` (main.py) and ``SCHEMA`` (models.py), which a test
    imports.
    """
    package, prefix = workload.package, workload.env_prefix
    url = f"os.environ.get('{prefix}DATABASE_DIRECT_URL') or os.environ['{prefix}DATABASE_URL']"
    script = (
        "import asyncio, logging, os; "
        f"from {package}.main import MIGRATIONS; "
        f"from {package}.models import SCHEMA; "
        "from storycore_shared.migrations import migrate; "
        "logging.basicConfig(level=logging.INFO); "
        f"asyncio.run(migrate({url}, SCHEMA, MIGRATIONS))"
    )
    return ["python", "-c", script]


def _migrate_container(workload: Workload) -> Manifest:
    """Migrations in an init container, not a Job, because:

    - the app already migrates at start under an advisory lock (storycore_shared.migrations),
      so running the same step first is safe for any number of replicas starting at once, and
      a pod of a new image never serves before its schema is at head, in every rollout;
    - a Job's pod template is immutable: `kubectl apply -k` with a new image tag fails on an
      existing Job, so a Job per release would need deleting or renaming by hand;
    - the init container is not probed: a long migration cannot be killed by the liveness
      probe the way it would be inside the app's start-up.
    It connects where the service's own migrate does (DATABASE_DIRECT_URL when set): in
    production the primary, since the advisory lock is a session lock, which a transaction
    pooler does not keep.
    """
    url = f"{workload.env_prefix}DATABASE_URL"
    return {
        "name": "migrate",
        "image": workload.image,
        "command": migration_command(workload),
        "env": [{"name": url, "valueFrom": secret_ref(url)}],
        "resources": {
            "requests": {"cpu": "50m", "memory": "128Mi"},
            "limits": {"cpu": "500m", "memory": workload.sizing.memory[1]},
        },
        "securityContext": container_security(),
        "volumeMounts": [{"name": "tmp", "mountPath": TMP_DIR}],
    }


def _api_probes(workload: Workload) -> Manifest:
    """``/healthz`` says the process is alive, ``/readyz`` (or the table's health path) that it
    can serve. Readiness mirrors Traefik's check in compose (every 5 s, 5 s timeout, out after
    one failure): /readyz already waits for several failed database checks before saying 503.
    """
    port = "http"
    return {
        "startupProbe": {
            "httpGet": {"path": "/healthz", "port": port},
            "periodSeconds": 2,
            "failureThreshold": 90,
        },
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": port},
            "periodSeconds": 10,
            "timeoutSeconds": 3,
            "failureThreshold": 3,
        },
        "readinessProbe": {
            "httpGet": {"path": workload.entry.health_path, "port": port},
            "periodSeconds": 5,
            "timeoutSeconds": 5,
            "failureThreshold": 1,
        },
    }


def _worker_probes(workload: Workload) -> Manifest:
    """Compose's own check (``python -m <pkg>.worker --healthcheck``: the fetch loop touched its
    alive file lately), on compose's timings; no readiness, since no Service routes to it."""
    check = workload.compose["healthcheck"]
    command = [part for part in check["test"] if part != "CMD"]
    period, timeout = _seconds(check["interval"]), _seconds(check["timeout"])
    start = _seconds(check.get("start_period", "0s"))
    return {
        "startupProbe": {
            "exec": {"command": command},
            "periodSeconds": period,
            "timeoutSeconds": timeout,
            "failureThreshold": math.ceil(start / period) + int(check["retries"]),
        },
        "livenessProbe": {
            "exec": {"command": command},
            "periodSeconds": period,
            "timeoutSeconds": timeout,
            "failureThreshold": int(check["retries"]),
        },
    }


def _volumes(workload: Workload) -> list[Manifest]:
    """/tmp (the only writable path) and compose's file secrets (auth's signing key)."""
    volumes: list[Manifest] = [{"name": "tmp", "emptyDir": {"sizeLimit": workload.sizing.tmp}}]
    for secret in workload.compose.get("secrets", []):
        volumes.append(
            {
                "name": "signing-key",
                "secret": {
                    "secretName": SIGNING_KEY_SECRET,
                    "items": [{"key": SIGNING_KEY_FILE, "path": secret}],
                    "defaultMode": 0o440,
                },
            }
        )
    return volumes


def _volume_mounts(workload: Workload) -> list[Manifest]:
    """Compose mounts file secrets at /run/secrets/<name>; so does this."""
    mounts: list[Manifest] = [{"name": "tmp", "mountPath": TMP_DIR}]
    if workload.compose.get("secrets"):
        mounts.append({"name": "signing-key", "mountPath": "/run/secrets", "readOnly": True})
    return mounts


def _container(workload: Workload) -> Manifest:
    container: Manifest = {"name": workload.name, "image": workload.image}
    if "command" in workload.compose:  # workers; an API runs its image's CMD (uvicorn)
        container["command"] = list(workload.compose["command"])
    container["env"] = container_env(workload.compose.get("environment") or {})
    if workload.role == "api":
        port = workload.entry.container_port
        container["ports"] = [{"name": "http", "containerPort": port, "protocol": "TCP"}]
        container |= _api_probes(workload)
        # Endpoints drop the pod before uvicorn stops accepting connections.
        container["lifecycle"] = {"preStop": {"sleep": {"seconds": 5}}}
    else:
        container |= _worker_probes(workload)
    container["resources"] = _resources(workload.sizing)
    container["securityContext"] = container_security()
    container["volumeMounts"] = _volume_mounts(workload)
    return container


def deployment(workload: Workload) -> Manifest:
    """No ``replicas``: the HPA (APIs) or KEDA (workers) owns the count, and an apply must not
    reset it."""
    pod: Manifest = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,  # no <SERVICE>_PORT variables next to the settings
        "securityContext": pod_security(),
    }
    if workload.uses_database:
        pod["initContainers"] = [_migrate_container(workload)]
    pod["containers"] = [_container(workload)]
    pod["volumes"] = _volumes(workload)
    # A worker gets its drain (WORKER_DRAIN_SECONDS, 20 s) and then hands the job back.
    pod["terminationGracePeriodSeconds"] = 45 if workload.role == "worker" else 30
    pod["topologySpreadConstraints"] = [
        {
            "maxSkew": 1,
            "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": workload.selector},
        }
    ]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(workload.name, workload.labels),
        "spec": {
            "selector": {"matchLabels": workload.selector},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": SURGE, "maxUnavailable": 0},
            },
            "template": {"metadata": {"labels": workload.labels}, "spec": pod},
        },
    }


def service(workload: Workload) -> Manifest:
    port = workload.entry.container_port
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(workload.name, workload.labels),
        "spec": {
            "type": "ClusterIP",
            "selector": workload.selector,
            "ports": [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def autoscaler(workload: Workload) -> Manifest:
    sizing = workload.sizing
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(workload.name, workload.labels),
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": workload.name,
            },
            "minReplicas": sizing.min_replicas,
            "maxReplicas": sizing.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 70},
                    },
                }
            ],
        },
    }


def nats_monitoring_endpoint() -> str:
    """The headless Service: KEDA first asks any server, then the consumer's leader by name
    (``<pod>.<this host>``), which only the headless Service resolves."""
    return f"{NATS_RELEASE}-headless.{NAMESPACE}.svc.{CLUSTER_DOMAIN}:{NATS_MONITOR_PORT}"


def scaled_object(workload: Workload) -> Manifest:
    """KEDA scales a worker on its JetStream consumers' lag (pending plus unacknowledged)."""
    sizing = workload.sizing
    triggers = [
        {
            "type": "nats-jetstream",
            "metadata": {
                "natsServerMonitoringEndpoint": nats_monitoring_endpoint(),
                "account": NATS_GLOBAL_ACCOUNT,
                "stream": grant.stream.name,
                "consumer": grant.durable,
                "lagThreshold": str(sizing.lag_threshold),
            },
        }
        for grant in workload.worker_identity.consumes
    ]
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": _metadata(workload.name, workload.labels),
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": workload.name,
            },
            "pollingInterval": 10,
            "minReplicaCount": sizing.min_replicas,
            "maxReplicaCount": sizing.max_replicas,
            # NATS's monitoring port unreachable: keep the floor rather than guess.
            "fallback": {"failureThreshold": 3, "replicas": sizing.min_replicas},
            "triggers": triggers,
        },
    }


def disruption_budget(workload: Workload) -> Manifest:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(workload.name, workload.labels),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": workload.selector}},
    }


# -- network policies ------------------------------------------------------------------------------


def _namespace_peer(name: str) -> Manifest:
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": name}}}


def _pods(names: Iterable[str]) -> Manifest:
    return {
        "podSelector": {
            "matchExpressions": [{"key": NAME_LABEL, "operator": "In", "values": sorted(names)}]
        }
    }


def _tcp(*ports: int | str) -> list[Manifest]:
    return [{"protocol": "TCP", "port": port} for port in ports]


def callers_of(name: str) -> list[str]:
    return sorted(caller for caller, callees in CALLS.items() if name in callees)


def network_policy(workload: Workload) -> Manifest:
    """The workload's own edges: Traefik and its callers in (APIs), its callees out. Postgres,
    NATS and DNS are the shared policies' (:func:`shared_network_policies`)."""
    port = workload.entry.container_port
    ingress: list[Manifest] = []
    if workload.role == "api":
        ingress.append({"from": [_namespace_peer(TRAEFIK_NAMESPACE)], "ports": _tcp(port)})
        if callers := callers_of(workload.name):
            ingress.append({"from": [_pods(callers)], "ports": _tcp(port)})
    egress: list[Manifest] = []
    if callees := CALLS[workload.name]:
        egress.append({"to": [_pods(callees)], "ports": _tcp(port)})
    spec: Manifest = {
        "podSelector": {"matchLabels": workload.selector},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": ingress,
        "egress": egress,
    }
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(workload.name, workload.labels),
        "spec": spec,
    }


def _policy(name: str, spec: Manifest, labels: dict[str, str] | None = None) -> Manifest:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(name, labels or {"app.kubernetes.io/part-of": PART_OF}),
        "spec": spec,
    }


NATS_SERVER_SELECTOR = {NAME_LABEL: "nats", COMPONENT_LABEL: "nats"}  # the chart's labels


def _egress_policy(name: str, selector: Manifest, rule: Manifest) -> Manifest:
    return _policy(name, {"podSelector": selector, "policyTypes": ["Egress"], "egress": [rule]})


def _baseline_policies() -> list[Manifest]:
    """Nothing in or out unless a policy says so; every pod may resolve names."""
    dns = _namespace_peer("kube-system") | {"podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}
    return [
        _policy("default-deny", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
        _egress_policy(
            "allow-dns",
            {},
            {"to": [dns], "ports": [{"protocol": "UDP", "port": 53}, *_tcp(53)]},
        ),
    ]


def _postgres_policy(database_users: list[str]) -> Manifest:
    """The base takes any database URL (a managed Postgres outside the cluster, say): port
    5432 anywhere. The production overlay narrows it to the CloudNativePG pods."""
    return _egress_policy(
        "allow-postgres", _pods(database_users)["podSelector"], {"ports": _tcp(POSTGRES_PORT)}
    )


def _nats_policies(nats_users: list[str]) -> list[Manifest]:
    """Clients to the servers' client port; the servers: clients in, routes between them, and
    KEDA reading the monitoring port."""
    servers = {"podSelector": {"matchLabels": NATS_SERVER_SELECTOR}}
    return [
        _egress_policy(
            "allow-nats-clients",
            _pods(nats_users)["podSelector"],
            {"to": [servers], "ports": _tcp(NATS_CLIENT_PORT)},
        ),
        _policy(
            "nats-servers",
            {
                "podSelector": servers["podSelector"],
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [
                    {"from": [_pods(nats_users)], "ports": _tcp(NATS_CLIENT_PORT)},
                    {"from": [servers], "ports": _tcp(NATS_CLUSTER_PORT)},
                    {"from": [_namespace_peer(KEDA_NAMESPACE)], "ports": _tcp(NATS_MONITOR_PORT)},
                ],
                "egress": [{"to": [servers], "ports": _tcp(NATS_CLUSTER_PORT)}],
            },
        ),
    ]


def _external_policies() -> list[Manifest]:
    return [
        _egress_policy(policy, {"matchLabels": {NAME_LABEL: name}}, {"ports": _tcp(*ports)})
        for name, (policy, ports) in EXTERNAL_CALLS.items()
    ]


def shared_network_policies(all_workloads: list[Workload]) -> list[Manifest]:
    """Deny by default; DNS for every pod; Postgres and NATS for the workloads that use them;
    the NATS servers' own traffic; the calls that leave the cluster."""
    database_users = [w.name for w in all_workloads if w.uses_database]
    nats_users = [w.name for w in all_workloads if w.name in BUS] + [PROVISION_JOB]
    return [
        *_baseline_policies(),
        _postgres_policy(database_users),
        *_nats_policies(nats_users),
        *_external_policies(),
    ]


# -- the gateway: IngressRoutes, Middlewares, ServersTransport ------------------------------------

TRAEFIK_API = "traefik.io/v1alpha1"
SERVERS_TRANSPORT = "storycore"
_RANGE_BLOCK = re.compile(r"^\{\{-? range .*?\{\{- end \}\}\n", re.MULTILINE | re.DOTALL)
_RANGE_DEFAULT = re.compile(r'\{\{-? range .*?\| default "(?P<origins>[^"]*)"')
_ENV_DEFAULT = re.compile(
    r'\{\{ env "(?P<name>\w+)" \| default "(?P<default>[^"]*)"(?P<quote> \| quote)? \}\}'
)


def middleware_name(reference: str) -> str:
    """``api@file`` in the route table is the Middleware ``api`` of this namespace."""
    name, _, provider = reference.partition("@")
    if provider not in ("", "file"):
        raise ValueError(f"a route table middleware comes from dynamic.yml: {reference}")
    return name


def cors_origins(origins: str) -> list[str]:
    """dynamic.yml's rule: each origin, and its localhost/127.0.0.1 twin, once."""
    expanded: list[str] = []
    for origin in (o.strip() for o in origins.split(",") if o.strip()):
        expanded += [
            origin,
            origin.replace("//localhost:", "//127.0.0.1:"),
            origin.replace("//127.0.0.1:", "//localhost:"),
        ]
    return list(dict.fromkeys(expanded))


def dynamic_middlewares(path: Path | None = None) -> dict[str, Manifest]:
    """gateway/dynamic.yml's middlewares, its template rendered with its own defaults."""
    text = (path or GATEWAY_DIR / "dynamic.yml").read_text()
    default_origins = _RANGE_DEFAULT.search(text)
    if default_origins is None:
        raise ValueError("dynamic.yml: the CORS origin list is no longer where it was")
    text = _RANGE_BLOCK.sub("", text)

    def fill(match: re.Match[str]) -> str:
        default = match["default"]
        return f'"{default}"' if match["quote"] else default

    middlewares: dict[str, Manifest] = yaml.safe_load(_ENV_DEFAULT.sub(fill, text))["http"][
        "middlewares"
    ]
    middlewares["cors"]["headers"]["accessControlAllowOriginList"] = cors_origins(
        default_origins["origins"]
    )
    return middlewares


def _middleware_spec(definition: Manifest, table: RouteTable) -> Manifest:
    """The file provider's form as the CRD's: chains and the errors service name objects."""
    if len(definition) != 1:
        raise ValueError(f"a middleware has one kind: {definition}")
    kind, options = next(iter(definition.items()))
    if kind == "chain":
        return {"chain": {"middlewares": [{"name": m} for m in options["middlewares"]]}}
    if kind == "errors":
        target = options["service"].partition("@")[0]
        port = table.services[target].container_port
        return {"errors": {**options, "service": {"name": target, "port": port}}}
    return {kind: options}


def middlewares(table: RouteTable) -> list[Manifest]:
    return [
        {
            "apiVersion": TRAEFIK_API,
            "kind": "Middleware",
            "metadata": _metadata(name, {"app.kubernetes.io/part-of": PART_OF}),
            "spec": _middleware_spec(definition, table),
        }
        for name, definition in dynamic_middlewares().items()
    ]


def ingress_route(table: RouteTable, entry: ServiceEntry) -> Manifest:
    """One IngressRoute per service, its routes in table order. The Service is the service's
    own; when none of its pods is ready Traefik drops the route (allowEmptyServices is off)
    and the catch-all's fallback answers 503 problem+json, as under compose."""
    routes = [
        {
            "kind": "Rule",
            "match": route.rule,
            "priority": route.priority,
            "middlewares": [{"name": middleware_name(m)} for m in route.middlewares],
            "services": [
                {
                    "kind": "Service",
                    "name": entry.name,
                    "port": entry.container_port,
                    "serversTransport": SERVERS_TRANSPORT,
                }
            ],
        }
        for route in entry.gateway_routes
    ]
    labels = {NAME_LABEL: entry.name, "app.kubernetes.io/part-of": PART_OF}
    return {
        "apiVersion": TRAEFIK_API,
        "kind": "IngressRoute",
        "metadata": _metadata(entry.name, labels),
        "spec": {"entryPoints": [table.entrypoint], "routes": routes},
    }


_TRANSPORT_FLAG = re.compile(r"^--serversTransport\.forwardingTimeouts\.(\w+)=(\S+)$")


def forwarding_timeouts() -> dict[str, str]:
    """Compose's Traefik timeouts (its command line): the gateway drops idle upstream
    connections before uvicorn does, so a POST never lands in a closing socket."""
    command = load_compose()["traefik"]["command"]
    return {m[1]: m[2] for flag in command if (m := _TRANSPORT_FLAG.match(flag))}


def servers_transport() -> Manifest:
    return {
        "apiVersion": TRAEFIK_API,
        "kind": "ServersTransport",
        "metadata": _metadata(SERVERS_TRANSPORT, {"app.kubernetes.io/part-of": PART_OF}),
        "spec": {"forwardingTimeouts": forwarding_timeouts()},
    }


# -- NATS: provisioning Job, Helm values ------------------------------------------------------

PROVISION_JOB = "nats-provision"


def provision_job() -> Manifest:
    """Compose's one-shot ``nats-provision``: streams and buckets, as the provisioner, with
    STORYCORE_NATS_REPLICAS copies each. Idempotent, and removed an hour after it finished, so
    the next `kubectl apply -k` (an upgrade) runs it again."""
    compose = load_compose()[PROVISION_JOB]
    image = _compose_image(compose)
    labels = {
        NAME_LABEL: PROVISION_JOB,
        COMPONENT_LABEL: "job",
        "app.kubernetes.io/part-of": PART_OF,
    }
    env = container_env(compose["environment"])
    env.append({"name": NATS_REPLICAS_SETTING, "value": str(NATS_REPLICAS)})
    container = {
        "name": "provision",
        "image": image,
        "command": list(compose["command"]),
        "env": env,
        "resources": {
            "requests": {"cpu": "50m", "memory": "128Mi"},
            "limits": {"cpu": "500m", "memory": "256Mi"},
        },
        "securityContext": container_security(),
        "volumeMounts": [{"name": "tmp", "mountPath": TMP_DIR}],
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _metadata(PROVISION_JOB, labels),
        "spec": {
            "backoffLimit": 20,
            "ttlSecondsAfterFinished": 3600,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "OnFailure",
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": pod_security(),
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "16Mi"}}],
                },
            },
        },
    }


def _compose_image(compose_service: dict[str, Any]) -> str:
    """The image a compose service builds: ``services/<pkg>/Dockerfile`` is that service's."""
    dockerfile = compose_service["build"]["dockerfile"]
    if dockerfile == "gateway/Dockerfile":
        return f"{image_name(FALLBACK)}:{BASE_TAG}"
    package = dockerfile.split("/")[1]
    for entry in load_route_table().domain_services:
        if entry.app.split(".")[0] == package:
            return f"{image_name(entry.name)}:{BASE_TAG}"
    raise ValueError(f"no service builds {dockerfile}")


def nats_password_placeholder(variable: str) -> str:
    """The chart writes ``<< X >>`` unquoted: ``$NATS_X_PASSWORD``, read from the container's
    environment by nats-server, as nats.conf does under compose."""
    return f"<< ${variable} >>"


def _chart_value(value: Any) -> Any:
    if isinstance(value, Variable):
        return nats_password_placeholder(value.name)
    if isinstance(value, dict):
        return {key: _chart_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_chart_value(item) for item in value]
    return value


def nats_authorization() -> Manifest:
    """deploy/nats/nats.conf's ``authorization`` block (one user per identity, its permissions,
    its password variable), read from what nats_config renders for compose."""
    authorization: Manifest = _chart_value(parse_conf(compose_config())["authorization"])
    return authorization


def nats_password_variables() -> list[str]:
    """Every identity's ``NATS_<USER>_PASSWORD``, as compose names them."""
    return [password_variable(identity.user) for identity in BUS]


def nats_values() -> Manifest:
    """Values for the official NATS chart: a JetStream cluster of three on file storage that
    fsyncs every write (as compose's), monitoring on for KEDA, and the bus's users."""
    env = {variable: {"valueFrom": secret_ref(variable)} for variable in nats_password_variables()}
    return {
        "config": {
            "cluster": {"enabled": True, "replicas": NATS_REPLICAS},
            "jetstream": {
                "enabled": True,
                "fileStore": {
                    "enabled": True,
                    "dir": "/data",
                    "pvc": {"enabled": True, "size": "10Gi"},
                },
                "memoryStore": {"enabled": False},
                "merge": {"sync_interval": "always"},
            },
            "monitor": {"enabled": True, "port": NATS_MONITOR_PORT},
            "merge": {"authorization": nats_authorization()},
        },
        "container": {
            "env": env,
            "resources": {
                "requests": {"cpu": "250m", "memory": "512Mi"},
                "limits": {"cpu": "2", "memory": "2Gi"},
            },
        },
        "podTemplate": {"topologySpreadConstraints": {"kubernetes.io/hostname": {"maxSkew": 1}}},
        # No nats-box: a pod with the provisioner's rights that nothing needs at run time.
        "natsBox": {"enabled": False},
    }


def nats_values_dev() -> Manifest:
    """One server for a laptop cluster; the dev overlay provisions single-replica streams."""
    return {
        "config": {
            "cluster": {"enabled": False},
            "jetstream": {"fileStore": {"pvc": {"size": "2Gi"}}},
        },
        "container": {"resources": {"requests": {"cpu": "100m", "memory": "256Mi"}}},
    }


# -- the connection budget -----------------------------------------------------------------------


@dataclass(frozen=True)
class Budget:
    """Worst-case Postgres connections: every Deployment at its maximum plus a surge pod,
    every pool full, one migration init container per Deployment rolling."""

    pooled: int  # the engines' pools: to Postgres, or to PgBouncer in production
    sessions: int  # relay and readiness sessions (DATABASE_DIRECT_URL): always to Postgres
    migrations: int  # init containers: always to Postgres

    @property
    def direct_total(self) -> int:
        """Everything straight to Postgres (no pooler)."""
        return self.pooled + self.sessions + self.migrations

    def behind_pooler(self, server_connections: int) -> int:
        """What Postgres sees when the pools go through PgBouncer."""
        return server_connections + self.sessions + self.migrations


def connection_budget(
    all_workloads: list[Workload],
    *,
    pool_size: int = DEFAULT_POOL_SIZE,
    max_overflow: int = DEFAULT_MAX_OVERFLOW,
    max_replicas: int | None = None,
) -> Budget:
    pooled = sessions = migrations = 0
    for workload in all_workloads:
        if not workload.uses_database:
            continue
        processes = (max_replicas or workload.sizing.max_replicas) + SURGE
        pooled += processes * workload.pooled_connections(pool_size, max_overflow)
        sessions += processes * workload.session_connections
        migrations += SURGE
    return Budget(pooled, sessions, migrations)


def database_roles(all_workloads: list[Workload]) -> list[str]:
    return sorted({w.package for w in all_workloads if w.uses_database})


def pooler_server_connections(roles: int) -> int:
    """Server connections the Pooler may open: per PgBouncer pod, default_pool_size per role
    (one database), capped by max_db_connections."""
    return POOLER_INSTANCES * POOLER_DEFAULT_POOL_SIZE * roles


def role_connection_limit(all_workloads: list[Workload], role: str) -> int:
    """Each role's cap in Postgres: its pool in every PgBouncer pod, its sessions and its
    migrations at worst, one spare."""
    own = [w for w in all_workloads if w.uses_database and w.package == role]
    budget = connection_budget(own)
    return POOLER_INSTANCES * POOLER_DEFAULT_POOL_SIZE + budget.sessions + budget.migrations + 1


def pooler_max_client_connections(all_workloads: list[Workload]) -> int:
    """Every service's pools could land on one PgBouncer pod: room for all, rounded up."""
    return math.ceil(connection_budget(all_workloads).pooled / 100) * 100


def budget_text(all_workloads: list[Workload], *, production: bool) -> str:
    """The arithmetic as comment lines, for the kustomizations and the README."""
    budget = connection_budget(all_workloads)
    pool = f"DATABASE_POOL_SIZE {DEFAULT_POOL_SIZE} + DATABASE_MAX_OVERFLOW {DEFAULT_MAX_OVERFLOW}"
    lines = [
        "Connection budget, worst case (every Deployment at maxReplicas plus one surge pod):",
        f"  API process     a pool ({pool})",
        f"                  and {API_SESSIONS} sessions (the outbox relay's, readiness's)",
        "  worker process  a pool per engine (sequences-worker: 2 engines)",
        f"  pools           sum of (maxReplicas + {SURGE}) x process pool = {budget.pooled}",
        f"  sessions        sum over APIs of (maxReplicas + {SURGE}) x {API_SESSIONS}"
        f" = {budget.sessions}",
        f"  migrations      one init container per Deployment = {budget.migrations}",
    ]
    if not production:
        return "\n".join(
            [
                *lines,
                f"Straight to Postgres: {budget.direct_total} must stay under max_connections;"
                " otherwise lower",
                "<PREFIX>DATABASE_POOL_SIZE or maxReplicas, or put PgBouncer in front (the"
                " production overlay).",
            ]
        )
    roles = len(database_roles(all_workloads))
    server = pooler_server_connections(roles)
    per_pod = POOLER_DEFAULT_POOL_SIZE * roles
    total = budget.behind_pooler(server) + CNPG_OVERHEAD_CONNECTIONS
    return "\n".join(
        [
            *lines,
            f"Through the Pooler ({POOLER_INSTANCES} PgBouncer pods, transaction mode) go the"
            " pools only:",
            f"  clients         {budget.pooled} on one pod at worst"
            f" (max_client_conn {pooler_max_client_connections(all_workloads)})",
            f"  server side     {POOLER_INSTANCES} pods x {roles} roles x default_pool_size"
            f" {POOLER_DEFAULT_POOL_SIZE} = {server} (max_db_connections {per_pod} per pod)",
            f"  Postgres        {server} + sessions {budget.sessions} + migrations"
            f" {budget.migrations} + its own {CNPG_OVERHEAD_CONNECTIONS}",
            f"                  = {total} < max_connections {CNPG_MAX_CONNECTIONS}",
            "Raise default_pool_size with max_connections; each role's connectionLimit (its"
            " pool in",
            "every PgBouncer pod, its sessions and migrations, one spare) follows.",
        ]
    )


# -- the base -------------------------------------------------------------------------------------


def namespace() -> Manifest:
    """Pod Security: our pods meet "restricted"; NATS's and CloudNativePG's pods share the
    namespace and are held to "baseline"."""
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": NAMESPACE,
            "labels": {
                "pod-security.kubernetes.io/enforce": "baseline",
                "pod-security.kubernetes.io/warn": "restricted",
                "pod-security.kubernetes.io/audit": "restricted",
            },
        },
    }


def workload_documents(workload: Workload) -> list[Manifest]:
    if workload.role == "api":
        return [
            deployment(workload),
            service(workload),
            autoscaler(workload),
            disruption_budget(workload),
            network_policy(workload),
        ]
    return [
        deployment(workload),
        scaled_object(workload),
        disruption_budget(workload),
        network_policy(workload),
    ]


@dataclass(frozen=True)
class File:
    """One generated file: documents (or one mapping) and the comment above them."""

    path: str  # relative to deploy/kubernetes
    documents: tuple[Any, ...]
    comment: str = ""

    def render(self) -> str:
        header = GENERATED_HEADER + "".join(map(_comment_lines, self.comment.splitlines()))
        body = "---\n".join(_dump(document) for document in self.documents)
        return header + body


COMMENT_WIDTH = 98


def _comment_lines(line: str) -> str:
    """One line of a header comment, wrapped with its indent kept (commands stay readable)."""
    if not line.strip():
        return "#\n"
    indent = line[: len(line) - len(line.lstrip())]
    wrapped = textwrap.wrap(
        line.strip(),
        width=COMMENT_WIDTH - 2,
        initial_indent=indent,
        subsequent_indent=indent + "    ",
        break_on_hyphens=False,
        break_long_words=False,
    )
    return "".join(f"# {part}\n" for part in wrapped)


def _base_files(table: RouteTable, all_workloads: list[Workload]) -> list[File]:
    files = [File("base/namespace.yaml", (namespace(),))]
    for workload in all_workloads:
        files.append(
            File(
                f"base/workloads/{workload.name}.yaml",
                tuple(workload_documents(workload)),
                _workload_comment(workload),
            )
        )
    files += [
        File(
            "base/jobs/nats-provision.yaml",
            (provision_job(),),
            "Compose's nats-provision. A Job's pod template cannot change: before applying a\n"
            "new image within the hour it is kept, `kubectl delete job nats-provision`.",
        ),
        File(
            "base/gateway/ingressroutes.yaml",
            tuple(ingress_route(table, entry) for entry in table.services.values()),
            "Traefik's Kubernetes CRD provider: exactly the routes of gateway/routes.toml.",
        ),
        File(
            "base/gateway/middlewares.yaml",
            tuple(middlewares(table)),
            "gateway/dynamic.yml's middlewares, rendered with its defaults (CORS origins,\n"
            "STORYCORE_MAX_BODY_BYTES). The production overlay sets its CORS origins.",
        ),
        File(
            "base/gateway/serverstransport.yaml",
            (servers_transport(),),
            "Compose's Traefik forwarding timeouts, for every route's upstream.",
        ),
        File(
            "base/network-policies.yaml",
            tuple(shared_network_policies(all_workloads)),
            "Default deny; each workload's own edges are in its file. Traefik, KEDA and\n"
            f"CloudNativePG are found by namespace name ({TRAEFIK_NAMESPACE}, {KEDA_NAMESPACE},"
            f" {CNPG_NAMESPACE}).",
        ),
    ]
    resources = [file.path.removeprefix("base/") for file in files]
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": NAMESPACE,
        "resources": resources,
    }
    files.append(
        File(
            "base/kustomization.yaml",
            (kustomization,),
            "StoryCore on Kubernetes: the base. Secrets are referenced by name, never defined\n"
            f"here: {SECRET} (keys: `python3 storycore.py kubernetes-secrets`) and\n"
            f"{SIGNING_KEY_SECRET} (key {SIGNING_KEY_FILE}). Apply an overlay, not this.\n\n"
            "Migrations run in an init container of each Deployment (the service's own migrate,\n"
            "under its advisory lock), not in a Job: they run with every rollout of the image\n"
            "they belong to, no liveness probe can kill a long one, and `kubectl apply -k`\n"
            "never trips over a Job's immutable pod template.\n\n"
            + budget_text(all_workloads, production=False),
        )
    )
    return files


def _workload_comment(workload: Workload) -> str:
    if workload.role == "worker":
        return (
            f"`python -m {workload.entry.worker}`: scaled by KEDA on the lag of its JetStream\n"
            "consumers (the durable names its NATS user is granted in the bus declaration)."
        )
    if workload.is_fallback:
        return "The gateway's own answers (404/503 problems, /api/health, the API docs)."
    return (
        f"{workload.name}: {workload.entry.app}. Migrations run in the init container first;\n"
        "the service checks again at start (at head: no lock taken)."
    )


# -- overlays -------------------------------------------------------------------------------------


def _images(all_workloads: list[Workload], *, production: bool) -> list[Manifest]:
    services = sorted({w.entry.name for w in all_workloads})
    if not production:
        return [{"name": image_name(s), "newTag": DEV_IMAGE_TAG} for s in services]
    return [
        {
            "name": image_name(s),
            "newName": f"{PRODUCTION_REGISTRY}/{s}",
            "newTag": _service_version(s),
        }
        for s in services
    ]


def _service_version(service_name: str) -> str:
    """The image tag production pins: the package version of what the image installs."""
    entry = load_route_table().services[service_name]
    folder = REPO_ROOT / ("shared" if entry.is_fallback else f"services/{entry.app.split('.')[0]}")
    return str(tomllib.loads((folder / "pyproject.toml").read_text())["project"]["version"])


def _json_patch(target: Manifest, operations: list[Manifest]) -> Manifest:
    return {"target": target, "patch": _dump(operations).rstrip("\n")}


DEV_POSTGRES_LABELS = {
    NAME_LABEL: "postgres",
    COMPONENT_LABEL: "database",
    "app.kubernetes.io/part-of": PART_OF,
}


def _postgres_container(roles: list[str]) -> Manifest:
    """postgres:16 as compose runs it, each role's password from the Secret for init-roles.sh,
    writable only where Postgres writes (its data volume, its socket directory, /tmp)."""
    env: list[Manifest] = [
        {"name": "POSTGRES_USER", "value": "postgres"},
        {"name": "POSTGRES_PASSWORD", "valueFrom": secret_ref("POSTGRES_PASSWORD")},
        {"name": "POSTGRES_DB", "value": DATABASE_NAME},
        {"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"},
    ]
    env += [{"name": key, "valueFrom": secret_ref(key)} for key in map(db_password_key, roles)]
    ready = {"exec": {"command": ["pg_isready", "-U", "postgres", "-d", DATABASE_NAME]}}
    return {
        "name": "postgres",
        "image": "postgres:16",
        "args": ["-c", f"max_connections={DEV_POSTGRES_MAX_CONNECTIONS}"],
        "env": env,
        "ports": [{"name": "postgres", "containerPort": POSTGRES_PORT, "protocol": "TCP"}],
        "readinessProbe": ready | {"periodSeconds": 2, "timeoutSeconds": 3},
        "livenessProbe": ready | {"periodSeconds": 10, "timeoutSeconds": 3, "failureThreshold": 6},
        "resources": {
            "requests": {"cpu": "250m", "memory": "512Mi"},
            "limits": {"cpu": "2", "memory": "2Gi"},
        },
        "securityContext": container_security(),
        "volumeMounts": [
            {"name": "data", "mountPath": "/var/lib/postgresql/data"},
            {"name": "init", "mountPath": "/docker-entrypoint-initdb.d", "readOnly": True},
            {"name": "run", "mountPath": "/var/run/postgresql"},
            {"name": "tmp", "mountPath": TMP_DIR},
        ],
    }


def _postgres_statefulset(roles: list[str]) -> Manifest:
    init_script = {
        "name": "postgres-init",
        "defaultMode": 0o555,  # executed, like compose's mount (sourcing would leak `set -u`)
        "items": [{"key": "init-roles.sh", "path": "10-roles.sh"}],
    }
    pod = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pod_security() | {"runAsUser": 999, "runAsGroup": 999, "fsGroup": 999},
        "containers": [_postgres_container(roles)],
        "volumes": [
            {"name": "init", "configMap": init_script},
            {"name": "run", "emptyDir": {}},
            {"name": "tmp", "emptyDir": {}},
        ],
    }
    claim = {
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "5Gi"}}},
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _metadata("postgres", DEV_POSTGRES_LABELS),
        "spec": {
            "serviceName": "postgres",
            "replicas": 1,
            "selector": {"matchLabels": {NAME_LABEL: "postgres"}},
            "template": {"metadata": {"labels": DEV_POSTGRES_LABELS}, "spec": pod},
            "volumeClaimTemplates": [claim],
        },
    }


def dev_postgres(all_workloads: list[Workload]) -> list[Manifest]:
    """compose's postgres:16, for a laptop cluster: the same init-roles.sh, passwords from the
    Secret, and max_connections sized for the dev overlay's pools."""
    script = (REPO_ROOT / "deploy" / "postgres" / "init-roles.sh").read_text()
    port = {"name": "postgres", "port": POSTGRES_PORT, "targetPort": "postgres", "protocol": "TCP"}
    clients = _pods(w.name for w in all_workloads if w.uses_database)
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": _metadata("postgres-init", DEV_POSTGRES_LABELS),
            "data": {"init-roles.sh": script},
        },
        _postgres_statefulset(database_roles(all_workloads)),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _metadata("postgres", DEV_POSTGRES_LABELS),
            "spec": {"type": "ClusterIP", "selector": {NAME_LABEL: "postgres"}, "ports": [port]},
        },
        _policy(
            "postgres",
            {
                "podSelector": {"matchLabels": {NAME_LABEL: "postgres"}},
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [{"from": [clients], "ports": _tcp(POSTGRES_PORT)}],
                "egress": [],
            },
            DEV_POSTGRES_LABELS,
        ),
    ]


def _dev_files(all_workloads: list[Workload]) -> list[File]:
    postgres = File(
        "overlays/dev/postgres.yaml",
        tuple(dev_postgres(all_workloads)),
        "compose's postgres:16 for a laptop cluster (kind, minikube): not for production.",
    )
    smaller = [
        {"op": "replace", "path": "/spec/minReplicas", "value": 1},
        {"op": "replace", "path": "/spec/maxReplicas", "value": DEV_MAX_REPLICAS},
    ]
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": NAMESPACE,
        "resources": ["../../base", "postgres.yaml"],
        "images": _images(all_workloads, production=False),
        "secretGenerator": [
            {
                "name": SECRET,
                "envs": [SECRETS_ENV_FILE],
                # The NATS Helm release reads this Secret by its plain name.
                "options": {"disableNameSuffixHash": True},
            },
            {"name": SIGNING_KEY_SECRET, "files": [f"{SIGNING_KEY_FILE}={SIGNING_KEY_FILE}"]},
        ],
        "patches": [
            _json_patch({"kind": "HorizontalPodAutoscaler"}, smaller),
            _json_patch(
                {"kind": "ScaledObject"},
                [{"op": "replace", "path": "/spec/maxReplicaCount", "value": DEV_MAX_REPLICAS}],
            ),
            _json_patch(
                {"kind": "Deployment", "labelSelector": f"{DATABASE_LABEL}=true"},
                [
                    {
                        "op": "add",
                        "path": "/spec/template/spec/containers/0/env/-",
                        "value": {
                            "name": "STORYCORE_DATABASE_POOL_SIZE",
                            "value": str(DEV_POOL_SIZE),
                        },
                    }
                ],
            ),
            _json_patch(
                {"kind": "Job", "name": PROVISION_JOB},
                [
                    {
                        "op": "replace",
                        "path": "/spec/template/spec/containers/0/env/"
                        f"{_provision_replicas_index()}",
                        "value": {"name": NATS_REPLICAS_SETTING, "value": "1"},
                    }
                ],
            ),
        ],
    }
    budget = connection_budget(
        all_workloads, pool_size=DEV_POOL_SIZE, max_replicas=DEV_MAX_REPLICAS
    )
    comment = "\n".join(
        [
            "StoryCore on a laptop cluster (kind, minikube). The Secrets come from two",
            "git-ignored files:",
            "  python3 storycore.py kubernetes-secrets --out deploy/kubernetes/overlays/dev",
            "NATS, one server (the provisioning Job keeps one copy of each stream):",
            "  helm install nats nats/nats -n storycore \\",
            "    -f deploy/kubernetes/nats/values.yaml -f deploy/kubernetes/nats/values-dev.yaml",
            f"Pools of {DEV_POOL_SIZE}, at most {DEV_MAX_REPLICAS} replicas: at most"
            f" {budget.direct_total} connections (pools {budget.pooled},",
            f"sessions {budget.sessions}, migrations {budget.migrations}) < the dev Postgres's"
            f" max_connections {DEV_POSTGRES_MAX_CONNECTIONS}.",
        ]
    )
    return [postgres, File("overlays/dev/kustomization.yaml", (kustomization,), comment)]


def _provision_replicas_index() -> int:
    env = provision_job()["spec"]["template"]["spec"]["containers"][0]["env"]
    return next(i for i, e in enumerate(env) if e["name"] == NATS_REPLICAS_SETTING)


def db_password_key(role: str) -> str:
    """``VIDEO_EDITOR_DB_PASSWORD``: compose's name for a role's password."""
    return f"{role.upper()}_DB_PASSWORD"


def role_secret(role: str) -> str:
    """The basic-auth Secret CloudNativePG sets the role's password from."""
    return f"storycore-db-{role.replace('_', '-')}"


CNPG_API = "postgresql.cnpg.io/v1"
PART_OF_LABELS = {"app.kubernetes.io/part-of": PART_OF}


def _cnpg_cluster(all_workloads: list[Workload]) -> Manifest:
    """Three instances; one login role per service whose password CloudNativePG takes from
    the role's basic-auth Secret, capped at what the Pooler and its migrations need."""
    roles = [
        {
            "name": role,
            "ensure": "present",
            "login": True,
            "inherit": True,
            "connectionLimit": role_connection_limit(all_workloads, role),
            "passwordSecret": {"name": role_secret(role)},
        }
        for role in database_roles(all_workloads)
    ]
    parameters = {"max_connections": str(CNPG_MAX_CONNECTIONS), "timezone": "UTC"}
    return {
        "apiVersion": CNPG_API,
        "kind": "Cluster",
        "metadata": _metadata(CNPG_CLUSTER, PART_OF_LABELS),
        "spec": {
            "instances": CNPG_INSTANCES,
            "primaryUpdateStrategy": "unsupervised",
            "storage": {"size": "50Gi"},
            "postgresql": {"parameters": parameters},
            "bootstrap": {"initdb": {"database": DATABASE_NAME, "owner": DATABASE_NAME}},
            "managed": {"roles": roles},
            "resources": {
                "requests": {"cpu": "500m", "memory": "1Gi"},
                "limits": {"cpu": "2", "memory": "4Gi"},
            },
        },
    }


def _cnpg_database(all_workloads: list[Workload]) -> Manifest:
    """init-roles.sh's schemas: each owned by the role of the same name, nothing else. New
    schemas grant nothing to PUBLIC and PostgreSQL >= 15 no longer lets PUBLIC create in
    "public", so its revokes need no counterpart; the database belongs to a role no service
    uses."""
    schemas = [
        {"name": role, "owner": role, "ensure": "present"} for role in database_roles(all_workloads)
    ]
    return {
        "apiVersion": CNPG_API,
        "kind": "Database",
        "metadata": _metadata(f"{CNPG_CLUSTER}-{DATABASE_NAME}", PART_OF_LABELS),
        "spec": {
            "cluster": {"name": CNPG_CLUSTER},
            "name": DATABASE_NAME,
            "owner": DATABASE_NAME,
            "databaseReclaimPolicy": "retain",
            "schemas": schemas,
        },
    }


def _cnpg_pooler(all_workloads: list[Workload]) -> Manifest:
    roles = len(database_roles(all_workloads))
    parameters = {
        "default_pool_size": str(POOLER_DEFAULT_POOL_SIZE),
        "max_db_connections": str(POOLER_DEFAULT_POOL_SIZE * roles),
        "max_client_conn": str(pooler_max_client_connections(all_workloads)),
    }
    return {
        "apiVersion": CNPG_API,
        "kind": "Pooler",
        "metadata": _metadata(CNPG_POOLER, PART_OF_LABELS),
        "spec": {
            "cluster": {"name": CNPG_CLUSTER},
            "instances": POOLER_INSTANCES,
            "type": "rw",
            "pgbouncer": {"poolMode": "transaction", "parameters": parameters},
        },
    }


CNPG_INSTANCES_PEER = {"podSelector": {"matchLabels": {"cnpg.io/cluster": CNPG_CLUSTER}}}
CNPG_POOLER_PEER = {"podSelector": {"matchLabels": {"cnpg.io/poolerName": CNPG_POOLER}}}


def _cnpg_network_policies(all_workloads: list[Workload]) -> list[Manifest]:
    """The cluster's pods (instances, bootstrap Jobs) take 5432 from each other, the Pooler
    and the services' sessions, and the operator on the instance manager's port; the Pooler's
    pods take the services' pools. Both watch the Kubernetes API."""
    database_users = _pods(w.name for w in all_workloads if w.uses_database)
    kubernetes_api = {"ports": _tcp(443, 6443)}
    to_instances = {"to": [CNPG_INSTANCES_PEER], "ports": _tcp(POSTGRES_PORT)}
    return [
        _policy(
            "postgres-cluster",
            {
                "podSelector": CNPG_INSTANCES_PEER["podSelector"],
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [
                    {
                        "from": [CNPG_INSTANCES_PEER, CNPG_POOLER_PEER, database_users],
                        "ports": _tcp(POSTGRES_PORT),
                    },
                    {"from": [_namespace_peer(CNPG_NAMESPACE)], "ports": _tcp(8000)},
                ],
                "egress": [to_instances, kubernetes_api],
            },
        ),
        _policy(
            "postgres-pooler",
            {
                "podSelector": CNPG_POOLER_PEER["podSelector"],
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [{"from": [database_users], "ports": _tcp(POSTGRES_PORT)}],
                "egress": [to_instances, kubernetes_api],
            },
        ),
    ]


def cnpg_documents(all_workloads: list[Workload]) -> list[Manifest]:
    """Production's PostgreSQL with deploy/postgres/init-roles.sh's shape, and its Pooler."""
    return [
        _cnpg_cluster(all_workloads),
        _cnpg_database(all_workloads),
        _cnpg_pooler(all_workloads),
        *_cnpg_network_policies(all_workloads),
    ]


def _direct_url_env(workload: Workload) -> Manifest:
    key = f"{workload.env_prefix}DATABASE_DIRECT_URL"
    return {"name": key, "valueFrom": secret_ref(key)}


def pgbouncer_patch(workload: Workload) -> Manifest:
    """The pool through the Pooler (DATABASE_URL there, statement caches off), and a session
    straight to the primary (DATABASE_DIRECT_URL) for migrations, the outbox relay's lock and
    LISTEN, and readiness. The settings refuse the first without the second."""
    pgbouncer = {"name": f"{workload.env_prefix}DATABASE_PGBOUNCER", "value": "true"}
    direct = _direct_url_env(workload)
    pod = {
        "initContainers": [{"name": "migrate", "env": [direct]}],
        "containers": [{"name": workload.name, "env": [direct, pgbouncer]}],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": workload.name},
        "spec": {"template": {"spec": pod}},
    }


def pgbouncer_patches(all_workloads: list[Workload]) -> list[Manifest]:
    return [pgbouncer_patch(w) for w in all_workloads if w.uses_database]


def direct_url_key(url_key: str) -> str:
    """``PROJECTS_DATABASE_URL`` → ``PROJECTS_DATABASE_DIRECT_URL`` (the primary, no pooler)."""
    return url_key.removesuffix("URL") + "DIRECT_URL"


def _production_files(all_workloads: list[Workload]) -> list[File]:
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": NAMESPACE,
        "resources": ["../../base", "postgres.yaml"],
        "images": _images(all_workloads, production=True),
        "patches": [
            {"path": "pgbouncer-patch.yaml"},
            _json_patch(
                {"kind": "NetworkPolicy", "name": "allow-postgres"},
                [
                    {
                        "op": "add",
                        "path": "/spec/egress/0/to",
                        "value": [CNPG_INSTANCES_PEER, CNPG_POOLER_PEER],
                    }
                ],
            ),
            _json_patch(
                {"kind": "Middleware", "name": "cors"},
                [
                    {
                        "op": "replace",
                        "path": "/spec/headers/accessControlAllowOriginList",
                        "value": list(PRODUCTION_CORS_ORIGINS),
                    }
                ],
            ),
        ],
    }
    comment = "\n".join(
        [
            "StoryCore in production: CloudNativePG (3 instances) behind its PgBouncer Pooler,",
            "NATS from its Helm chart (deploy/kubernetes/nats/values.yaml), images from your",
            f"registry ({PRODUCTION_REGISTRY} is a placeholder), your frontend's CORS origin.",
            "",
            "Nothing here holds a secret value. Create them in namespace storycore (kubectl",
            "create secret, or an external secrets operator):",
            f"  {SECRET}           the env file of `python3 storycore.py kubernetes-secrets",
            f"                              --postgres {CNPG_POOLER}:{POSTGRES_PORT}",
            f"                              --postgres-direct {CNPG_CLUSTER}-rw:{POSTGRES_PORT}`",
            f"  {SIGNING_KEY_SECRET}  key {SIGNING_KEY_FILE}: an Ed25519 private key (PEM)",
            "  storycore-db-<role>         kubernetes.io/basic-auth, username <role>, password",
            "                              its <ROLE>_DB_PASSWORD (CloudNativePG sets it)",
            "",
            "The services' pools go through the Pooler (<PREFIX>DATABASE_URL, with",
            "<PREFIX>DATABASE_PGBOUNCER=true); what needs a session goes to the primary",
            "(<PREFIX>DATABASE_DIRECT_URL): migrations (here in the init container too) and the",
            "outbox relay with their advisory locks, the relay's LISTEN, the readiness probe.",
            "",
            budget_text(all_workloads, production=True),
        ]
    )
    return [
        File(
            "overlays/production/postgres.yaml",
            tuple(cnpg_documents(all_workloads)),
            "CloudNativePG (>= 1.26: declarative schemas) with deploy/postgres/init-roles.sh's"
            " roles and schemas,\nand its PgBouncer Pooler in transaction mode.",
        ),
        File(
            "overlays/production/pgbouncer-patch.yaml",
            tuple(pgbouncer_patches(all_workloads)),
            "Through the Pooler: <PREFIX>DATABASE_PGBOUNCER=true (no statement caches, no\n"
            "search_path at connect) and <PREFIX>DATABASE_DIRECT_URL, the primary, for sessions.",
        ),
        File("overlays/production/kustomization.yaml", (kustomization,), comment),
    ]


def _nats_files() -> list[File]:
    return [
        File(
            "nats/values.yaml",
            (nats_values(),),
            'Values for the official NATS Helm chart (release "nats", namespace storycore):\n'
            "  helm install nats nats/nats -n storycore -f deploy/kubernetes/nats/values.yaml\n"
            "The authorization block is deploy/nats/nats.conf's (the bus declaration): one user"
            " per\nidentity, passwords from the storycore-secrets Secret ($NATS_<USER>_PASSWORD).\n"
            "Streams and buckets keep 3 replicas (the nats-provision Job's"
            f" {NATS_REPLICAS_SETTING}).",
        ),
        File(
            "nats/values-dev.yaml",
            (nats_values_dev(),),
            "On top of values.yaml for the dev overlay: one server, a small volume.",
        ),
    ]


def files(table: RouteTable | None = None) -> list[File]:
    """Everything under deploy/kubernetes, by path."""
    table = table or load_route_table()
    all_workloads = workloads(table)
    return [
        *_base_files(table, all_workloads),
        *_dev_files(all_workloads),
        *_production_files(all_workloads),
        *_nats_files(),
    ]


def rendered(root: Path = KUBE_DIR) -> dict[Path, str]:
    return {root / file.path: file.render() for file in files()}


def write(root: Path = KUBE_DIR) -> list[Path]:
    """Write every generated file and remove YAML files this module no longer makes (the
    git-ignored secrets stay)."""
    wanted = rendered(root)
    for path in _existing_yaml(root):
        if path not in wanted:
            path.unlink()
    for path, text in wanted.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return sorted(wanted)


def _existing_yaml(root: Path) -> Iterator[Path]:
    if root.exists():
        yield from (p for p in root.rglob("*") if p.suffix in (".yaml", ".yml"))


# -- secrets --------------------------------------------------------------------------------------


def secret_values(
    all_workloads: list[Workload], *, postgres: str, postgres_direct: str
) -> dict[str, str]:
    """Every key the manifests read from storycore-secrets, with fresh random values.

    URL-safe tokens, so they need no escaping inside the URLs built from them.
    """
    values = {"POSTGRES_PASSWORD": secrets.token_urlsafe(32)}
    for workload in all_workloads:
        if not workload.uses_database or workload.role != "api":
            continue
        role = workload.package
        password = secrets.token_urlsafe(32)
        url_key = f"{workload.env_prefix}DATABASE_URL"
        values[db_password_key(role)] = password
        values[url_key] = f"postgresql://{role}:{password}@{postgres}/{DATABASE_NAME}"
        values[direct_url_key(url_key)] = (
            f"postgresql://{role}:{password}@{postgres_direct}/{DATABASE_NAME}"
        )
    for variable in nats_password_variables():
        values[variable] = secrets.token_urlsafe(32)
    values["STORYCORE_INTERNAL_TOKEN"] = secrets.token_urlsafe(32)
    values["STORYCORE_MEDIA_SIGNING_KEY"] = secrets.token_urlsafe(32)
    return values


def secrets_env(
    *, postgres: str = f"postgres:{POSTGRES_PORT}", postgres_direct: str | None = None
) -> str:
    """The env file of storycore-secrets (kustomize secretGenerator, or kubectl create secret
    generic --from-env-file). Optional keys (LLM_OPENAI_API_KEY, LLM_ANTHROPIC_API_KEY) may be
    added by hand."""
    values = secret_values(
        workloads(), postgres=postgres, postgres_direct=postgres_direct or postgres
    )
    lines = [
        "# storycore-secrets, made by `python3 storycore.py kubernetes-secrets`. Never commit it.",
        "# Optional: LLM_OPENAI_API_KEY=..., LLM_ANTHROPIC_API_KEY=...",
        *(f"{key}={values[key]}" for key in sorted(values)),
    ]
    return "\n".join(lines) + "\n"


def signing_key_pem() -> bytes:
    from auth.keys import generate_private_key_pem

    return generate_private_key_pem()


def write_secrets(
    directory: Path, *, postgres: str, postgres_direct: str | None = None
) -> list[Path]:
    """The dev overlay's two git-ignored files. Never overwritten: Postgres and NATS keep the
    passwords they were first given in their volumes."""
    targets = [directory / name for name in DEV_SECRET_FILES]
    if existing := [p for p in targets if p.exists()]:
        raise FileExistsError(", ".join(str(p) for p in existing))
    directory.mkdir(parents=True, exist_ok=True)
    env_file, key_file = targets
    env_file.write_text(secrets_env(postgres=postgres, postgres_direct=postgres_direct))
    env_file.chmod(0o600)
    key_file.write_bytes(signing_key_pem())
    key_file.chmod(0o600)
    return targets


# -- YAML ----------------------------------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    """Block style, keys in the order written (Kubernetes reads apiVersion and kind first),
    multi-line strings as literal blocks, and no anchors: a reader sees every value where it
    applies."""

    def ignore_aliases(self, data: Any) -> bool:  # noqa: ARG002 - the same for every value
        return True


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def _dump(document: Any) -> str:
    return yaml.dump(
        document, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=4096
    )
