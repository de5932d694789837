"""Outbound clients share one TLS context per process, which reads its certificate authorities
only at its first handshake and still verifies servers: an HTTPS server whose certificate no
trusted authority signed is refused, one signed by an authority named in ``SSL_CERT_FILE`` is
answered, as with httpx's own default."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from storycore_shared import outbound


@pytest.fixture(autouse=True)
def fresh_context() -> Iterator[None]:
    """Each test builds the process's context from its own environment."""
    outbound.tls_context.cache_clear()
    yield
    outbound.tls_context.cache_clear()


def _certificate(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Certificate | None, signer: object
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
    )
    if issuer is None:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=True, path_length=0), critical=True
        )
    else:
        address = x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
        builder = builder.add_extension(x509.SubjectAlternativeName([address]), critical=False)
    assert isinstance(signer, ec.EllipticCurvePrivateKey)
    return builder.sign(signer, hashes.SHA256())


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


@pytest.fixture
def authority(tmp_path: Path) -> tuple[Path, ssl.SSLContext]:
    """A test authority's certificate file, and a server context whose certificate it signed."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("StoryCore test authority", ca_key, None, ca_key)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _certificate("127.0.0.1", server_key, ca, ca_key)
    (tmp_path / "ca.pem").write_bytes(_pem(ca))
    (tmp_path / "server.pem").write_bytes(_pem(server))
    (tmp_path / "server.key").write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "server.pem", tmp_path / "server.key")
    return tmp_path / "ca.pem", context


@asynccontextmanager
async def https_server(context: ssl.SSLContext) -> AsyncIterator[str]:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass  # the client refused the handshake
        finally:
            writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"https://127.0.0.1:{port}/"
    finally:
        server.close()
        await server.wait_closed()


def test_every_client_shares_one_verifying_context_that_has_read_no_authority_yet() -> None:
    first, second = outbound.client(), outbound.client(timeout=3)
    context = outbound.tls_context()
    assert context is outbound.tls_context()
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert context.cert_store_stats()["x509_ca"] == 0
    for client in (first, second):
        pool = client._transport._pool  # type: ignore[attr-defined]
        assert pool._ssl_context is context


def test_a_client_cannot_be_told_not_to_verify() -> None:
    with pytest.raises(TypeError, match="verify"):
        outbound.client(verify=False)


async def test_an_untrusted_server_is_refused(authority: tuple[Path, ssl.SSLContext]) -> None:
    _, server_context = authority
    async with https_server(server_context) as url, outbound.client(timeout=5) as client:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await client.get(url)
    # The handshake read certifi's bundle, as httpx's default context holds it.
    assert outbound.tls_context().cert_store_stats()["x509_ca"] > 100


def test_a_sync_handshake_reads_the_authorities_too(
    authority: tuple[Path, ssl.SSLContext], monkeypatch: pytest.MonkeyPatch
) -> None:
    ca_file, _ = authority
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    context = outbound.tls_context()
    assert context.cert_store_stats()["x509_ca"] == 0
    with socket.socket() as raw, context.wrap_socket(raw, server_hostname="127.0.0.1"):
        pass  # httpx's sync transport wraps like this; no handshake is needed to load the trust
    assert context.cert_store_stats()["x509_ca"] == 1  # the test authority alone


async def test_an_authority_named_in_ssl_cert_file_is_trusted(
    authority: tuple[Path, ssl.SSLContext], monkeypatch: pytest.MonkeyPatch
) -> None:
    ca_file, server_context = authority
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    async with https_server(server_context) as url, outbound.client(timeout=5) as client:
        answer = await client.get(url)
    assert answer.status_code == 200
    assert answer.text == "ok"


def test_services_open_clients_only_through_outbound() -> None:
    """A client opened with httpx directly would build a context of its own again."""
    root = Path(__file__).resolve().parents[2]
    sources = [*(root / "shared" / "src").rglob("*.py"), *root.glob("services/*/src/**/*.py")]
    assert len(sources) > 100
    direct = [
        str(path.relative_to(root))
        for path in sources
        if path.name != "outbound.py" and "httpx.AsyncClient(" in path.read_text()
    ]
    assert direct == []
