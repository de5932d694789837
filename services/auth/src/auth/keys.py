"""Signing keys: load, publish as JWKS (kid = RFC 7638 thumbprint), mint access tokens.

An Ed25519 key (what the dev stack generates) is read from its PKCS#8 PEM and signs through
PyNaCl, so the auth process does not load ``cryptography`` for it (8 MB; see
``storycore_shared.token_keys``). A P-256 key, or an Ed25519 key in another encoding, is read
with ``cryptography``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from nacl.signing import SigningKey, VerifyKey

from storycore_shared.token_keys import codec

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec

    PrivateKey = SigningKey | ec.EllipticCurvePrivateKey
    PublicKey = VerifyKey | ec.EllipticCurvePublicKey

# RFC 8410: the DER of a PKCS#8 Ed25519 private key is this prefix and the 32-byte seed; the DER
# of its SubjectPublicKeyInfo is the second prefix and the 32-byte public key.
ED25519_PKCS8 = bytes.fromhex("302e020100300506032b657004220420")
ED25519_SPKI = bytes.fromhex("302a300506032b6570032100")


def _pem_body(pem: bytes, label: bytes) -> bytes | None:
    lines = pem.strip().splitlines()
    if len(lines) < 3 or lines[0] != b"-----BEGIN " + label + b"-----":
        return None
    if lines[-1] != b"-----END " + label + b"-----":
        return None
    try:
        return base64.b64decode(b"".join(line.strip() for line in lines[1:-1]), validate=True)
    except (binascii.Error, ValueError):
        return None


def generate_private_key_pem() -> bytes:
    """A fresh Ed25519 key in PKCS#8 PEM (the dev stack writes one to its data folder)."""
    body = base64.b64encode(ED25519_PKCS8 + bytes(SigningKey.generate().encode()))
    return b"-----BEGIN PRIVATE KEY-----\n" + body + b"\n-----END PRIVATE KEY-----\n"


def load_private_key(pem: bytes) -> PrivateKey:
    """The signing key of a PEM: an Ed25519 key as PyNaCl's, a P-256 key as cryptography's."""
    der = _pem_body(pem, b"PRIVATE KEY")
    if der is not None and len(der) == 48 and der.startswith(ED25519_PKCS8):
        return SigningKey(der[len(ED25519_PKCS8) :])
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    key = serialization.load_pem_private_key(pem, password=None)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raw = key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        return SigningKey(raw)
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        return key
    raise ValueError("the signing key must be Ed25519 or P-256")


def _public_from_pem(pem: bytes) -> PublicKey:
    if b"PRIVATE KEY" in pem:
        private = load_private_key(pem)
        return private.verify_key if isinstance(private, SigningKey) else private.public_key()
    der = _pem_body(pem, b"PUBLIC KEY")
    if der is not None and len(der) == 44 and der.startswith(ED25519_SPKI):
        return VerifyKey(der[len(ED25519_SPKI) :])
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    public = serialization.load_pem_public_key(pem)
    if isinstance(public, ed25519.Ed25519PublicKey):
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return VerifyKey(raw)
    if isinstance(public, ec.EllipticCurvePublicKey) and isinstance(public.curve, ec.SECP256R1):
        return public
    raise ValueError("previous keys must be Ed25519 or P-256")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def public_jwk(key: PublicKey) -> dict[str, Any]:
    jwk: dict[str, Any]
    if isinstance(key, VerifyKey):
        jwk = {"kty": "OKP", "crv": "Ed25519", "x": _b64(bytes(key.encode()))}
        alg = "EdDSA"
    else:
        numbers = key.public_numbers()
        jwk = {
            "kty": "EC",
            "crv": "P-256",
            "x": _b64(numbers.x.to_bytes(32, "big")),
            "y": _b64(numbers.y.to_bytes(32, "big")),
        }
        alg = "ES256"
    # RFC 7638: the required members only, sorted, without whitespace.
    canonical = json.dumps(jwk, separators=(",", ":"), sort_keys=True)
    thumbprint = base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest())
    return {**jwk, "kid": thumbprint.rstrip(b"=").decode(), "use": "sig", "alg": alg}


@dataclass(frozen=True)
class KeyRing:
    signing_key: PrivateKey
    jwk: dict[str, Any]
    previous: tuple[dict[str, Any], ...] = ()

    @classmethod
    def from_pem(cls, pem: bytes, previous: Iterable[bytes] = ()) -> KeyRing:
        key = load_private_key(pem)
        public = key.verify_key if isinstance(key, SigningKey) else key.public_key()
        old = tuple(public_jwk(_public_from_pem(p)) for p in previous)
        return cls(signing_key=key, jwk=public_jwk(public), previous=old)

    @property
    def kid(self) -> str:
        return str(self.jwk["kid"])

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.jwk, *self.previous]}

    def mint_access_token(
        self, *, user_id: uuid.UUID, issuer: str, audience: str, ttl_seconds: int
    ) -> str:
        now = datetime.now(UTC)
        claims = {
            "sub": str(user_id),
            "iat": now,
            "nbf": now,
            "exp": now + timedelta(seconds=ttl_seconds),
            "iss": issuer,
            "aud": audience,
            "jti": uuid.uuid4().hex,
        }
        key: Any = self.signing_key  # one of token_keys' algorithms' keys, not PyJWT's own
        return codec().encode(
            claims,
            key,
            algorithm=self.jwk["alg"],
            headers={"kid": self.kid, "typ": "JWT"},
        )
