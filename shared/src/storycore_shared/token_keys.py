"""The keys and signatures behind :mod:`storycore_shared.auth` and the auth service's tokens.

PyJWT parses and writes the tokens and checks their claims; signing and the signature check are
one of two PyJWT ``Algorithm`` objects registered on this module's own PyJWT instance:

- ``EdDSA`` (Ed25519, what the auth service signs with) through PyNaCl's libsodium;
- ``ES256`` (P-256, for an auth keyring or an external OIDC issuer that uses it) through
  ``cryptography``, imported when the first such key arrives.

Why not PyJWT's own algorithms: they need ``cryptography``, whose Rust extension and modules are
8 MB of every process that imports it (docs/benchmarks.md, issue 11), and most services only
ever verify Ed25519 signatures. :func:`pyjwt` therefore imports PyJWT with ``cryptography``
hidden when nothing in the process has loaded either yet. The auth service signs with an
Ed25519 key through PyNaCl too (``auth.keys`` reads its PKCS#8 PEM), so it needs
``cryptography`` only for a P-256 key. A process that loaded PyJWT with ``cryptography`` first
(a test that forges tokens) signs and verifies through the same code.
"""

from __future__ import annotations

import base64
import binascii
import json
import sys
from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import TYPE_CHECKING, Any

from nacl.exceptions import CryptoError
from nacl.signing import SigningKey, VerifyKey

if TYPE_CHECKING:
    import jwt
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey

ALGORITHMS = ("EdDSA", "ES256")
# The key type and curve each algorithm's keys must have, which also names the algorithm of a
# JWK that carries no "alg".
KEY_TYPES = {("OKP", "Ed25519"): "EdDSA", ("EC", "P-256"): "ES256"}


def pyjwt() -> ModuleType:
    """PyJWT, imported without ``cryptography`` unless this process has loaded one of them."""
    if "jwt" in sys.modules:
        return sys.modules["jwt"]
    hide = "cryptography" not in sys.modules
    if hide:
        sys.modules["cryptography"] = None  # type: ignore[assignment]  # an import fails at once
    try:
        import jwt
    finally:
        if hide and sys.modules.get("cryptography", ...) is None:
            del sys.modules["cryptography"]
    return jwt


@dataclass(frozen=True, slots=True)
class PublicKey:
    """One verification key of a JWKS: its algorithm and the key object that algorithm uses."""

    kid: str
    algorithm_name: str
    key: Any


class UnusableKey(ValueError):
    """A JWK that is not a public signing key of an accepted algorithm."""


def _b64(value: object, size: int) -> bytes:
    if not isinstance(value, str):
        raise UnusableKey("a key coordinate is not a string")
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError) as exc:
        raise UnusableKey("a key coordinate is not base64url") from exc
    if len(raw) != size:
        raise UnusableKey(f"a key coordinate is {len(raw)} bytes, not {size}")
    return bytes(raw)


def parse_jwk(entry: dict[str, Any]) -> PublicKey:
    """A JWKS entry as a :class:`PublicKey`; :class:`UnusableKey` when it cannot be one."""
    kid = entry.get("kid")
    if not isinstance(kid, str):
        raise UnusableKey("the key has no kid")
    shape = (entry.get("kty"), entry.get("crv"))
    algorithm = KEY_TYPES.get(shape)  # type: ignore[arg-type]
    if algorithm is None or entry.get("alg", algorithm) != algorithm:
        raise UnusableKey(f"no accepted algorithm for {shape} keys named {entry.get('alg')!r}")
    if "d" in entry:
        raise UnusableKey("a private key was published")
    try:
        if algorithm == "EdDSA":
            return PublicKey(kid, algorithm, VerifyKey(_b64(entry.get("x"), 32)))
        return PublicKey(kid, algorithm, _p256(_b64(entry.get("x"), 32), _b64(entry.get("y"), 32)))
    except (ValueError, TypeError, CryptoError) as exc:
        raise UnusableKey(str(exc)) from exc


def _p256(x: bytes, y: bytes) -> EllipticCurvePublicKey:
    from cryptography.hazmat.primitives.asymmetric import ec

    numbers = ec.EllipticCurvePublicNumbers(
        int.from_bytes(x, "big"), int.from_bytes(y, "big"), ec.SECP256R1()
    )
    return numbers.public_key()  # ValueError when the point is not on the curve


@cache
def codec() -> jwt.PyJWT:
    """A PyJWT instance that signs and verifies with the two algorithms of this module only."""
    library = pyjwt()
    algorithms = _algorithm_classes(library)
    signatures = library.PyJWS(algorithms=[])
    for name in ALGORITHMS:
        signatures.register_algorithm(name, algorithms[name]())
    instance: jwt.PyJWT = library.PyJWT()
    # PyJWT's encode and decode sign and check through this object (the library sets the
    # attribute the same way for its module-level functions); the claims checks stay PyJWT's.
    instance._jws = signatures
    return instance


@cache
def _algorithm_classes(library: ModuleType) -> dict[str, type]:
    base = library.algorithms.Algorithm

    class _OwnKeys(base):  # type: ignore[misc, valid-type]
        @staticmethod
        def to_jwk(key_obj: Any, as_dict: bool = False) -> Any:
            raise NotImplementedError("public_jwk() publishes keys")

        @staticmethod
        def from_jwk(jwk: str | dict[str, Any]) -> Any:
            return parse_jwk(json.loads(jwk) if isinstance(jwk, str) else jwk).key

    class Ed25519(_OwnKeys):
        def prepare_key(self, key: Any) -> VerifyKey | SigningKey:
            if not isinstance(key, VerifyKey | SigningKey):
                raise library.InvalidKeyError("An EdDSA token needs an Ed25519 key.")
            return key

        def sign(self, msg: bytes, key: VerifyKey | SigningKey) -> bytes:
            if not isinstance(key, SigningKey):
                raise library.InvalidKeyError("Signing needs the private key.")
            return bytes(key.sign(msg).signature)

        def verify(self, msg: bytes, key: VerifyKey | SigningKey, sig: bytes) -> bool:
            public = key.verify_key if isinstance(key, SigningKey) else key
            try:
                public.verify(msg, sig)
            except (CryptoError, ValueError, TypeError):
                return False
            return True

    class P256(_OwnKeys):
        def prepare_key(self, key: Any) -> Any:
            from cryptography.hazmat.primitives.asymmetric import ec

            kinds = (ec.EllipticCurvePublicKey, ec.EllipticCurvePrivateKey)
            if not isinstance(key, kinds) or key.curve.name != "secp256r1":
                raise library.InvalidKeyError("An ES256 token needs a P-256 key.")
            return key

        def sign(self, msg: bytes, key: Any) -> bytes:
            from cryptography.hazmat.primitives import hashes
            from cryptography.hazmat.primitives.asymmetric import ec
            from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise library.InvalidKeyError("Signing needs the private key.")
            r, s = decode_dss_signature(key.sign(msg, ec.ECDSA(hashes.SHA256())))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")  # RFC 7518 3.4

        def verify(self, msg: bytes, key: Any, sig: bytes) -> bool:
            from cryptography.exceptions import InvalidSignature
            from cryptography.hazmat.primitives import hashes
            from cryptography.hazmat.primitives.asymmetric import ec
            from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

            if len(sig) != 64:  # JWS carries r and s as two 32-byte integers (RFC 7518 3.4)
                return False
            if isinstance(key, ec.EllipticCurvePrivateKey):
                key = key.public_key()
            r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
            try:
                key.verify(encode_dss_signature(r, s), msg, ec.ECDSA(hashes.SHA256()))
            except InvalidSignature:
                return False
            return True

    return {"EdDSA": Ed25519, "ES256": P256}
