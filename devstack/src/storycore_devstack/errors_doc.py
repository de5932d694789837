"""``docs/errors.md``: the catalogue of error codes, generated from the code.

Every :class:`~storycore_shared.errors.ServiceError` subclass in ``shared`` and in the services
is one row (code, status, title, where it is defined), plus the problems the gateway answers
itself (``storycore_shared.fallback``). ``python3 storycore.py errors-doc`` writes the file; a
test fails when the committed one differs from what the code produces.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

from storycore_devstack.routes import REPO_ROOT, load_route_table
from storycore_shared import fallback
from storycore_shared.errors import ServiceError

ERRORS_DOC = REPO_ROOT / "docs" / "errors.md"
# Alembic trees run on import; entry points start servers.
_SKIPPED = {"migrations", "__main__"}


def _modules(package: str) -> Iterator[ModuleType]:
    root = importlib.import_module(package)
    yield root
    for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
        if _SKIPPED & set(info.name.split(".")):
            continue
        yield importlib.import_module(info.name)


def _packages() -> list[str]:
    services = sorted({s.app.split(".")[0] for s in load_route_table().domain_services})
    return ["storycore_shared", *services]


def _subclasses(cls: type[ServiceError]) -> Iterator[type[ServiceError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _where(cls: type) -> str:
    source = inspect.getsourcefile(cls)
    path = Path(source).resolve() if source else None
    if path is None or not path.is_relative_to(REPO_ROOT):
        return cls.__module__
    return f"`{path.relative_to(REPO_ROOT).as_posix()}` ({cls.__qualname__})"


def error_rows() -> list[tuple[str, int, str, str]]:
    """(code, status, title, where) for every error class, sorted by code."""
    for package in _packages():
        for _ in _modules(package):
            pass
    classes: set[type[ServiceError]] = {ServiceError, *_subclasses(ServiceError)}
    ours = [c for c in classes if c.__module__.split(".")[0] in _packages()]
    return sorted(
        {(c.code, c.status, c.title, _where(c)) for c in ours}, key=lambda r: (r[0], r[3])
    )


def render() -> str:
    lines = [
        "# Error codes",
        "",
        "Every error answer is RFC 9457 `application/problem+json` with `type, title, status,",
        "detail, code, request_id` (validation errors add `errors`). Clients branch on `code`.",
        "This page is generated from the code by `python3 storycore.py errors-doc`; a test",
        "fails when it is stale. A subclass that keeps its parent's code is listed on its own",
        "row, so the same code can appear more than once.",
        "",
        "## The services",
        "",
        "| code | status | title | defined in |",
        "|---|---|---|---|",
    ]
    lines += [f"| `{c}` | {s} | {t} | {w} |" for c, s, t, w in error_rows()]
    lines += [
        "",
        "## The gateway",
        "",
        "Answered by the gateway itself (`storycore_shared.fallback`), before any service.",
        "",
        "| code | status | title | when |",
        "|---|---|---|---|",
    ]
    gateway = [
        (*fallback.ROUTE_NOT_FOUND, "no service claims the path (also `/api/<service>/healthz`)"),
        (
            *fallback.SERVICE_UNAVAILABLE,
            "the path's service has no healthy replica (`Retry-After`)",
        ),
    ]
    gateway += [
        (code, status, title, detail)
        for status, (code, title, detail) in sorted(fallback.GATEWAY_PROBLEMS.items())
        if status != 503
    ]
    lines += [f"| `{c}` | {s} | {t} | {w} |" for c, s, t, w in gateway]
    return "\n".join(lines) + "\n"


def write() -> Path:
    ERRORS_DOC.write_text(render())
    return ERRORS_DOC
