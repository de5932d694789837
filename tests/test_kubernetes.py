"""deploy/kubernetes, parsed and checked without a cluster: generated from the route table,
compose and the bus declaration, valid for Kubernetes 1.35, and holding no secret value.

Built-in kinds are validated with kubernetes-validate against the 1.35 schemas in strict mode
(an unknown field fails). The custom resources (KEDA, Traefik, CloudNativePG) are checked for
the fields their operators require. When kubectl is installed, both overlays are also built
with its kustomize and the result validated.
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from storycore_devstack import kubernetes as kube
from storycore_devstack.nats_config import Variable, parse_conf, password_variable
from storycore_devstack.routes import (
    FALLBACK,
    GATEWAY_IDLE_CONN_TIMEOUT,
    REPO_ROOT,
    SERVICE_KEEP_ALIVE_SECONDS,
    load_route_table,
)
from storycore_shared.events.bus import BUS

KUBERNETES_VERSION = "1.35"
TABLE = load_route_table()
KUBE_DIR = kube.KUBE_DIR
BASE = KUBE_DIR / "base"
DEV = KUBE_DIR / "overlays" / "dev"
PRODUCTION = KUBE_DIR / "overlays" / "production"
IGNORED = {DEV / name for name in kube.DEV_SECRET_FILES}
BUILTIN_GROUPS = {"v1", "apps", "batch", "autoscaling", "policy", "networking.k8s.io"}
CUSTOM_KINDS = {
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("traefik.io/v1alpha1", "IngressRoute"),
    ("traefik.io/v1alpha1", "Middleware"),
    ("traefik.io/v1alpha1", "ServersTransport"),
    ("postgresql.cnpg.io/v1", "Cluster"),
    ("postgresql.cnpg.io/v1", "Database"),
    ("postgresql.cnpg.io/v1", "Pooler"),
}
WORKERS = [f"{entry.name}-worker" for entry in TABLE.services.values() if entry.worker]
DATABASE_SERVICES = [entry for entry in TABLE.services.values() if not entry.is_fallback]


# -- reading the committed tree ---------------------------------------------------------------


def load(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def kustomization(folder: Path) -> dict[str, Any]:
    return load(folder / "kustomization.yaml")[0]


def resources(folder: Path) -> list[dict[str, Any]]:
    """The full objects a kustomization lists (its bases' too), before patches."""
    found: list[dict[str, Any]] = []
    for entry in kustomization(folder).get("resources", []):
        target = (folder / entry).resolve()
        found += resources(target) if target.is_dir() else load(target)
    return found


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def walk(value: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) pair of nested mappings and lists."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield str(key), item
            yield from walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk(item)


def committed_files() -> set[Path]:
    return {p for p in KUBE_DIR.rglob("*") if p.is_file() and p not in IGNORED}


@pytest.fixture(scope="module")
def base() -> list[dict[str, Any]]:
    return resources(BASE)


@pytest.fixture(scope="module")
def deployments(base: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return by_kind(base, "Deployment")


def pod(deployment: dict[str, Any]) -> dict[str, Any]:
    return dict(deployment["spec"]["template"]["spec"])


def main_container(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = pod(deployment)["containers"]
    return dict(container)


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in container.get("env", [])}


def validate(obj: dict[str, Any]) -> None:
    kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def is_builtin(obj: dict[str, Any]) -> bool:
    api_version = obj["apiVersion"]
    return api_version == "v1" or api_version.split("/")[0] in BUILTIN_GROUPS


# -- generated == committed ---------------------------------------------------------------------


def test_the_committed_manifests_are_what_the_generator_makes():
    """Regenerate with `python3 storycore.py kubernetes` and commit the result."""
    wanted = kube.rendered()
    stale = [p for p, text in wanted.items() if not p.exists() or p.read_text() != text]
    assert not stale, f"stale: {[str(p.relative_to(REPO_ROOT)) for p in stale]}"
    extra = committed_files() - set(wanted)
    assert not extra, f"not generated: {sorted(str(p.relative_to(REPO_ROOT)) for p in extra)}"


# -- every manifest parses and validates ----------------------------------------------------------


def test_every_builtin_object_validates_against_kubernetes_1_35():
    """Every object the base and both overlays list: built-in kinds against the schemas,
    and nothing of a kind the checks below do not know."""
    seen: dict[str, int] = {}
    for folder in (BASE, DEV, PRODUCTION):
        for obj in resources(folder):
            key = (obj["apiVersion"], obj["kind"])
            if is_builtin(obj):
                validate(obj)
            else:
                assert key in CUSTOM_KINDS, f"unchecked kind {key}"
            seen[obj["kind"]] = seen.get(obj["kind"], 0) + 1
    assert {kind for _, kind in CUSTOM_KINDS} <= set(seen)
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "NetworkPolicy"} <= set(seen)
    for path in sorted(committed_files()):  # patches and Helm values parse too
        assert load(path), path


def test_the_validator_rejects_a_broken_deployment(deployments: dict[str, dict[str, Any]]):
    """The schema check is live: a misspelt field or a missing container fails it."""
    validate(deployments["projects"])
    misspelt = yaml.safe_load(yaml.safe_dump(deployments["projects"]))
    misspelt["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(misspelt)
    empty = yaml.safe_load(yaml.safe_dump(deployments["projects"]))
    del empty["spec"]["template"]["spec"]["containers"]
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(empty)


# -- the custom resources ------------------------------------------------------------------------


def test_scaled_objects_have_what_keda_requires(
    base: list[dict[str, Any]], deployments: dict[str, dict[str, Any]]
):
    scaled = by_kind(base, "ScaledObject")
    assert scaled
    for name, obj in scaled.items():
        spec = obj["spec"]
        target = spec["scaleTargetRef"]
        assert target["name"] in deployments, name
        assert target.get("kind", "Deployment") == "Deployment"
        assert 0 <= spec["minReplicaCount"] <= spec["maxReplicaCount"], name
        assert spec["triggers"], name
        for trigger in spec["triggers"]:
            assert trigger["type"] == "nats-jetstream"
            metadata = trigger["metadata"]
            required = {"natsServerMonitoringEndpoint", "account", "stream", "consumer"}
            assert required <= set(metadata), (name, metadata)
            assert all(isinstance(v, str) for v in metadata.values()), "metadata is strings"
            assert re.fullmatch(r"[1-9]\d*", metadata["lagThreshold"]), name
            assert metadata["account"] == "$G"  # users without accounts: the global one
            host, port = metadata["natsServerMonitoringEndpoint"].rsplit(":", 1)
            assert host.startswith(f"{kube.NATS_RELEASE}-headless."), "KEDA needs pod names"
            assert int(port) == kube.NATS_MONITOR_PORT


def test_ingress_routes_and_middlewares_reference_what_exists(base: list[dict[str, Any]]):
    services = by_kind(base, "Service")
    middlewares = by_kind(base, "Middleware")
    transports = by_kind(base, "ServersTransport")
    routes = by_kind(base, "IngressRoute")
    assert routes
    for name, route in routes.items():
        spec = route["spec"]
        assert spec["entryPoints"], name
        for rule in spec["routes"]:
            assert rule["kind"] == "Rule"
            assert rule["match"]
            assert isinstance(rule["priority"], int)
            for middleware in rule.get("middlewares", []):
                assert middleware["name"] in middlewares, middleware
            for target in rule["services"]:
                service = services[target["name"]]
                assert target["port"] in {p["port"] for p in service["spec"]["ports"]}
                assert target["serversTransport"] in transports
    kinds = {"headers", "chain", "errors", "buffering", "compress"}
    for name, middleware in middlewares.items():
        (kind,) = middleware["spec"]  # exactly one middleware per object
        assert kind in kinds, name
        if kind == "chain":
            for link in middleware["spec"]["chain"]["middlewares"]:
                assert link["name"] in middlewares, (name, link)
        if kind == "errors":
            errors = middleware["spec"]["errors"]
            assert errors["service"]["name"] in services
            assert errors["status"]
            assert errors["query"]


def test_the_servers_transport_keeps_compose_timeouts(base: list[dict[str, Any]]):
    """Traefik drops idle upstream connections before uvicorn does (no POST into a closing
    socket), in Kubernetes as under compose."""
    (transport,) = by_kind(base, "ServersTransport").values()
    timeouts = transport["spec"]["forwardingTimeouts"]
    flags = kube.load_compose()["traefik"]["command"]
    for key, value in timeouts.items():
        assert f"--serversTransport.forwardingTimeouts.{key}={value}" in flags
    assert timeouts["idleConnTimeout"] == GATEWAY_IDLE_CONN_TIMEOUT
    assert int(timeouts["idleConnTimeout"].removesuffix("s")) < SERVICE_KEEP_ALIVE_SECONDS


def test_the_cloudnativepg_cluster_pooler_and_database(deployments: dict[str, dict[str, Any]]):
    objects = resources(PRODUCTION)
    (cluster,) = by_kind(objects, "Cluster").values()
    (pooler,) = by_kind(objects, "Pooler").values()
    (database,) = by_kind(objects, "Database").values()
    name = cluster["metadata"]["name"]
    spec = cluster["spec"]
    assert spec["instances"] == 3
    assert spec["storage"]["size"]
    roles = {r["name"]: r for r in spec["managed"]["roles"]}
    packages = {e.app.split(".")[0] for e in DATABASE_SERVICES}
    assert set(roles) == packages, "one role per service, as deploy/postgres/init-roles.sh"
    for role, entry in roles.items():
        assert entry["login"] is True
        assert entry["ensure"] == "present"
        assert entry["passwordSecret"]["name"] == kube.role_secret(role)
    init_roles = (REPO_ROOT / "deploy" / "postgres" / "init-roles.sh").read_text()
    assert set(re.search(r"for service in ([^;]+);", init_roles)[1].split()) == packages
    assert pooler["spec"]["cluster"]["name"] == name
    assert pooler["spec"]["type"] == "rw"
    assert pooler["spec"]["pgbouncer"]["poolMode"] == "transaction"
    assert pooler["metadata"]["name"] != name, "a Pooler may not share its cluster's name"
    parameters = pooler["spec"]["pgbouncer"]["parameters"]
    assert all(isinstance(value, str) for value in parameters.values()), "PgBouncer takes strings"
    assert database["spec"]["cluster"]["name"] == name
    assert {"name", "owner"} <= set(database["spec"])
    schemas = {s["name"]: s["owner"] for s in database["spec"]["schemas"]}
    assert schemas == {role: role for role in roles}, "each role owns its schema"
    for deployment in deployments.values():  # the URLs the secrets command writes point here
        assert deployment["metadata"]["name"] not in {name, pooler["metadata"]["name"]}


# -- the route table ------------------------------------------------------------------------------


def test_ingress_routes_are_exactly_the_route_table(base: list[dict[str, Any]]):
    routes = by_kind(base, "IngressRoute")
    committed = [
        (target["name"], rule["match"], rule["priority"], [m["name"] for m in rule["middlewares"]])
        for route in routes.values()
        for rule in route["spec"]["routes"]
        for target in rule["services"]
    ]
    table = [
        (entry.name, r.rule, r.priority, [m.removesuffix("@file") for m in r.middlewares])
        for entry in TABLE.services.values()
        for r in entry.gateway_routes  # the table's routes and their read twins
    ]
    assert sorted(committed) == sorted(table)
    for route in routes.values():
        assert route["spec"]["entryPoints"] == [TABLE.entrypoint]


def test_middlewares_are_those_of_dynamic_yml(base: list[dict[str, Any]]):
    text = (REPO_ROOT / "gateway" / "dynamic.yml").read_text()
    rendered = re.sub(
        r"^\{\{-? range .*?\}\}\n(.*?)\n\{\{- end \}\}", '          - "x"', text, flags=re.M | re.S
    )
    defined = yaml.safe_load(re.sub(r"\{\{.*?\}\}", "1", rendered))["http"]["middlewares"]
    middlewares = by_kind(base, "Middleware")
    assert set(middlewares) == set(defined)
    for name, definition in defined.items():
        spec = middlewares[name]["spec"]
        assert set(spec) == set(definition), name
        if "chain" in definition:
            links = [m["name"] for m in spec["chain"]["middlewares"]]
            assert links == definition["chain"]["middlewares"], name
        if "headers" in definition and name != "cors":
            assert spec["headers"] == definition["headers"], name
    compressed = middlewares["compress"]["spec"]["compress"]["includedContentTypes"]
    assert "text/event-stream" not in compressed
    limit = middlewares["body-limit"]["spec"]["buffering"]["maxRequestBodyBytes"]
    compose_default = re.search(r"STORYCORE_MAX_BODY_BYTES:-(\d+)", text_of_compose())
    assert compose_default is not None
    assert limit == int(compose_default[1])
    origins = middlewares["cors"]["spec"]["headers"]["accessControlAllowOriginList"]
    assert {"http://localhost:5173", "http://127.0.0.1:5173"} <= set(origins)


def text_of_compose() -> str:
    return (REPO_ROOT / "docker-compose.yml").read_text()


# -- kustomize structure and secrets ---------------------------------------------------------------


def test_kustomizations_list_files_that_exist_and_overlays_build_on_the_base():
    for folder in (BASE, DEV, PRODUCTION):
        spec = kustomization(folder)
        assert spec["namespace"] == kube.NAMESPACE, "generated Secrets need it too"
        for entry in spec.get("resources", []):
            target = folder / entry
            assert target.is_file() or (target / "kustomization.yaml").is_file(), target
        for patch in spec.get("patches", []):
            assert "path" in patch or ("patch" in patch and "target" in patch), patch
            if "path" in patch:
                assert (folder / patch["path"]).is_file(), patch
    for overlay in (DEV, PRODUCTION):
        assert "../../base" in kustomization(overlay)["resources"]
    generated = [
        source.split("=")[-1]
        for generator in kustomization(DEV)["secretGenerator"]
        for source in generator.get("envs", []) + generator.get("files", [])
    ]
    assert sorted(generated) == sorted(kube.DEV_SECRET_FILES)
    ignored = (REPO_ROOT / ".gitignore").read_text().splitlines()
    for name in generated:
        assert str((DEV / name).relative_to(REPO_ROOT)) in ignored, f"{name} must be git-ignored"
    assert "secretGenerator" not in kustomization(PRODUCTION), "production creates its own"


# A setting that holds a secret (``password``, ``NATS_AUTH_PASSWORD``, ``..._API_KEY``), not
# one that names where a secret is (``secretName``, ``passwordSecret``, ``secretKeyRef``).
_SECRET_NAME = re.compile(r"(?i)(^|_)(password|passwd|secret|token|api_?key|private_?key)$")
_REFERENCE = re.compile(r"^(<< \$\w+ >>|\$\(\w+\))$")
_INLINE_CREDENTIALS = re.compile(r"://[^/\s:@]+:(?P<password>[^@\s]+)@")


def test_no_secret_value_is_committed():
    """No Secret object carries data; every password-like setting is a reference; no URL
    holds a literal password and no key material sits in a file."""
    for path in sorted(committed_files()):
        text = path.read_text()
        assert "-----BEGIN" not in text, path
        for match in _INLINE_CREDENTIALS.finditer(text):
            assert match["password"].startswith("$("), (path, match[0])
        for doc in load(path):
            if isinstance(doc, dict) and doc.get("kind") == "Secret":
                assert not doc.get("data"), path
                assert not doc.get("stringData"), path
            for key, value in walk(doc):
                if _SECRET_NAME.search(key) and isinstance(value, str):
                    assert _REFERENCE.match(value), (path, key, value)
                if key == "env" and isinstance(value, list):
                    for entry in value:
                        if _SECRET_NAME.search(entry["name"]) and "valueFrom" not in entry:
                            assert _REFERENCE.match(str(entry.get("value", ""))), (path, entry)


def secret_key_refs(objects: list[dict[str, Any]]) -> set[tuple[str, str, bool]]:
    return {
        (value["name"], value["key"], bool(value.get("optional")))
        for obj in objects
        for key, value in walk(obj)
        if key == "secretKeyRef"
    }


def test_every_secret_reference_is_a_key_the_secrets_command_makes():
    values = kube.secret_values(kube.workloads(), postgres="db:5432", postgres_direct="db:5432")
    objects = resources(DEV) + resources(PRODUCTION) + load(PRODUCTION / "pgbouncer-patch.yaml")
    objects += load(KUBE_DIR / "nats" / "values.yaml")
    refs = secret_key_refs(objects)
    assert refs
    for name, key, optional in refs:
        assert name == kube.SECRET, (name, key)
        assert optional or key in values, f"{key} is read but never generated"
    volumes = {
        v["secretName"]
        for _, v in walk(resources(BASE))
        if isinstance(v, dict) and "secretName" in v
    }
    assert volumes == {kube.SIGNING_KEY_SECRET}


def test_the_secrets_env_file_is_complete_random_and_never_replaced(tmp_path: Path):
    first = kube.secrets_env()
    pairs = dict(line.split("=", 1) for line in first.splitlines() if not line.startswith("#"))
    assert all(re.fullmatch(r"[A-Za-z0-9_\-:/@.]{32,}", v) for v in pairs.values()), pairs
    passwords = {k: v for k, v in pairs.items() if k.endswith("PASSWORD")}
    assert len(set(passwords.values())) == len(passwords), "every identity its own password"
    for identity in BUS:
        assert password_variable(identity.user) in pairs
    for entry in DATABASE_SERVICES:
        prefix = kube.service_env_prefix(entry.app.split(".")[0])
        role = entry.app.split(".")[0]
        url = pairs[f"{prefix}DATABASE_URL"]
        assert (
            url
            == f"postgresql://{role}:{pairs[kube.db_password_key(role)]}@postgres:5432/storycore"
        )
    again = kube.secrets_env().splitlines()
    fresh = {line.split("=", 1)[1] for line in again if not line.startswith("#")}
    assert not fresh & set(pairs.values()), "fresh values on every run"
    written = kube.write_secrets(tmp_path, postgres="postgres:5432")
    assert [p.name for p in written] == list(kube.DEV_SECRET_FILES)
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    from auth.keys import KeyRing

    KeyRing.from_pem(written[1].read_bytes())  # a key auth can sign with
    with pytest.raises(FileExistsError):
        kube.write_secrets(tmp_path, postgres="postgres:5432")


# -- workers, APIs, Deployments --------------------------------------------------------------------


def test_every_worker_scales_on_its_own_consumers(base: list[dict[str, Any]]):
    scaled = by_kind(base, "ScaledObject")
    assert set(scaled) == set(WORKERS)
    streams = {spec.name for spec in BUS.streams}
    for entry in TABLE.services.values():
        if not entry.worker:
            continue
        name = f"{entry.name}-worker"
        triggers = {
            (t["metadata"]["stream"], t["metadata"]["consumer"])
            for t in scaled[name]["spec"]["triggers"]
        }
        granted = {(g.stream.name, g.durable) for g in BUS[name].consumes}
        assert triggers == granted, name
        assert {stream for stream, _ in triggers} <= streams
        module = importlib.import_module(entry.worker)
        durables = {v for k, v in vars(module).items() if k.endswith("CONSUMER")}
        assert durables, entry.worker
        assert durables == {consumer for _, consumer in triggers}, entry.worker
    assert ("AUDIO", "audio-worker") in {
        (t["metadata"]["stream"], t["metadata"]["consumer"])
        for t in scaled["audio-worker"]["spec"]["triggers"]
    }


def test_every_api_has_a_service_autoscaler_disruption_budget_and_network_policy(
    base: list[dict[str, Any]], deployments: dict[str, dict[str, Any]]
):
    services = by_kind(base, "Service")
    autoscalers = by_kind(base, "HorizontalPodAutoscaler")
    budgets = by_kind(base, "PodDisruptionBudget")
    policies = by_kind(base, "NetworkPolicy")
    for entry in TABLE.services.values():
        name = entry.name
        labels = deployments[name]["spec"]["template"]["metadata"]["labels"].items()
        assert services[name]["spec"]["selector"].items() <= labels, name
        (port,) = services[name]["spec"]["ports"]
        assert port["port"] == entry.container_port
        assert port["targetPort"] == "http"
        hpa = autoscalers[name]["spec"]
        assert hpa["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": name,
        }
        assert 1 <= hpa["minReplicas"] <= hpa["maxReplicas"]
        assert budgets[name]["spec"]["selector"]["matchLabels"].items() <= labels, name
        assert policies[name]["spec"]["podSelector"]["matchLabels"].items() <= labels, name
        assert "replicas" not in deployments[name]["spec"], "the HPA owns the count"
    for worker in WORKERS:
        assert {worker} <= set(budgets) & set(policies)
        assert worker not in services


def test_every_deployment_has_probes_resources_and_a_locked_down_security_context(
    deployments: dict[str, dict[str, Any]], base: list[dict[str, Any]]
):
    uid = re.search(r"--uid (\d+)", (REPO_ROOT / "services/projects/Dockerfile").read_text())
    assert uid is not None
    assert int(uid[1]) == kube.RUN_AS_USER
    pods = [pod(d) for d in deployments.values()]
    pods += [o["spec"]["template"]["spec"] for o in by_kind(base, "Job").values()]
    assert len(deployments) == len(TABLE.services) + len(WORKERS)
    for spec in pods:
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] == kube.RUN_AS_USER
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert spec["automountServiceAccountToken"] is False
        tmp = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
        for container in spec["containers"] + spec.get("initContainers", []):
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True
            assert security["allowPrivilegeEscalation"] is False
            assert security["capabilities"] == {"drop": ["ALL"]}
            assert any(
                m["mountPath"] == "/tmp" and m["name"] in tmp for m in container["volumeMounts"]
            )
            for resource in ("cpu", "memory"):
                assert container["resources"]["requests"][resource], container["name"]
                assert container["resources"]["limits"][resource], container["name"]
    for name, deployment in deployments.items():
        container = main_container(deployment)
        assert {"livenessProbe", "startupProbe"} <= set(container), name
        if name in TABLE.services:
            probe = container["readinessProbe"]["httpGet"]
            assert probe["path"] == TABLE.services[name].health_path
            assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
            assert {p["containerPort"] for p in container["ports"]} == {8000}
        else:
            assert "--healthcheck" in container["livenessProbe"]["exec"]["command"]


def test_deployments_mirror_compose(deployments: dict[str, dict[str, Any]]):
    compose = kube.load_compose()
    for name, deployment in deployments.items():
        service = compose[name]
        container = main_container(deployment)
        env = env_of(container)
        compose_env = {k: str(v) for k, v in (service.get("environment") or {}).items()}
        left_out = {k for k, v in compose_env.items() if re.fullmatch(r"\$\{\w+:-\}", v)}
        assert set(compose_env) - left_out <= set(env), name
        for key, value in compose_env.items():
            if key in left_out and key in env:  # an empty key: from the Secret, optional
                assert env[key]["valueFrom"]["secretKeyRef"]["optional"] is True
            elif "${" not in value:
                assert env[key]["value"] == value, (name, key)
            elif key.endswith("DATABASE_URL"):
                assert env[key]["valueFrom"]["secretKeyRef"]["key"] == key
        for secret in re.findall(r"\$\{(\w+):\?", " ".join(compose_env.values())):
            if not secret.endswith("_DB_PASSWORD"):  # inside a DATABASE_URL
                referenced = {
                    e["valueFrom"]["secretKeyRef"]["key"] for e in env.values() if "valueFrom" in e
                }
                assert secret in referenced, (name, secret)
        assert container.get("command") == service.get("command"), name
        dockerfile = service["build"]["dockerfile"]
        image = kube.image_name(name.removesuffix("-worker")) + ":latest"
        assert container["image"] == image, name
        package = image.split("/")[1].split(":")[0].replace("-", "_")
        folder = "gateway" if name == FALLBACK else f"services/{package}"
        assert dockerfile == f"{folder}/Dockerfile", name
        for key, value in compose_env.items():
            if key.endswith("NATS_URL"):
                user = re.match(r"nats://([^:]+):", value)[1]
                assert env[key]["value"].startswith(f"nats://{user}:$("), name


def test_network_policies_allow_only_the_call_graph(base: list[dict[str, Any]]):
    policies = by_kind(base, "NetworkPolicy")
    deny = policies["default-deny"]["spec"]
    assert deny["podSelector"] == {}
    assert set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert not {"ingress", "egress"} & set(deny)
    compose = kube.load_compose()
    for caller, callees in kube.CALLS.items():
        env = " ".join(str(v) for v in (compose[caller].get("environment") or {}).values())
        for callee in callees:
            assert f"http://{callee}:8000" in env, f"{caller} has no URL for {callee}"
        policy = policies[caller]["spec"]
        egress_pods = {
            name
            for rule in policy["egress"]
            for peer in rule["to"]
            for expression in peer["podSelector"]["matchExpressions"]
            for name in expression["values"]
        }
        assert egress_pods == set(callees), caller
        assert all(p["port"] == 8000 for rule in policy["egress"] for p in rule["ports"])
    for entry in TABLE.services.values():
        ingress = policies[entry.name]["spec"]["ingress"]
        namespaces = [
            peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
            for rule in ingress
            for peer in rule["from"]
            if "namespaceSelector" in peer
        ]
        assert namespaces == [kube.TRAEFIK_NAMESPACE], entry.name
        callers = {
            name
            for rule in ingress
            for peer in rule["from"]
            if "podSelector" in peer
            for name in peer["podSelector"]["matchExpressions"][0]["values"]
        }
        assert callers == set(kube.callers_of(entry.name)), entry.name
        if not entry.is_fallback and entry.name != "auth":
            assert "auth" in kube.CALLS[entry.name], "every API verifies tokens with the JWKS"
    for worker in WORKERS:
        assert policies[worker]["spec"]["ingress"] == [], "nothing calls a worker"
    selected = lambda name: set(  # noqa: E731
        policies[name]["spec"]["podSelector"]["matchExpressions"][0]["values"]
    )
    database = {w.name for w in kube.workloads() if w.uses_database}
    assert selected("allow-postgres") == database
    assert selected("allow-nats-clients") == {n for n in database if n in BUS} | {"nats-provision"}


# -- NATS ------------------------------------------------------------------------------------------


def test_the_nats_values_carry_the_bus_declaration():
    (values,) = load(KUBE_DIR / "nats" / "values.yaml")
    config = values["config"]
    assert config["cluster"] == {"enabled": True, "replicas": 3}
    assert config["jetstream"]["enabled"]
    assert config["jetstream"]["fileStore"]["enabled"]
    assert config["jetstream"]["merge"]["sync_interval"] == "always"
    assert config["monitor"] == {"enabled": True, "port": kube.NATS_MONITOR_PORT}
    users = config["merge"]["authorization"]["users"]
    conf = parse_conf((REPO_ROOT / "deploy" / "nats" / "nats.conf").read_text())
    assert [u["user"] for u in users] == [u["user"] for u in conf["authorization"]["users"]]
    for user, declared in zip(users, conf["authorization"]["users"], strict=True):
        assert user["permissions"] == declared["permissions"], user["user"]
        assert isinstance(declared["password"], Variable)
        assert user["password"] == f"<< ${declared['password'].name} >>"
    env = values["container"]["env"]
    assert set(env) == {password_variable(i.user) for i in BUS}
    for variable, entry in env.items():
        assert entry["valueFrom"]["secretKeyRef"] == {"name": kube.SECRET, "key": variable}
    (dev,) = load(KUBE_DIR / "nats" / "values-dev.yaml")
    assert dev["config"]["cluster"]["enabled"] is False


def test_streams_keep_three_replicas_but_one_in_dev(base: list[dict[str, Any]]):
    (job,) = by_kind(base, "Job").values()
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["python", "-m", "storycore_shared.events.provision"]
    env = container["env"]
    assert env_of(container)["STORYCORE_NATS_REPLICAS"]["value"] == "3"
    assert env_of(container)["STORYCORE_NATS_URL"]["value"].startswith("nats://provisioner:$(")
    (patch,) = [p for p in kustomization(DEV)["patches"] if p["target"].get("kind") == "Job"]
    (operation,) = yaml.safe_load(patch["patch"])
    index = int(operation["path"].rsplit("/", 1)[1])
    assert env[index]["name"] == "STORYCORE_NATS_REPLICAS"
    assert operation["value"] == {"name": "STORYCORE_NATS_REPLICAS", "value": "1"}


# -- Postgres: migrations, the Pooler, the connection budget ---------------------------------------


def test_migrations_run_in_an_init_container_of_each_database_deployment(
    deployments: dict[str, dict[str, Any]],
):
    for name, deployment in deployments.items():
        if name == FALLBACK:
            assert "initContainers" not in pod(deployment)
            continue
        (init,) = pod(deployment)["initContainers"]
        assert init["name"] == "migrate"
        assert init["image"] == main_container(deployment)["image"]
        command = init["command"]
        assert command[:2] == ["python", "-c"]
        compile(command[2], name, "exec")
        package = re.search(r"from (\w+)\.main import MIGRATIONS", command[2])[1]
        assert (importlib.import_module(f"{package}.main").MIGRATIONS / "versions").is_dir()
        schema = importlib.import_module(f"{package}.models").SCHEMA
        assert schema == package
        prefix = kube.service_env_prefix(package)
        (url,) = init["env"]
        assert url["name"] == f"{prefix}DATABASE_URL"
        # The service's own direct_database_url: DATABASE_DIRECT_URL when set.
        direct = f"os.environ.get('{prefix}DATABASE_DIRECT_URL') or os.environ['{url['name']}']"
        assert direct in command[2]


def test_production_pools_go_through_the_pooler_and_sessions_to_the_primary(
    deployments: dict[str, dict[str, Any]],
):
    patches = {p["metadata"]["name"]: p for p in load(PRODUCTION / "pgbouncer-patch.yaml")}
    assert set(patches) == {n for n in deployments if n != FALLBACK}
    for name, patch in patches.items():
        spec = patch["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        assert container["name"] == main_container(deployments[name])["name"]
        env = env_of(container)
        prefix = next(iter(env)).split("DATABASE_")[0]
        assert env[f"{prefix}DATABASE_PGBOUNCER"]["value"] == "true"
        direct = f"{prefix}DATABASE_DIRECT_URL"
        assert env[direct]["valueFrom"]["secretKeyRef"]["key"] == direct
        assert f"{prefix}DATABASE_URL" in env_of(main_container(deployments[name]))
        (init,) = spec["initContainers"]
        assert init["env"] == [env[direct]], "migrations take the primary, as the service does"


def fake_secret(key: str) -> str:
    if key.endswith("DIRECT_URL"):
        return "postgresql://role:password@primary:5432/storycore"
    if key.endswith("DATABASE_URL"):
        return "postgresql://role:password@pooler:5432/storycore"
    return "s" * 32


def pod_environment(container: dict[str, Any], patch: list[dict[str, Any]]) -> dict[str, str]:
    """What the container's process would see, Secrets filled with stand-ins."""
    entries = {**env_of(container), **{e["name"]: e for e in patch}}
    resolved: dict[str, str] = {}
    for name, entry in entries.items():
        if "valueFrom" in entry:
            ref = entry["valueFrom"]["secretKeyRef"]
            if not ref.get("optional"):
                resolved[name] = fake_secret(ref["key"])
        else:
            resolved[name] = re.sub(r"\$\((\w+)\)", lambda m: resolved[m[1]], entry["value"])
    return resolved


@pytest.mark.parametrize("overlay", ["base", "production"])
def test_each_service_accepts_the_environment_it_is_given(
    overlay: str, deployments: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
):
    """Settings validate as the service would at start: nothing required is missing (a
    DATABASE_PGBOUNCER without its DATABASE_DIRECT_URL, a JWKS URL, a key)."""
    patches = {p["metadata"]["name"]: p for p in load(PRODUCTION / "pgbouncer-patch.yaml")}
    for name, deployment in deployments.items():
        container = main_container(deployment)
        patch = []
        if overlay == "production" and name in patches:
            patch = patches[name]["spec"]["template"]["spec"]["containers"][0]["env"]
        environment = pod_environment(container, patch)
        if name == FALLBACK:
            from storycore_shared.fallback import SERVICES_ENV, load_services

            served = {s.name for s in load_services(environment[SERVICES_ENV])}
            assert served == {e.name for e in DATABASE_SERVICES}
            continue
        package = main_container(deployment)["image"].split("/")[1].split(":")[0]
        settings_class = importlib.import_module(f"{package.replace('-', '_')}.config").Settings
        with monkeypatch.context() as patched:
            for key in list(os.environ):
                if key.startswith(("STORYCORE_", settings_class.ENV_PREFIX)):
                    patched.delenv(key)
            for key, value in environment.items():
                patched.setenv(key, value)
            settings = settings_class()
        assert settings.DATABASE_PGBOUNCER is (overlay == "production"), name
        assert "@pooler:" in settings.DATABASE_URL
        session_host = "@primary:" if overlay == "production" else "@pooler:"
        assert session_host in settings.direct_database_url, name
        assert settings.NATS_URL.startswith("nats://"), name


def test_the_connection_budget_holds():
    workloads = kube.workloads()
    objects = resources(PRODUCTION)
    (cluster,) = by_kind(objects, "Cluster").values()
    (pooler,) = by_kind(objects, "Pooler").values()
    max_connections = int(cluster["spec"]["postgresql"]["parameters"]["max_connections"])
    parameters = pooler["spec"]["pgbouncer"]["parameters"]
    pods = pooler["spec"]["instances"]
    roles = cluster["spec"]["managed"]["roles"]
    per_pod = int(parameters["max_db_connections"])
    default_pool = int(parameters["default_pool_size"])
    assert default_pool * len(roles) <= per_pod
    # Recounted from the manifests and the code: pools of 20 per engine (two runners, so two
    # engines, in sequences.worker), two sessions per API process, one migration per Deployment.
    pooled = sessions = migrations = 0
    for workload in workloads:
        if not workload.uses_database:
            continue
        processes = workload.sizing.max_replicas + 1
        if workload.role == "worker":
            source = Path(importlib.import_module(workload.entry.worker).__file__).read_text()
            engines = len(re.findall(r"\bWorker\(", source)) or 1
            assert engines == workload.sizing.engines, workload.name
            pooled += processes * engines * 20
        else:
            pooled += processes * 20
            sessions += processes * 2
        migrations += 1
    assert kube.connection_budget(workloads) == kube.Budget(pooled, sessions, migrations)
    server = pods * per_pod + sessions + migrations + kube.CNPG_OVERHEAD_CONNECTIONS
    assert server < max_connections, f"{server} connections, max_connections {max_connections}"
    assert int(parameters["max_client_conn"]) >= pooled
    for role in roles:
        assert role["connectionLimit"] > pods * default_pool, role["name"]
    # The dev overlay goes straight to its own Postgres.
    dev = kube.connection_budget(
        workloads, pool_size=kube.DEV_POOL_SIZE, max_replicas=kube.DEV_MAX_REPLICAS
    )
    (postgres,) = by_kind(resources(DEV), "StatefulSet").values()
    args = " ".join(postgres["spec"]["template"]["spec"]["containers"][0]["args"])
    dev_max = int(re.search(r"max_connections=(\d+)", args)[1])
    assert dev.direct_total < dev_max


# -- the overlays, built ---------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (kustomize) not installed")
def test_both_overlays_build_and_validate(tmp_path: Path):
    tree = tmp_path / "kubernetes"
    shutil.copytree(KUBE_DIR, tree, ignore=shutil.ignore_patterns(*kube.DEV_SECRET_FILES))
    kube.write_secrets(tree / "overlays" / "dev", postgres="postgres:5432")
    built: dict[str, list[dict[str, Any]]] = {}
    for overlay in ("dev", "production"):
        output = subprocess.run(
            ["kubectl", "kustomize", str(tree / "overlays" / overlay)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        built[overlay] = [doc for doc in yaml.safe_load_all(output) if doc]
        for obj in built[overlay]:
            assert obj["metadata"].get("namespace", kube.NAMESPACE) == kube.NAMESPACE
            if is_builtin(obj):
                validate(obj)
    dev_secret = by_kind(built["dev"], "Secret")[kube.SECRET]
    for _, key, optional in secret_key_refs(built["dev"]):
        assert optional or key in dev_secret["data"], key
    assert not by_kind(built["production"], "Secret"), "production brings its own"
    production = by_kind(built["production"], "Deployment")
    projects = main_container(production["projects"])
    assert env_of(projects)["PROJECTS_DATABASE_PGBOUNCER"]["value"] == "true"
    assert projects["image"].startswith(kube.PRODUCTION_REGISTRY)
    dev = by_kind(built["dev"], "HorizontalPodAutoscaler")
    assert all(h["spec"]["minReplicas"] == 1 for h in dev.values())
