"""Signing keys: load, publish as JWKS (kid = RFC 7638 thumbprint), mint access tokens."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from jwt.algorithms import ECAlgorithm, OKPAlgorithm

PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey


def generate_private_key_pem() -> bytes:
    """A fresh Ed25519 key in PKCS#8 PEM (the dev stack writes one to its data folder)."""
    return ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _algorithm_for(key: PublicKey) -> str:
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "EdDSA"
    if isinstance(key.curve, ec.SECP256R1):
        return "ES256"
    raise ValueError("only Ed25519 and P-256 keys are accepted")


def public_jwk(key: PublicKey) -> dict[str, Any]:
    alg = _algorithm_for(key)
    members: tuple[str, ...]
    if isinstance(key, ed25519.Ed25519PublicKey):
        jwk: dict[str, Any] = OKPAlgorithm.to_jwk(key, as_dict=True)
        members = ("crv", "kty", "x")
    else:
        jwk = ECAlgorithm.to_jwk(key, as_dict=True)
        members = ("crv", "kty", "x", "y")
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    thumbprint = base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest())
    return {**jwk, "kid": thumbprint.rstrip(b"=").decode(), "use": "sig", "alg": alg}


@dataclass(frozen=True)
class KeyRing:
    signing_key: PrivateKey
    jwk: dict[str, Any]
    previous: tuple[dict[str, Any], ...] = ()

    @classmethod
    def from_pem(cls, pem: bytes, previous: Iterable[bytes] = ()) -> KeyRing:
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
            raise ValueError("the signing key must be Ed25519 or P-256")
        old = tuple(public_jwk(_public_from_pem(p)) for p in previous)
        return cls(signing_key=key, jwk=public_jwk(key.public_key()), previous=old)

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
        return jwt.encode(
            claims,
            self.signing_key,
            algorithm=self.jwk["alg"],
            headers={"kid": self.kid, "typ": "JWT"},
        )


def _public_from_pem(pem: bytes) -> PublicKey:
    if b"PRIVATE KEY" in pem:
        private = serialization.load_pem_private_key(pem, password=None)
        public = private.public_key()
    else:
        public = serialization.load_pem_public_key(pem)
    if not isinstance(public, ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey):
        raise ValueError("previous keys must be Ed25519 or P-256")
    return public
