"""StoryCore's domain-free service kit. It never imports a service and never declares a table.

Importing it first loads nats-py and httpx without their optional extras: nats-py imports
aiohttp (only for WebSocket URLs, which the bus does not use) and httpx imports rich and
pygments (only for its command line) whenever they are installed. Together they were about
12 MB of every service process. They stay importable afterwards (the S3 asset store's
aiobotocore imports aiohttp itself when it is used).

It also marks ``pydantic.v1`` as absent. FastAPI imports it only to reject pydantic v1 models
(it no longer supports them) and takes an ``ImportError`` for "no v1 model"; this suite has none,
and the v1 package was 1.5 MB of every service process. Anything that does need it fails at its
import with a clear ``ModuleNotFoundError``.
"""

from __future__ import annotations

import sys


def _load_without_extras() -> None:
    hidden = [name for name in ("aiohttp", "rich", "pygments") if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # an import of it fails at once
    try:
        import httpx  # noqa: F401
        import nats.aio.client  # noqa: F401
    finally:
        for name in hidden:
            if sys.modules.get(name, ...) is None:
                del sys.modules[name]


_load_without_extras()
sys.modules.setdefault("pydantic.v1", None)  # type: ignore[arg-type]
