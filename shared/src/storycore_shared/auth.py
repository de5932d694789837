"""Access-token verification with PyJWT, for every service (signature checks and keys in
:mod:`storycore_shared.token_keys`).

Only asymmetric algorithms are accepted (a hard-coded allowlist), keys come from a JWKS (the
auth service's, or an external OIDC issuer's), and ``exp, iat, sub, iss, aud`` are all required.
A verified token becomes a typed :class:`Principal`::

    @router.get("/api/projects/{id}")
    async def get_project(id: UUID, principal: PrincipalDep) -> ProjectPublic: ...
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Annotated, Any

import httpx
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from storycore_shared import outbound
from storycore_shared.errors import ServiceUnavailable, Unauthorized
from storycore_shared.token_keys import PublicKey, UnusableKey, codec, parse_jwk, pyjwt

logger = logging.getLogger(__name__)

ALLOWED_ALGORITHMS = frozenset({"EdDSA", "ES256"})
REQUIRED_CLAIMS = ["exp", "iat", "sub", "iss", "aud"]
# An unknown kid triggers a JWKS refresh at most this often, so garbage tokens cannot make us
# hammer the issuer, while a key rotated in is picked up within a second.
MIN_REFRESH_INTERVAL = 1.0
# Cached keys are re-fetched after this long, so a key withdrawn from the JWKS stops verifying.
KEYS_MAX_AGE = 300.0
# Clock skew allowed on a token's lifetime.
LEEWAY_SECONDS = 60
# Tokens verified already, kept by their exact text until they expire: a client sends the same
# token for its whole life, and the signature check is the costliest step of a request.
VERIFIED_CACHE_SIZE = 4096


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller. ``user_id`` is the token's ``sub``.

    ``token`` is the bearer token it was verified from, kept only so that a replica miss can ask
    the owning service on the caller's behalf (see ``replicas.projects``); it is left out of
    ``repr`` and comparisons, so it never reaches a log line. A principal from a stream ticket
    or an event has none.
    """

    user_id: uuid.UUID
    token_id: str | None = None
    token: str | None = field(default=None, repr=False, compare=False)


class InvalidToken(Unauthorized):
    code = "invalid_token"
    title = "Invalid token"


class KeysUnavailable(ServiceUnavailable):
    code = "auth_keys_unavailable"
    title = "Token signing keys unavailable"


class KeySet:
    """Public keys by ``kid``, filled from a JWKS document or given directly."""

    def __init__(self, jwks: dict[str, Any] | None = None) -> None:
        self.keys: dict[str, PublicKey] = {}
        if jwks:
            self.load(jwks)

    def load(self, jwks: dict[str, Any]) -> None:
        keys: dict[str, PublicKey] = {}
        for entry in jwks.get("keys", []):
            if (
                not isinstance(entry, dict)
                or entry.get("use", "sig") != "sig"
                or "kid" not in entry
            ):
                continue
            try:
                key = parse_jwk(entry)
            except UnusableKey as exc:
                logger.warning(
                    "auth.jwks.unusable_key", extra={"kid": entry.get("kid"), "error": str(exc)}
                )
                continue
            if key.algorithm_name in ALLOWED_ALGORITHMS:
                keys[key.kid] = key
        self.keys = keys


def _number(claim: object) -> float:
    if isinstance(claim, bool) or not isinstance(claim, int | float):
        raise InvalidToken("The token's times are not numbers.")
    return float(claim)


class TokenVerifier:
    """Verifies access tokens against a key set that can refresh itself from a JWKS URL."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        jwks_url: str | None = None,
        oidc_issuer_url: str | None = None,
        keys: KeySet | None = None,
        http_timeout: float = 3.0,
        max_lifetime: float | None = None,
    ) -> None:
        if not (jwks_url or oidc_issuer_url or keys):
            raise ValueError("a TokenVerifier needs a JWKS URL, an OIDC issuer or a key set")
        self.issuer = issuer
        self.audience = audience
        self.jwks_url = jwks_url
        self.oidc_issuer_url = oidc_issuer_url
        self.keys = keys or KeySet()
        self._static = keys is not None and not (jwks_url or oidc_issuer_url)
        self._http_timeout = http_timeout
        # A token may live at most this long (exp - iat), however it was signed.
        self.max_lifetime = max_lifetime
        self._last_refresh = 0.0  # the last fetch that succeeded
        self._last_attempt = -MIN_REFRESH_INTERVAL  # when the last fetch started
        self._last_done = -MIN_REFRESH_INTERVAL  # and when it ended, well or not
        self._lock = asyncio.Lock()
        self._verified: dict[str, tuple[Principal, float, str]] = {}

    async def _discover_jwks_url(self, client: httpx.AsyncClient) -> str:
        if self.jwks_url:
            return self.jwks_url
        assert self.oidc_issuer_url
        url = self.oidc_issuer_url.rstrip("/") + "/.well-known/openid-configuration"
        answer = await client.get(url)
        answer.raise_for_status()
        self.jwks_url = str(answer.json()["jwks_uri"])
        return self.jwks_url

    async def refresh(self, *, force: bool = False) -> None:
        """Fetch the JWKS again: at most once per :data:`MIN_REFRESH_INTERVAL` unless
        ``force``, and once for all the requests that ask at the same time (those waiting for
        the lock use the fetch that ran meanwhile)."""
        if self._static:
            return
        asked = time.monotonic()
        async with self._lock:
            recent = time.monotonic() - self._last_attempt < MIN_REFRESH_INTERVAL
            if self._last_done >= asked or (recent and not force):
                if not self.keys.keys:
                    raise KeysUnavailable("The token issuer's keys could not be fetched.")
                return
            self._last_attempt = time.monotonic()
            try:
                async with outbound.client(timeout=self._http_timeout) as client:
                    url = await self._discover_jwks_url(client)
                    answer = await client.get(url)
                    answer.raise_for_status()
                    document = answer.json()
            except (httpx.HTTPError, json.JSONDecodeError, KeyError) as exc:
                self._last_done = time.monotonic()
                logger.warning("auth.jwks.fetch_failed", extra={"error": repr(exc)})
                if not self.keys.keys:
                    raise KeysUnavailable("The token issuer's keys could not be fetched.") from exc
                return
            self.keys.load(document)
            self._last_refresh = self._last_done = time.monotonic()

    async def _key_for(self, kid: str) -> PublicKey:
        now = time.monotonic()
        stale = now - self._last_refresh > KEYS_MAX_AGE
        if not self._static and stale and now - self._last_attempt >= MIN_REFRESH_INTERVAL:
            await self.refresh(force=True)
        key = self.keys.keys.get(kid)
        if key is None:
            await self.refresh()
            key = self.keys.keys.get(kid)
        if key is None:
            raise InvalidToken("The token was signed by an unknown key.")
        return key

    async def verify(self, token: str) -> Principal:
        """The token's principal: from the cache of verified tokens while it has not expired
        and its key is still published, else verified in full (and then cached). A token that
        fails is never cached, so it fails again each time."""
        cached = self._verified.get(token)
        if cached is not None:
            principal, expires, kid = cached
            if time.time() < expires:
                await self._key_for(kid)  # a key withdrawn from the JWKS stops its tokens
                return principal
            del self._verified[token]
        principal, expires, kid = await self._verify(token)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            del self._verified[next(iter(self._verified))]  # the oldest
        self._verified[token] = (principal, expires, kid)
        return principal

    async def _verify(self, token: str) -> tuple[Principal, float, str]:
        jwt = pyjwt()
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken("The token is malformed.") from exc
        alg = header.get("alg")
        kid = header.get("kid")
        if alg not in ALLOWED_ALGORITHMS:
            raise InvalidToken("The token's algorithm is not accepted.")
        if not isinstance(kid, str):
            raise InvalidToken("The token names no key.")
        key = await self._key_for(kid)
        if key.algorithm_name != alg:
            raise InvalidToken("The token's algorithm does not match its key.")
        try:
            claims = codec().decode(
                token,
                key=key.key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken("The token has expired.") from exc
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"The token was rejected: {exc}.") from exc
        lifetime = _number(claims["exp"]) - _number(claims["iat"])
        if self.max_lifetime is not None and lifetime > self.max_lifetime + LEEWAY_SECONDS:
            raise InvalidToken("The token lives longer than this issuer's tokens may.")
        try:
            user_id = uuid.UUID(str(claims["sub"]))
        except ValueError as exc:
            raise InvalidToken("The token's subject is not a user id.") from exc
        jti = claims.get("jti")
        principal = Principal(user_id=user_id, token_id=str(jti) if jti else None, token=token)
        return principal, _number(claims["exp"]), kid


_bearer = HTTPBearer(auto_error=False)


async def get_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    # Imported here because the app module builds on this one.
    from storycore_shared.app import runtime_of

    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("Send `Authorization: Bearer <access token>`.")
    return await runtime_of(request).verifier.verify(credentials.credentials)


PrincipalDep = Annotated[Principal, Depends(get_principal)]
