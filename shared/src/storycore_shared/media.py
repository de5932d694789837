"""Signed media URLs: what lets ``<img>``, ``<audio>`` and ``<video>`` load a byte route.

A browser cannot send ``Authorization`` from a media element, so an answer that points at bytes
carries a short-lived signed URL instead, in the manner of an S3 presigned URL::

    /api/sequences/<job>/keyframes/0?expires=1764343200&user=<uuid>&sig=<hex>

``sig`` is HMAC-SHA256, keyed by ``STORYCORE_MEDIA_SIGNING_KEY``, over the path, the expiry and
the user id: it is good for exactly that path, until it expires, for that user (the route's
owner check still applies to them). A byte route takes :data:`MediaPrincipalDep` instead of
``PrincipalDep``: a bearer token, or a valid signature; an expired or altered one is 403::

    @router.get("/{id}/download")
    async def download(id: UUID, principal: MediaPrincipalDep) -> Response: ...

    signer = MediaSigner(settings.MEDIA_SIGNING_KEY, settings.MEDIA_URL_TTL_SECONDS)
    url = signer.sign("/api/rigging/<id>/download", user_id=principal.user_id)
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from typing import Annotated, ClassVar
from urllib.parse import urlencode

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, Field, SecretStr

from storycore_shared.auth import Principal, _bearer
from storycore_shared.errors import Forbidden, Unauthorized

SIGNED_PARAMS = ("expires", "user", "sig")


class InvalidMediaSignature(Forbidden):
    code = "invalid_media_signature"
    title = "Invalid media signature"


class MediaSettings(BaseModel):
    """The settings of a service that serves or hands out media URLs (a settings mixin)."""

    MEDIA_SIGNING_KEY: SecretStr
    MEDIA_URL_TTL_SECONDS: int = Field(default=3600, gt=0, le=7 * 24 * 3600)


class MediaSigner:
    """Signs and checks media URLs with one key."""

    SEPARATOR: ClassVar[bytes] = b"\n"

    def __init__(self, key: SecretStr, ttl_seconds: int = 3600) -> None:
        self._key = key.get_secret_value().encode()
        if len(self._key) < 16:
            raise ValueError("MEDIA_SIGNING_KEY must be at least 16 characters")
        self.ttl_seconds = ttl_seconds

    @classmethod
    def from_settings(cls, settings: object) -> MediaSigner:
        if not isinstance(settings, MediaSettings):
            raise TypeError(f"{type(settings).__name__} does not include MediaSettings")
        return cls(settings.MEDIA_SIGNING_KEY, settings.MEDIA_URL_TTL_SECONDS)

    def signature(self, path: str, expires: int, user_id: uuid.UUID) -> str:
        message = self.SEPARATOR.join((path.encode(), str(expires).encode(), str(user_id).encode()))
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def sign(self, path: str, *, user_id: uuid.UUID, now: float | None = None) -> str:
        """``path`` with ``?expires=&user=&sig=`` good for at least ``ttl_seconds`` from ``now``.

        The expiry is rounded up to a quarter of the TTL, so answers within that window carry
        the same URL and a browser's image cache keeps working across them.
        """
        step = max(1, self.ttl_seconds // 4)
        earliest = int(now if now is not None else time.time()) + self.ttl_seconds
        expires = -(-earliest // step) * step
        query = urlencode(
            {
                "expires": expires,
                "user": str(user_id),
                "sig": self.signature(path, expires, user_id),
            }
        )
        return f"{path}?{query}"

    def sign_suite_url(self, url: str | None, *, user_id: uuid.UUID) -> str | None:
        """Sign a URL when it is one of the suite's own paths (``/api/...``); leave others."""
        if not url or not url.startswith("/api/"):
            return url
        return self.sign(url.partition("?")[0], user_id=user_id)

    def verify(
        self, path: str, *, expires: str, user: str, sig: str, now: float | None = None
    ) -> uuid.UUID:
        """The signed user, or :class:`InvalidMediaSignature` (403)."""
        try:
            expires_at = int(expires)
            user_id = uuid.UUID(user)
        except ValueError as exc:
            raise InvalidMediaSignature("The media URL's signature is malformed.") from exc
        expected = self.signature(path, expires_at, user_id)
        # compare_digest refuses non-ASCII text (a TypeError, a 500): check the shape first.
        if len(sig) != len(expected) or not sig.isascii():
            raise InvalidMediaSignature("The media URL's signature does not match this path.")
        if not hmac.compare_digest(expected, sig.lower()):
            raise InvalidMediaSignature("The media URL's signature does not match this path.")
        if expires_at <= int(now if now is not None else time.time()):
            raise InvalidMediaSignature("The media URL has expired; ask for a fresh one.")
        return user_id


async def get_media_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """A bearer token, else a signature for exactly this path (``?expires=&user=&sig=``)."""
    from storycore_shared.app import runtime_of

    runtime = runtime_of(request)
    if credentials is not None and credentials.scheme.lower() == "bearer":
        return await runtime.verifier.verify(credentials.credentials)
    params = request.query_params
    if not any(name in params for name in SIGNED_PARAMS):
        raise Unauthorized("Send `Authorization: Bearer <access token>` or a signed media URL.")
    signer = MediaSigner.from_settings(runtime.settings)
    user_id = signer.verify(
        request.url.path,
        expires=params.get("expires", ""),
        user=params.get("user", ""),
        sig=params.get("sig", ""),
    )
    return Principal(user_id=user_id)


MediaPrincipalDep = Annotated[Principal, Depends(get_media_principal)]
