"""A real S3-compatible server for tests: moto's server (S3's REST API over HTTP), in a child
process so that what it stores never counts in the test process's memory.

::

    endpoint = MotoS3Server().start().endpoint
    store = S3AssetStore(
        endpoint_url=endpoint.url, bucket="assets", prefix="shots",
        access_key_id=endpoint.access_key_id, secret_access_key=endpoint.secret_access_key,
    )

Moto accepts any credentials and creates buckets on request (``CreateBucket``); tests make
their own bucket.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from storycore_testkit.infra.processes import (
    LogSink,
    ManagedProcess,
    free_port,
    port_open,
    wait_until,
)


@dataclass(frozen=True)
class S3Endpoint:
    """Where an S3-compatible server answers, and the credentials it takes."""

    url: str
    access_key_id: str = "storycore-test"
    secret_access_key: str = "storycore-test-secret"  # moto checks no credentials
    region: str = "us-east-1"

    @classmethod
    def from_url(cls, url: str, *, region: str = "us-east-1") -> S3Endpoint:
        """``http://KEY:SECRET@host:port`` (credentials percent-encoded) to an endpoint."""
        parts = urlsplit(url)
        netloc = parts.netloc.rpartition("@")[2]
        plain = parts._replace(netloc=netloc).geturl().rstrip("/")
        if parts.username is None:
            return cls(plain, region=region)
        return cls(plain, unquote(parts.username), unquote(parts.password or ""), region)


class MotoS3Server:
    """``python -m moto.server`` on 127.0.0.1 and a free port."""

    def __init__(
        self,
        *,
        port: int | None = None,
        log_file: Path | None = None,
        sink: LogSink | None = None,
    ) -> None:
        self.port = port or free_port()
        self.log_file = log_file
        self.sink = sink
        self.process: ManagedProcess | None = None

    @property
    def endpoint(self) -> S3Endpoint:
        return S3Endpoint(f"http://127.0.0.1:{self.port}")

    def start(self, timeout: float = 30.0) -> MotoS3Server:
        argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        self.process = ManagedProcess("s3", argv, log_file=self.log_file, sink=self.sink).start()

        def ready() -> bool:
            if not self.process or not self.process.running():
                raise RuntimeError("the moto S3 server exited during start-up; see its log")
            return port_open(self.port)

        wait_until(ready, timeout=timeout, what="moto S3 server")
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
