"""TokenVerifier against a real HTTP server playing an OIDC issuer (discovery + JWKS)."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from jwt.algorithms import OKPAlgorithm

from storycore_shared.auth import InvalidToken, KeysUnavailable, TokenVerifier
from storycore_testkit.polling import eventually


class Issuer:
    """Serves /.well-known/openid-configuration and /jwks; keys can be rotated live."""

    def __init__(self) -> None:
        self.keys: dict[str, ed25519.Ed25519PrivateKey] = {}
        self.jwks_hits = 0
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/.well-known/openid-configuration":
                    body = {"issuer": issuer.url, "jwks_uri": f"{issuer.url}/jwks"}
                elif self.path == "/jwks":
                    issuer.jwks_hits += 1
                    body = {"keys": [issuer.jwk(kid) for kid in issuer.keys]}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def jwk(self, kid: str) -> dict[str, Any]:
        public = OKPAlgorithm.to_jwk(self.keys[kid].public_key(), as_dict=True)
        return {**public, "kid": kid, "alg": "EdDSA", "use": "sig"}

    def add_key(self) -> str:
        kid = uuid.uuid4().hex
        self.keys[kid] = ed25519.Ed25519PrivateKey.generate()
        return kid

    def token(self, kid: str, **claims: Any) -> str:
        now = datetime.now(UTC)
        body = {
            "sub": str(uuid.uuid4()),
            "iat": now,
            "exp": now + timedelta(minutes=5),
            "iss": self.url,
            "aud": "storycore",
            **claims,
        }
        return jwt.encode(body, self.keys[kid], algorithm="EdDSA", headers={"kid": kid})


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    issuer = Issuer()
    thread = threading.Thread(target=issuer.server.serve_forever, daemon=True)
    thread.start()
    yield issuer
    issuer.server.shutdown()
    issuer.server.server_close()


def verifier_for(issuer: Issuer) -> TokenVerifier:
    return TokenVerifier(issuer=issuer.url, audience="storycore", oidc_issuer_url=issuer.url)


async def test_oidc_discovery_then_rotation_is_picked_up(issuer: Issuer):
    first = issuer.add_key()
    verifier = verifier_for(issuer)
    principal = await verifier.verify(issuer.token(first, sub=str(uuid.UUID(int=7))))
    assert principal.user_id == uuid.UUID(int=7)
    second = issuer.add_key()  # rotated in after our first fetch

    async def accepted() -> bool:
        try:
            await verifier.verify(issuer.token(second))
            return True
        except InvalidToken:
            return False

    took = await eventually(accepted, within=5, what="the rotated-in key verifies")
    assert took < 2.5


async def test_unknown_kids_do_not_hammer_the_issuer(issuer: Issuer):
    kid = issuer.add_key()
    verifier = verifier_for(issuer)
    await verifier.verify(issuer.token(kid))
    hits = issuer.jwks_hits
    stranger = ed25519.Ed25519PrivateKey.generate()
    for _ in range(50):
        forged = jwt.encode(
            {"sub": "x"}, stranger, algorithm="EdDSA", headers={"kid": uuid.uuid4().hex}
        )
        with pytest.raises(InvalidToken):
            await verifier.verify(forged)
    assert issuer.jwks_hits - hits <= 1


async def test_issuer_down_without_keys_is_503_and_with_cached_keys_still_verifies(
    issuer: Issuer,
):
    kid = issuer.add_key()
    warm = verifier_for(issuer)
    await warm.verify(issuer.token(kid))
    token = issuer.token(kid)
    issuer.server.shutdown()
    issuer.server.server_close()
    assert (await warm.verify(token)).user_id
    cold = verifier_for(issuer)
    with pytest.raises(KeysUnavailable) as caught:
        await cold.verify(token)
    assert caught.value.status == 503


async def test_a_token_living_longer_than_the_issuer_allows_is_refused(issuer: Issuer):
    kid = issuer.add_key()
    verifier = TokenVerifier(
        issuer=issuer.url, audience="storycore", jwks_url=f"{issuer.url}/jwks", max_lifetime=1800
    )
    now = datetime.now(UTC)
    # ``iat`` is pinned to the same instant: measured from a later clock reading, a slow
    # machine could shrink the lifetime across a second boundary.
    fine = issuer.token(kid, iat=now, exp=now + timedelta(seconds=1800))
    assert (await verifier.verify(fine)).token == fine
    for lifetime in (timedelta(days=365), timedelta(seconds=1800 + 61)):
        with pytest.raises(InvalidToken, match="lives longer"):
            await verifier.verify(issuer.token(kid, iat=now, exp=now + lifetime))


async def test_a_verified_token_is_cached_until_it_expires_or_its_key_goes(issuer: Issuer):
    kid = issuer.add_key()
    verifier = TokenVerifier(issuer=issuer.url, audience="storycore", jwks_url=f"{issuer.url}/jwks")
    now = datetime.now(UTC)
    token = issuer.token(kid, exp=now + timedelta(seconds=2))
    first = await verifier.verify(token)
    assert await verifier.verify(token) is first  # from the cache: no second signature check
    # Another text is another token: one changed signature character is checked and refused.
    head, _, signature = token.rpartition(".")
    forged = f"{head}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"
    with pytest.raises(InvalidToken):
        await verifier.verify(forged)

    async def expired() -> bool:
        try:
            await verifier.verify(token)
            return False
        except InvalidToken:
            return True

    await eventually(expired, within=10, what="the cached token expires")
    # A key withdrawn from the JWKS: its cached tokens stop verifying at the next key refresh.
    other = issuer.add_key()
    live = issuer.token(other)
    await verifier.verify(live)
    del issuer.keys[other]
    await verifier.refresh(force=True)
    with pytest.raises(InvalidToken, match="unknown key"):
        await verifier.verify(live)


async def test_stale_keys_are_fetched_once_for_every_request_waiting(
    issuer: Issuer, monkeypatch: pytest.MonkeyPatch
):
    kid = issuer.add_key()
    verifier = verifier_for(issuer)
    await verifier.verify(issuer.token(kid))
    hits = issuer.jwks_hits
    monkeypatch.setattr("storycore_shared.auth.KEYS_MAX_AGE", 0.0)  # the keys are stale now
    monkeypatch.setattr("storycore_shared.auth.MIN_REFRESH_INTERVAL", 0.0)
    tokens = [issuer.token(kid) for _ in range(30)]
    principals = await asyncio.gather(*(verifier.verify(token) for token in tokens))
    assert len(principals) == 30
    assert issuer.jwks_hits - hits == 1
