"""The NATS connection: connect in the background, reconnect forever, drain on close.

nats.py gives up when the *first* connect fails, so a service that starts while NATS is down
would not start at all. :class:`Broker` keeps trying instead, and everything that needs NATS
awaits :meth:`Broker.connected`::

    broker = Broker(settings.NATS_URL, name="projects")
    await broker.start()
    nc = await broker.connected()

The URL carries the service's own credentials (``nats://projects:<password>@host:4222``), as
``DATABASE_URL`` carries its role's. A cluster is a comma-separated list of such URLs: the
client connects to any of them, learns the others from the server, and fails over to the next
when its server goes away (with the same credentials on every node). Replies come back under
``_INBOX.<user>.``, the only inbox the bus lets that user subscribe to
(:mod:`storycore_shared.events.bus`).

Streams are the provisioning step's (:mod:`storycore_shared.events.provision`): a service only
looks its streams up (:func:`ensure_stream`); on a bus without permissions (the kit's own
tests) a missing stream is created.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from urllib.parse import unquote, urlsplit

import nats
from nats.aio.client import Client as NATS
from nats.js.api import StorageType, StreamConfig
from nats.js.client import JetStreamContext
from nats.js.errors import BadRequestError, NotFoundError

from storycore_shared.events.bus import inbox_prefix
from storycore_shared.events.contracts import StreamSpec

logger = logging.getLogger(__name__)


PERMISSIONS_VIOLATION = "permissions violation"


class StreamNotProvisioned(RuntimeError):
    """A stream is missing and this identity may not create it: provisioning has not run."""


def nats_servers(url: str) -> list[str]:
    """The servers of a NATS URL: one, or a comma-separated list (a cluster)."""
    servers = [part.strip() for part in url.split(",") if part.strip()]
    if not servers:
        raise ValueError("a NATS URL names at least one server")
    return servers


def nats_user(url: str) -> str | None:
    """The user named in a NATS URL (the first, when several are given), or None."""
    user = urlsplit(nats_servers(url)[0]).username
    return unquote(user) if user else None


def _credentials(url: str) -> dict[str, str]:
    """The first server's user and password as connect options. nats.py sends a server's own
    credentials only for the servers it was given; set as options they also reach the nodes it
    discovers from the cluster (which it learns without credentials)."""
    first = urlsplit(nats_servers(url)[0])
    if first.username is None or first.password is None:
        return {}
    return {"user": unquote(first.username), "password": unquote(first.password)}


class Broker:
    def __init__(self, url: str, *, name: str, ping_interval: int = 5) -> None:
        self.url = url
        self.name = name
        self.user = nats_user(url)
        self.inbox_prefix = inbox_prefix(self.user)
        self.ping_interval = ping_interval
        self.nc: NATS | None = None
        self._ready = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._connect_forever(), name=f"{self.name}-nats")

    async def _connect_forever(self) -> None:
        delay = 0.2
        while True:
            try:
                self.nc = await nats.connect(
                    nats_servers(self.url),
                    name=self.name,
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5,
                    connect_timeout=2,
                    ping_interval=self.ping_interval,
                    max_outstanding_pings=2,
                    inbox_prefix=self.inbox_prefix,
                    error_cb=self._on_error,
                    disconnected_cb=self._on_disconnected,
                    reconnected_cb=self._on_reconnected,
                    **_credentials(self.url),
                )
            except Exception as exc:
                logger.warning("nats.connect_failed", extra={"error": repr(exc), "retry_in": delay})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            logger.info("nats.connected")
            self._ready.set()
            return

    async def _on_error(self, exc: Exception) -> None:
        if PERMISSIONS_VIOLATION in str(exc).lower():
            # The bus refused something this identity tried: a missing grant in
            # storycore_shared.events.bus, or code doing what it should not.
            logger.warning("nats.permission_denied", extra={"user": self.user, "error": str(exc)})
            return
        logger.debug("nats.error", extra={"error": repr(exc)})

    async def _on_disconnected(self) -> None:
        if self._closing:  # our own close, not an outage
            logger.info("nats.closed")
        else:
            logger.warning("nats.disconnected")

    async def _on_reconnected(self) -> None:
        logger.info("nats.reconnected")

    async def connected(self) -> NATS:
        await self._ready.wait()
        assert self.nc is not None
        return self.nc

    async def jetstream(self) -> JetStreamContext:
        return (await self.connected()).jetstream()

    @property
    def is_connected(self) -> bool:
        return self.nc is not None and self.nc.is_connected

    async def close(self) -> None:
        self._closing = True
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.nc is not None and not self.nc.is_closed:
            try:
                await asyncio.wait_for(self.nc.drain(), timeout=5)
            except Exception:
                await self.nc.close()


def stream_config(spec: StreamSpec, *, replicas: int = 1) -> StreamConfig:
    """The declared stream; ``replicas`` copies of it on a cluster (a quorum must be up)."""
    return StreamConfig(
        name=spec.name,
        subjects=spec.subjects,
        storage=StorageType.FILE,
        num_replicas=replicas,
        duplicate_window=spec.duplicate_window,
        max_age=spec.max_age_days * 86400,
    )


async def ensure_stream(js: JetStreamContext, spec: StreamSpec) -> None:
    """Make sure the stream exists: look it up, and create it only when it is missing.

    An existing stream is never changed here: on the suite's bus only the provisioning identity
    may (:func:`provision_stream`), and it runs before any service starts. A missing stream is
    created when the server lets this identity (an open server: the kit's tests); otherwise
    :class:`StreamNotProvisioned` says so, and the caller's loop tries again later.
    """
    try:
        await js.stream_info(spec.name)
        return
    except NotFoundError:
        pass
    try:
        await js.add_stream(stream_config(spec))
    except BadRequestError:  # another process created it meanwhile
        await js.stream_info(spec.name)
    except TimeoutError as exc:  # a permission violation is only an error line, then silence
        raise StreamNotProvisioned(
            f"stream {spec.name} does not exist and this identity may not create it: "
            "provision the bus first (python -m storycore_shared.events.provision)"
        ) from exc


async def provision_stream(js: JetStreamContext, spec: StreamSpec, *, replicas: int = 1) -> None:
    """Create the stream, or bring an existing one to this configuration (provisioning only),
    its replica count included: NATS moves a stream between 1 and 3 replicas in place."""
    config = stream_config(spec, replicas=replicas)
    try:
        await js.add_stream(config)
    except BadRequestError:
        await js.update_stream(config)
