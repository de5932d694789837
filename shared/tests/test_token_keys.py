"""Signature checks and JWK parsing of the token verifier (storycore_shared.token_keys).

Tokens are signed here the way the auth service and an external issuer sign them: PyJWT with
``cryptography`` keys. The verifier checks Ed25519 with PyNaCl and P-256 with ``cryptography``,
and a service process that only meets Ed25519 keys never loads ``cryptography``."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from jwt.algorithms import ECAlgorithm, OKPAlgorithm

from storycore_shared.auth import InvalidToken, KeySet, TokenVerifier
from storycore_shared.token_keys import UnusableKey, parse_jwk
from storycore_testkit.subprocess_report import python_report

ISSUER = "https://issuer.test"


def claims(**extra: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "sub": str(uuid.uuid4()),
        "iat": now,
        "exp": now + timedelta(minutes=5),
        "iss": ISSUER,
        "aud": "storycore",
        **extra,
    }


def ed_jwk(key: ed25519.Ed25519PrivateKey, kid: str) -> dict[str, Any]:
    return {**OKPAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": kid, "use": "sig"}


def ec_jwk(key: ec.EllipticCurvePrivateKey, kid: str) -> dict[str, Any]:
    return {**ECAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": kid, "use": "sig"}


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def tampered(token: str) -> str:
    """The same header and signature over another payload (a different subject)."""
    header, _, signature = token.split(".")
    payload = json.dumps({**claims(), "sub": str(uuid.uuid4())}, default=str).encode()
    return f"{header}.{b64(payload)}.{signature}"


ED = ed25519.Ed25519PrivateKey.generate()
P256 = ec.generate_private_key(ec.SECP256R1())
KEYS = KeySet({"keys": [ed_jwk(ED, "ed"), ec_jwk(P256, "p256")]})


def verifier() -> TokenVerifier:
    return TokenVerifier(issuer=ISSUER, audience="storycore", keys=KEYS)


async def test_eddsa_and_es256_tokens_verify_and_name_their_subject() -> None:
    body = claims(jti="t-1")
    for key, kid, alg in ((ED, "ed", "EdDSA"), (P256, "p256", "ES256")):
        token = jwt.encode(body, key, algorithm=alg, headers={"kid": kid})
        principal = await verifier().verify(token)
        assert str(principal.user_id) == body["sub"]
        assert principal.token_id == "t-1"


@pytest.mark.parametrize(("key", "kid", "alg"), [(ED, "ed", "EdDSA"), (P256, "p256", "ES256")])
async def test_a_forged_or_damaged_signature_is_refused(key: Any, kid: str, alg: str) -> None:
    token = jwt.encode(claims(), key, algorithm=alg, headers={"kid": kid})
    header, payload, signature = token.split(".")
    raw = base64.urlsafe_b64decode(signature + "==")
    flipped = b64(bytes([raw[0] ^ 1]) + raw[1:])
    stranger = (
        ed25519.Ed25519PrivateKey.generate()
        if alg == "EdDSA"
        else ec.generate_private_key(ec.SECP256R1())
    )
    forged = jwt.encode(claims(), stranger, algorithm=alg, headers={"kid": kid})
    bad = [
        tampered(token),
        f"{header}.{payload}.{flipped}",
        f"{header}.{payload}.{b64(raw[:-1])}",  # one byte short
        f"{header}.{payload}.{b64(raw + b'0')}",  # one byte long
        f"{header}.{payload}.",
        forged,
    ]
    for token_ in bad:
        with pytest.raises(InvalidToken):
            await verifier().verify(token_)


async def test_a_der_encoded_ecdsa_signature_is_not_a_jws_signature() -> None:
    from cryptography.hazmat.primitives import hashes

    token = jwt.encode(claims(), P256, algorithm="ES256", headers={"kid": "p256"})
    header, payload, _ = token.split(".")
    der = P256.sign(f"{header}.{payload}".encode(), ec.ECDSA(hashes.SHA256()))
    with pytest.raises(InvalidToken):
        await verifier().verify(f"{header}.{payload}.{b64(der)}")


async def test_algorithm_confusion_is_refused() -> None:
    # An EdDSA token naming the P-256 key, and the other way round.
    crossed = [
        jwt.encode(claims(), ED, algorithm="EdDSA", headers={"kid": "p256"}),
        jwt.encode(claims(), P256, algorithm="ES256", headers={"kid": "ed"}),
    ]
    # HMAC with the public key's bytes as the secret, and no signature at all.
    public = base64.urlsafe_b64decode(ed_jwk(ED, "ed")["x"] + "==")
    crossed.append(jwt.encode(claims(), public, algorithm="HS256", headers={"kid": "ed"}))
    crossed.append(jwt.encode(claims(), None, algorithm="none", headers={"kid": "ed"}))
    for token in crossed:
        with pytest.raises(InvalidToken):
            await verifier().verify(token)


async def test_claims_are_still_checked_by_pyjwt() -> None:
    now = datetime.now(UTC)
    for body in (
        claims(aud="someone-else"),
        claims(iss="https://elsewhere.test"),
        claims(exp=now - timedelta(minutes=5), iat=now - timedelta(minutes=10)),
        {k: v for k, v in claims().items() if k != "iat"},
    ):
        token = jwt.encode(body, ED, algorithm="EdDSA", headers={"kid": "ed"})
        with pytest.raises(InvalidToken):
            await verifier().verify(token)


def test_unusable_jwks_entries_are_skipped_and_the_rest_kept() -> None:
    good = ed_jwk(ED, "good")
    entries: list[Any] = [
        good,
        {**good, "kid": "wrong-curve", "crv": "Ed448"},
        {**good, "kid": "short", "x": good["x"][:-4]},
        {**good, "kid": "not-base64", "x": "!!" + good["x"][2:]},
        {**good, "kid": "named-other", "alg": "ES256"},
        {**good, "kid": "private", "d": good["x"]},
        {**ec_jwk(P256, "off-curve"), "y": b64(b"\x01" * 32)},
        {**good, "kid": "encryption", "use": "enc"},
        {"kty": "RSA", "kid": "rsa", "n": "AQAB", "e": "AQAB"},
        "not an object",
        {**good, "kid": None},
    ]
    keys = KeySet({"keys": entries})
    assert list(keys.keys) == ["good"]
    assert keys.keys["good"].algorithm_name == "EdDSA"
    with pytest.raises(UnusableKey):
        parse_jwk({**good, "crv": "X25519"})


PROGRAM = """
import asyncio, json, sys
from storycore_shared.auth import KeySet, TokenVerifier

data = json.loads(sys.argv[1])
keys = KeySet({"keys": data["jwks"]["keys"][:1]})  # the Ed25519 key only
verifier = TokenVerifier(issuer=data["issuer"], audience="storycore", keys=keys)
first = asyncio.run(verifier.verify(data["eddsa"]))
without = "cryptography" not in sys.modules
keys.load(data["jwks"])  # a P-256 key is published next to it
second = asyncio.run(verifier.verify(data["es256"]))
print(json.dumps({
    "users": [str(first.user_id), str(second.user_id)],
    "eddsa_without_cryptography": without,
    "cryptography_after_es256": "cryptography" in sys.modules,
}))
"""


def test_a_service_verifying_eddsa_tokens_never_loads_cryptography() -> None:
    users = [claims(), claims()]
    data = {
        "issuer": ISSUER,
        "jwks": {"keys": [ed_jwk(ED, "ed"), ec_jwk(P256, "p256")]},
        "eddsa": jwt.encode(users[0], ED, algorithm="EdDSA", headers={"kid": "ed"}),
        "es256": jwt.encode(users[1], P256, algorithm="ES256", headers={"kid": "p256"}),
    }
    report = python_report(PROGRAM, json.dumps(data))
    assert report["users"] == [users[0]["sub"], users[1]["sub"]]
    assert report["eddsa_without_cryptography"] is True
    assert report["cryptography_after_es256"] is True
