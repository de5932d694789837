"""One OpenAPI 3.1 document for the whole suite, merged from every service's own spec.

Each service's ``create_app`` is called with dummy settings (nothing connects at import or at
build time) and its ``app.openapi()`` read. The merge keeps only the paths the gateway routes
to that service (``gateway/routes.toml``), and then:

- schema names are unique: a name two services define differently is prefixed with the
  service (``LlmGenerateRequest``, ``SequencesGenerateRequest``); identical ones are shared;
- operationIds are the route function's name in camelCase (``create_project`` ->
  ``createProject``), unique suite-wide (a clash is prefixed with the service);
- every operation is tagged with its service;
- problem+json answers refer to one ``Problem`` schema;
- ``ETag`` / ``Location`` answer headers are documented where the route sets them, and
  ``text/event-stream`` (with its event names) on the SSE routes;
- every request body carries an example (the model's own, else one made from its schema).

``python3 storycore.py openapi`` writes ``openapi/storycore.json``; ``tests/test_openapi.py``
fails when the committed file differs from what this module produces.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastapi.openapi.utils
import fastapi.routing
from fastapi import FastAPI
from fastapi.routing import APIRoute

from storycore_devstack.routes import REPO_ROOT, RouteTable, ServiceEntry, load_route_table

SPEC_PATH = REPO_ROOT / "openapi" / "storycore.json"
PROBLEM_JSON = "application/problem+json"
EVENT_STREAM = "text/event-stream"
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")

# Only for building the apps: nothing connects while a spec is produced.
_DUMMY_SETTINGS: dict[str, Any] = {
    "ENVIRONMENT": "development",
    "DATABASE_URL": "postgresql+asyncpg://openapi@127.0.0.1:1/openapi",
    "NATS_URL": "nats://127.0.0.1:1",
    "JWKS_URL": "http://127.0.0.1:1/api/auth/.well-known/jwks.json",
    "PROJECTS_URL": "http://127.0.0.1:1",
    "LLM_URL": "http://127.0.0.1:1",
    "INTERNAL_TOKEN": "openapi-build-only",
}

# What each SSE route sends, for the description of its 200 answer.
SSE_EVENTS = {
    "job": (
        "Server-sent events. `event: progress` with `{status, progress, current_step}` on every "
        "change; one final `event: complete` with `{status, progress, result, error}`, then the "
        "stream ends; `event: error` with `{error}` when the job disappears. Every frame has an "
        "`id:`: reconnect with `Last-Event-ID` (or a new `?ticket=`) to miss nothing. A comment "
        "line every 15 s keeps proxies from closing the stream."
    ),
    "llm": (
        "With `Accept: text/event-stream`: server-sent `data:` frames, each a JSON object whose "
        "`type` is `start`, `chunk` (`text`), `usage`, `done` or `error`. Otherwise the JSON "
        "answer of `/api/llm/generate`."
    ),
}


def _signing_key_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return (
        Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )


def build_service_app(entry: ServiceEntry) -> FastAPI:
    """The service's app, built with dummy settings (nothing is started)."""
    module_name, _, factory = entry.app.partition(":")
    package = module_name.split(".")[0]
    settings_cls = importlib.import_module(f"{package}.config").Settings
    fields = settings_cls.model_fields
    values = {k: v for k, v in _DUMMY_SETTINGS.items() if k in fields}
    for name, info in fields.items():  # any other required setting: a placeholder string
        if info.is_required() and name not in values:
            values[name] = "http://127.0.0.1:1" if name.endswith("_URL") else "x" * 64
    if "SIGNING_KEY" in fields:
        values["SIGNING_KEY"] = _signing_key_pem()
    app = getattr(importlib.import_module(module_name), factory)(settings_cls(**values))
    assert isinstance(app, FastAPI)
    return app


# -- which paths the gateway sends where -----------------------------------------------------


def _rule_matcher(rule: str) -> Callable[[str], bool]:
    match = re.fullmatch(r"(PathPrefix|Path|PathRegexp)\(`(.*)`\)", rule.strip())
    if match is None:
        raise ValueError(f"unsupported rule in gateway/routes.toml: {rule}")
    kind, value = match.groups()
    if kind == "PathPrefix":
        return lambda path: path.startswith(value)
    if kind == "Path":
        return lambda path: path == value
    pattern = re.compile(value)
    return lambda path: pattern.search(path) is not None


def gateway_owner(table: RouteTable, path: str) -> str | None:
    """The service the gateway sends ``path`` to (highest priority matching rule)."""
    concrete = re.sub(r"\{[^}]+\}", "00000000-0000-0000-0000-000000000000", path)
    best: tuple[int, str] | None = None
    for service in table.services.values():
        for route in service.routes:
            if _rule_matcher(route.rule)(concrete) and (best is None or route.priority > best[0]):
                best = (route.priority, service.name)
    return None if best is None else best[1]


# -- small helpers ------------------------------------------------------------------------------


def _camel(name: str) -> str:
    head, *rest = [part for part in re.split(r"[_\-]", name) if part]
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _pascal(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[_\-]", name) if part)


def _rewrite_refs(node: Any, renames: dict[str, str]) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                name = value.rsplit("/", 1)[-1]
                out[key] = f"#/components/schemas/{renames.get(name, name)}"
            else:
                out[key] = _rewrite_refs(value, renames)
        return out
    if isinstance(node, list):
        return [_rewrite_refs(item, renames) for item in node]
    return node


def _api_routes(app: FastAPI) -> list[Any]:
    """Every API route of ``app`` (anything with ``path_format``, ``methods``, ``name`` and
    ``endpoint``), included routers flattened: FastAPI >= 0.160 includes routers lazily."""
    iterate = getattr(fastapi.routing, "iter_route_contexts", None)
    resolve = getattr(fastapi.openapi.utils, "_get_api_route_for_openapi", None)
    if iterate is None or resolve is None:
        return [route for route in app.routes if isinstance(route, APIRoute)]
    found = (resolve(context) for context in iterate(app.routes))
    return [route for route in found if route is not None and hasattr(route, "endpoint")]


def _route_index(app: FastAPI) -> dict[tuple[str, str], Any]:
    index = {}
    for route in _api_routes(app):
        for method in route.methods or ():
            index[(route.path_format, method.lower())] = route
    return index


_UUID = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
_PROMPT = "A lighthouse keeper finds a message in a bottle at dawn; the storm is coming."
# Hand-written request examples, by operationId; every other body gets one made from its schema.
REQUEST_EXAMPLES: dict[str, Any] = {
    "registerUser": {
        "email": "writer@example.com",
        "password": "correct horse battery",
        "name": "Ada",
    },
    "login": {"email": "writer@example.com", "password": "correct horse battery"},
    "refreshTokens": {"refresh_token": "<the refresh token from login>"},
    "logout": {"refresh_token": "<the refresh token from login>"},
    "createProject": {
        "name": "The Lighthouse",
        "description": "A short film about a keeper and a storm.",
        "format": "landscape",
        "tags": ["drama"],
    },
    "updateProject": {"status": "in_progress", "version": 1},
    "createShot": {
        "project_id": _UUID,
        "name": "Dawn on the cliff",
        "prompt": "Wide shot of a lighthouse on a cliff at dawn, waves below",
        "shot_type": "establishing",
        "framing": "wide",
        "camera_angle": "low",
        "duration_seconds": 5.0,
    },
    "updateShot": {"framing": "close-up", "version": 1},
    "regenerateShot": {"prompt": "The same cliff, now under storm clouds"},
    "reorderProjectShots": {"shot_ids": [_UUID, "9b2e1c4a-7d3f-4e8b-a1c2-5f6e7d8c9b0a"]},
    "createLocation": {
        "name": "The lighthouse",
        "project_id": _UUID,
        "location_type": "exterior",
        "atmosphere": "windswept, grey dawn",
    },
    "updateLocation": {"description": "A white tower on a black cliff.", "version": 1},
    "generate": {"prompt": _PROMPT, "temperature": 0.7, "max_tokens": 256},
    "streamingGenerate": {"prompt": _PROMPT, "temperature": 0.7, "max_tokens": 256},
    "chat": {
        "messages": [
            {"role": "system", "content": "You are a script doctor."},
            {"role": "user", "content": "Tighten this logline: " + _PROMPT},
        ],
        "temperature": 0.5,
    },
    "plan": {"prompt": _PROMPT, "shot_count": 3},
    "renderTemplate": {
        "name": "shot_description",
        "variables": {
            "scene_description": "a lighthouse at dawn",
            "camera_angle": "low",
            "lighting": "cold, grey",
            "action": "the keeper climbs the stairs",
            "duration": "5",
        },
    },
    "transformStory": {
        "story": _PROMPT + " She reads it twice, then lights the lamp.",
        "title": "The Lighthouse",
    },
    "generateSequence": {
        "project_id": _UUID,
        "prompt": _PROMPT,
        "shot_count": 3,
        "style": "watercolour",
        "mood": "tense",
    },
}


# -- examples -----------------------------------------------------------------------------------

_FORMAT_EXAMPLES = {
    "uuid": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
    "date-time": "2026-01-01T12:00:00Z",
    "date": "2026-01-01",
    "email": "writer@example.com",
    "uri": "https://example.com/resource",
    "binary": "(binary)",
}


def example_from_schema(schema: dict[str, Any], components: dict[str, Any], depth: int = 0) -> Any:
    """A plausible value for ``schema``: its example, default, first enum value, or made up."""
    if depth > 8:
        return None
    if "$ref" in schema:
        target = components.get(schema["$ref"].rsplit("/", 1)[-1], {})
        return example_from_schema(target, components, depth + 1)
    if "examples" in schema and isinstance(schema["examples"], list) and schema["examples"]:
        return copy.deepcopy(schema["examples"][0])
    if "example" in schema:
        return copy.deepcopy(schema["example"])
    if "default" in schema and schema["default"] is not None:
        return copy.deepcopy(schema["default"])
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
            return example_from_schema(options[0], components, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties", {})
        required = set(schema.get("required", []))
        # Required fields only: the example stays short (REQUEST_EXAMPLES shows the rest).
        return {
            name: example_from_schema(prop, components, depth + 1)
            for name, prop in properties.items()
            if name in required
        }
    if kind == "array":
        items = schema.get("items", {})
        count = max(int(schema.get("minItems", 1)), 1)
        return [example_from_schema(items, components, depth + 1) for _ in range(count)]
    if kind == "string":
        if schema.get("format") in _FORMAT_EXAMPLES:
            return _FORMAT_EXAMPLES[schema["format"]]
        text = "A lighthouse keeper finds a message in a bottle at dawn."
        minimum = int(schema.get("minLength", 0))
        maximum = int(schema.get("maxLength", len(text)))
        while len(text) < minimum:
            text += " " + text
        return text[: max(maximum, minimum)]
    if kind == "integer":
        return int(schema.get("minimum", schema.get("exclusiveMinimum", 0)) or 1)
    if kind == "number":
        return float(schema.get("minimum", 1.0))
    if kind == "boolean":
        return False
    return None


# -- the merge ----------------------------------------------------------------------------------


def _service_paths(
    table: RouteTable, entry: ServiceEntry, spec: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    return {
        path: item
        for path, item in spec.get("paths", {}).items()
        if gateway_owner(table, path) == entry.name
    }


def _is_problem_schema(schema: Any) -> bool:
    return isinstance(schema, dict) and schema.get("title") == "Problem" and "$ref" not in schema


def _source(function: Any) -> str:
    try:
        return inspect.getsource(function)
    except (OSError, TypeError):
        return ""


def _sets_header(route: Any, source: str, header: str) -> bool:
    """Whether the route's function sets ``header``, itself or through a helper of its module
    (``_with_etag(response, project)``)."""
    needle = f'headers["{header}"]'
    if needle in source:
        return True
    module = inspect.getmodule(route.endpoint) if route is not None else None
    if module is None:
        return False
    for name, helper in vars(module).items():
        if (
            inspect.isfunction(helper)
            and helper.__module__ == module.__name__
            and helper is not route.endpoint
            and needle in _source(helper)
            and re.search(rf"\b{re.escape(name)}\(", source)
        ):
            return True
    return False


def _decorate(
    operation: dict[str, Any],
    route: Any,
    path: str,
    service: str,
    components: dict[str, Any],
) -> None:
    operation["tags"] = [service]
    source = _source(route.endpoint) if route is not None else ""
    responses: dict[str, Any] = operation.get("responses", {})
    for response in responses.values():
        for media, content in response.get("content", {}).items():
            if media == PROBLEM_JSON and _is_problem_schema(content.get("schema")):
                content["schema"] = {"$ref": "#/components/schemas/Problem"}
    success = next((code for code in sorted(responses) if code.startswith("2")), None)
    if success is not None:
        headers = responses[success].setdefault("headers", {})
        if _sets_header(route, source, "ETag") or "ETag" in (route.description if route else ""):
            headers["ETag"] = {
                "description": "The entity's version as a strong validator (send it back in "
                "`If-Match`), or the file's hash.",
                "schema": {"type": "string"},
            }
        if _sets_header(route, source, "Location"):
            headers["Location"] = {
                "description": "Where the created resource lives.",
                "schema": {"type": "string"},
            }
        if not headers:
            del responses[success]["headers"]
    stream = None
    if path.endswith("/stream"):
        stream = "job"
    elif path == "/api/llm/streaming-generate":
        stream = "llm"
    if stream is not None:
        answer = responses.setdefault("200", {"description": ""})
        content = answer.setdefault("content", {})
        content[EVENT_STREAM] = {"schema": {"type": "string"}}
        answer["description"] = SSE_EVENTS[stream]
    body = operation.get("requestBody")
    if body is not None:
        for media, content in body.get("content", {}).items():
            if "example" in content or "examples" in content:
                continue
            schema = content.get("schema", {})
            known = REQUEST_EXAMPLES.get(operation["operationId"])
            fitting = known is not None and media == "application/json"
            content["example"] = known if fitting else example_from_schema(schema, components)


def vocabulary_schemas() -> dict[str, dict[str, Any]]:
    """The shared shot vocabulary (``storycore_shared.contracts.vocabulary``) as named schemas."""
    from pydantic import TypeAdapter

    from storycore_shared.contracts import vocabulary

    described = {
        "ShotType": "The shot's narrative purpose.",
        "Framing": "The camera's shot size.",
        "CameraAngle": "The camera's angle.",
    }
    return {
        name: {
            **TypeAdapter(getattr(vocabulary, name)).json_schema(),
            "title": name,
            "description": text,
        }
        for name, text in described.items()
    }


def _use_vocabulary(node: Any, vocab: dict[str, dict[str, Any]]) -> Any:
    """Inline enums equal to a vocabulary type become references to it."""
    if isinstance(node, dict):
        enum = node.get("enum")
        if node.get("type") == "string" and isinstance(enum, list):
            for name, schema in vocab.items():
                if enum == schema["enum"]:
                    rest = {k: v for k, v in node.items() if k not in ("type", "enum")}
                    return {"$ref": f"#/components/schemas/{name}", **rest}
        return {key: _use_vocabulary(value, vocab) for key, value in node.items()}
    if isinstance(node, list):
        return [_use_vocabulary(item, vocab) for item in node]
    return node


def merge(specs: dict[str, tuple[FastAPI, dict[str, Any]]], table: RouteTable) -> dict[str, Any]:
    """Merge each service's ``(app, spec)`` into one document."""
    from storycore_shared.errors import PROBLEM_SCHEMA

    # 1. schema names: shared when identical, prefixed by service when they differ.
    definitions: dict[str, dict[str, str]] = {}  # name -> {service: canonical json}
    for service, (_, spec) in specs.items():
        for name, schema in spec.get("components", {}).get("schemas", {}).items():
            definitions.setdefault(name, {})[service] = json.dumps(schema, sort_keys=True)
    renames: dict[str, dict[str, str]] = {service: {} for service in specs}
    for name, by_service in definitions.items():
        if len(set(by_service.values())) > 1:
            for service in by_service:
                renames[service][name] = f"{_pascal(service)}{name}"

    schemas: dict[str, Any] = {"Problem": copy.deepcopy(PROBLEM_SCHEMA)}
    paths: dict[str, Any] = {}
    tags = []
    operation_ids: dict[str, str] = {}
    for service, (app, spec) in specs.items():
        entry = table.services[service]
        spec = _rewrite_refs(spec, renames[service])
        own_paths = _service_paths(table, entry, spec)
        if not own_paths:
            continue
        tags.append({"name": service, "description": spec.get("info", {}).get("description", "")})
        for name, schema in spec.get("components", {}).get("schemas", {}).items():
            schemas[renames[service].get(name, name)] = schema
        routes = _route_index(app)
        for path, item in own_paths.items():
            for method in METHODS:
                operation = item.get(method)
                if operation is None:
                    continue
                route = routes.get((path, method))
                name = route.name if route is not None else f"{method}_{path}"
                operation_id = _camel(name)
                if operation_id in operation_ids:  # e.g. the shared job routes: rigging's
                    area = path.split("/")[2]
                    operation_id = _camel(f"{area}_{name}")
                if operation_id in operation_ids:
                    raise ValueError(f"operationId {operation_id} is not unique ({path})")
                operation_ids[operation_id] = path
                operation["operationId"] = operation_id
                _decorate(operation, route, path, service, schemas)
            paths[path] = item

    vocab = vocabulary_schemas()
    schemas = _use_vocabulary(schemas, vocab) | vocab
    paths = _use_vocabulary(paths, vocab)
    # Only the schemas something refers to (health and metrics answers are left out), and the
    # vocabulary, which clients import by name.
    used = _referenced(paths, schemas) | set(vocab)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "StoryCore API",
            "version": "1.0.0",
            "description": "Every route the gateway serves under `/api`, merged from each "
            "service's own OpenAPI document. Errors are RFC 9457 problem+json (`Problem`). "
            "Generated by `python3 storycore.py openapi`; do not edit by hand.",
        },
        "servers": [{"url": "/", "description": "the gateway"}],
        "tags": tags,
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": {name: schemas[name] for name in sorted(used)},
            "securitySchemes": {
                "HTTPBearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }


def _referenced(paths: dict[str, Any], schemas: dict[str, Any]) -> set[str]:
    found: set[str] = set()
    pending: list[Any] = [paths]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
                name = ref.rsplit("/", 1)[-1]
                if name not in found and name in schemas:
                    found.add(name)
                    pending.append(schemas[name])
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return found


def build_spec(table: RouteTable | None = None) -> dict[str, Any]:
    """The suite's merged OpenAPI document, from the code as it is now."""
    table = table or load_route_table()
    specs = {}
    for entry in table.domain_services:
        app = build_service_app(entry)
        specs[entry.name] = (app, app.openapi())
    return merge(specs, table)


def render(spec: dict[str, Any]) -> str:
    return json.dumps(spec, indent=2, ensure_ascii=False) + "\n"


def write_spec(path: Path = SPEC_PATH) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(build_spec()))
    return path
