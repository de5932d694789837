"""StoryCore's domain-free service kit. It never imports a service and never declares a table.

Importing it first loads nats-py and httpx without their optional extras: nats-py imports
aiohttp (only for WebSocket URLs, which the bus does not use) and httpx imports rich and
pygments (only for its command line) whenever they are installed. Together they were about
12 MB of every service process. They stay importable afterwards (the S3 asset store's
aiobotocore imports aiohttp itself when it is used).
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
