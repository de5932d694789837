"""Outbound HTTP: the httpx clients a service opens to a sibling service or an external backend.

httpx builds a new TLS context for every client that is not handed one, even for a plain-http
call to a sibling: it parses certifi's whole bundle of certificate authorities each time, about
15-18 ms of CPU on the development machine, and the first one stays at 1.5 MB of the process
(docs/benchmarks.md, "One TLS context per process"). Services open a client per call (a JWKS
fetch, a projects-replica miss, each LLM request, each ComfyUI job, each media import), so every
client here shares one context per process instead. It verifies as httpx's default does
(certificates and host names, against ``SSL_CERT_FILE``, else ``SSL_CERT_DIR``, else certifi's
bundle), but reads those authorities at its first handshake: a service that only calls its
siblings over plain HTTP never reads them.

    async with outbound.client(timeout=5) as client:
        answer = await client.get(url)
"""

from __future__ import annotations

import functools
import os
import ssl
from typing import Any

import certifi
import httpx


class VerifyingContext(ssl.SSLContext):
    """A client context (``PROTOCOL_TLS_CLIENT``: certificates and host names verified) that
    loads its certificate authorities when it first wraps a connection. httpx's async transport
    wraps through ``wrap_bio`` and its sync one through ``wrap_socket``."""

    trust_loaded = False

    def load_trust(self) -> None:
        if self.trust_loaded:
            return
        if os.environ.get("SSL_CERT_FILE"):
            self.load_verify_locations(cafile=os.environ["SSL_CERT_FILE"])
        elif os.environ.get("SSL_CERT_DIR"):
            self.load_verify_locations(capath=os.environ["SSL_CERT_DIR"])
        else:
            self.load_verify_locations(cafile=certifi.where())
        self.trust_loaded = True

    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        self.load_trust()
        return super().wrap_socket(*args, **kwargs)

    def wrap_bio(self, *args: Any, **kwargs: Any) -> ssl.SSLObject:
        self.load_trust()
        return super().wrap_bio(*args, **kwargs)


@functools.cache
def tls_context() -> VerifyingContext:
    """The process's one TLS context. An ``SSLContext`` is safe to share between connections."""
    return VerifyingContext(ssl.PROTOCOL_TLS_CLIENT)


def client(**options: Any) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` with the process's TLS context; ``options`` are httpx's own
    (``timeout``, ``base_url``, ``headers``, ...), but not ``verify``."""
    if "verify" in options:
        raise TypeError("outbound clients always verify with the process's TLS context")
    return httpx.AsyncClient(verify=tls_context(), **options)
