"""Keys and configuration of the auth service (no servers needed)."""

from __future__ import annotations

import uuid

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import ValidationError

from auth.config import Settings
from auth.keys import KeyRing, generate_private_key_pem
from storycore_shared.auth import InvalidToken, KeySet, TokenVerifier

ENV = {"AUTH_DATABASE_URL": "postgresql://a:b@127.0.0.1:1/x", "STORYCORE_NATS_URL": "nats://x:1"}


def test_auth_refuses_to_start_without_a_signing_key(monkeypatch: pytest.MonkeyPatch):
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AUTH_SIGNING_KEY", raising=False)
    monkeypatch.delenv("AUTH_SIGNING_KEY_FILE", raising=False)
    with pytest.raises(ValidationError, match="SIGNING_KEY"):
        Settings()  # type: ignore[call-arg]


def test_database_url_has_no_default(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("AUTH_DATABASE_URL", raising=False)
    monkeypatch.delenv("STORYCORE_DATABASE_URL", raising=False)
    monkeypatch.setenv("AUTH_SIGNING_KEY", generate_private_key_pem().decode())
    monkeypatch.setenv("STORYCORE_NATS_URL", "nats://x:1")
    with pytest.raises(ValidationError, match="DATABASE_URL"):
        Settings()  # type: ignore[call-arg]


def test_service_prefix_overrides_the_common_variable(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("STORYCORE_DATABASE_URL", "postgresql://common@h/db")
    monkeypatch.setenv("AUTH_DATABASE_URL", "postgresql://own@h/db")
    monkeypatch.setenv("STORYCORE_NATS_URL", "nats://x:1")
    monkeypatch.setenv("AUTH_SIGNING_KEY", generate_private_key_pem().decode())
    settings = Settings()  # type: ignore[call-arg]
    assert settings.DATABASE_URL == "postgresql://own@h/db"
    assert settings.ENVIRONMENT == "production"


def test_kid_is_the_rfc7638_thumbprint_and_stable():
    pem = generate_private_key_pem()
    assert KeyRing.from_pem(pem).kid == KeyRing.from_pem(pem).kid
    assert KeyRing.from_pem(pem).kid != KeyRing.from_pem(generate_private_key_pem()).kid


def private_pem(kind: str) -> bytes:
    """A PKCS#8 PEM: the auth service's own Ed25519 kind, or an EC key on P-256 or P-384."""
    if kind == "ed25519":
        return generate_private_key_pem()
    curve = ec.SECP256R1() if kind == "p256" else ec.SECP384R1()
    return ec.generate_private_key(curve).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@pytest.mark.parametrize("kind", ["ed25519", "p256"])
async def test_minted_tokens_verify_and_rotated_keys_stay_published(kind: str):
    pem = private_pem(kind)
    old_pem = generate_private_key_pem()
    old = KeyRing.from_pem(old_pem)
    ring = KeyRing.from_pem(pem, previous=[old_pem])
    assert {k["kid"] for k in ring.jwks()["keys"]} == {ring.kid, old.kid}
    verifier = TokenVerifier(issuer="i", audience="a", keys=KeySet(ring.jwks()))
    user = uuid.uuid4()
    for signer in (ring, old):
        token = signer.mint_access_token(user_id=user, issuer="i", audience="a", ttl_seconds=60)
        assert (await verifier.verify(token)).user_id == user
    other = TokenVerifier(issuer="i", audience="someone-else", keys=KeySet(ring.jwks()))
    with pytest.raises(InvalidToken):
        await other.verify(
            ring.mint_access_token(user_id=user, issuer="i", audience="a", ttl_seconds=60)
        )


def _public_pem(private_pem: bytes) -> bytes:
    key = serialization.load_pem_private_key(private_pem, password=None)
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.mark.parametrize("kind", ["ed25519", "p256"])
def test_keys_and_tokens_agree_with_cryptography_and_pyjwt(kind: str):
    """The keys read without cryptography (PyNaCl) are the ones cryptography reads, their JWK is
    the one PyJWT writes, and their tokens verify with PyJWT's own algorithms."""
    pem = private_pem(kind)
    public = serialization.load_pem_private_key(pem, password=None).public_key()
    ring = KeyRing.from_pem(pem)
    algorithm = jwt.get_algorithm_by_name(ring.jwk["alg"])
    written = algorithm.to_jwk(public, as_dict=True)
    assert {k: ring.jwk[k] for k in written} == written  # the same curve and coordinates
    token = ring.mint_access_token(user_id=uuid.uuid4(), issuer="i", audience="a", ttl_seconds=60)
    claims = jwt.decode(token, key=public, algorithms=[ring.jwk["alg"]], audience="a", issuer="i")
    assert jwt.get_unverified_header(token)["kid"] == ring.kid
    assert claims["aud"] == "a"
    # A previous key given as its public PEM has the kid its private PEM gives.
    assert KeyRing.from_pem(pem, previous=[_public_pem(pem)]).previous[0]["kid"] == ring.kid


def test_a_pem_that_is_not_an_accepted_key_is_refused():
    with pytest.raises(ValueError, match="Ed25519 or P-256"):
        KeyRing.from_pem(private_pem("p384"))
    with pytest.raises(ValueError, match=r"PEM|key"):
        KeyRing.from_pem(b"-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n")
