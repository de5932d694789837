"""Business rules of the auth service. Functions flush, never commit."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import anyio.to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from auth import repository
from auth.config import Settings
from auth.errors import (
    EmailTaken,
    InvalidCredentials,
    InvalidRefreshToken,
    RefreshTokenReused,
    UserNotFound,
)
from auth.keys import KeyRing
from auth.models import RefreshToken, User, event_tables
from auth.schemas import LoginRequest, TokenPair, UserCreate
from auth.throttle import LoginThrottle, ThrottleRules
from storycore_shared.auth import Principal
from storycore_shared.db import utcnow
from storycore_shared.events.contracts.auth import UserRegistered
from storycore_shared.events.outbox import add_event

# argon2id with the library's RFC 9106 low-memory profile.
hasher = PasswordHasher()
# Verified against when the email is unknown, so both failures cost the same time.
_DUMMY_HASH = hasher.hash(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class TokenSettings:
    keyring: KeyRing
    issuer: str
    audience: str
    access_ttl: int
    refresh_ttl: int

    @classmethod
    def from_settings(cls, settings: Settings, keyring: KeyRing) -> TokenSettings:
        return cls(
            keyring,
            settings.JWT_ISSUER,
            settings.JWT_AUDIENCE,
            settings.ACCESS_TOKEN_TTL_SECONDS,
            settings.REFRESH_TOKEN_TTL_SECONDS,
        )


def normalise_email(email: str) -> str:
    return email.strip().lower()


def _hash_refresh_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def _verify_password(password_hash: str, password: str) -> bool:
    def check() -> bool:
        try:
            return hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    return await anyio.to_thread.run_sync(check)


async def register_user(session: AsyncSession, *, data: UserCreate) -> User:
    email = normalise_email(data.email)
    if await repository.get_user_by_email(session, email) is not None:
        raise EmailTaken(f"{email} is already registered.")
    password_hash = await anyio.to_thread.run_sync(hasher.hash, data.password)
    user = User(email=email, name=data.name.strip(), password_hash=password_hash)
    session.add(user)
    try:
        await session.flush()
    except IntegrityError as exc:  # a concurrent registration of the same email won
        raise EmailTaken(f"{email} is already registered.") from exc
    await add_event(
        session,
        event_tables,
        UserRegistered(id=user.id, email=user.email, name=user.name),
        source="auth",
        actor=user.id,
    )
    return user


async def _issue_pair(
    session: AsyncSession, tokens: TokenSettings, user_id: uuid.UUID, family_id: uuid.UUID
) -> TokenPair:
    refresh = secrets.token_urlsafe(48)
    session.add(
        RefreshToken(
            family_id=family_id,
            user_id=user_id,
            token_hash=_hash_refresh_token(refresh),
            expires_at=utcnow() + timedelta(seconds=tokens.refresh_ttl),
        )
    )
    await session.flush()
    access = tokens.keyring.mint_access_token(
        user_id=user_id,
        issuer=tokens.issuer,
        audience=tokens.audience,
        ttl_seconds=tokens.access_ttl,
    )
    return TokenPair(access_token=access, refresh_token=refresh, expires_in=tokens.access_ttl)


async def login(
    session: AsyncSession,
    *,
    data: LoginRequest,
    tokens: TokenSettings,
    throttle: LoginThrottle,
    client: str | None,
) -> TokenPair:
    email = normalise_email(data.email)
    await throttle.check(session, email, client)  # a blocked key costs no hashing
    user = await repository.get_user_by_email(session, email)
    async with throttle.hashing:
        valid = await _verify_password(user.password_hash if user else _DUMMY_HASH, data.password)
    if user is None or not valid:
        await throttle.failed(session, email, client)
        raise InvalidCredentials("The email or the password is wrong.")
    await throttle.succeeded(session, email)
    if hasher.check_needs_rehash(user.password_hash):
        async with throttle.hashing:
            user.password_hash = await anyio.to_thread.run_sync(hasher.hash, data.password)
    return await _issue_pair(session, tokens, user.id, family_id=uuid.uuid4())


async def refresh(session: AsyncSession, *, token: str, tokens: TokenSettings) -> TokenPair:
    stored = await repository.get_refresh_token_for_update(session, _hash_refresh_token(token))
    if stored is None:
        raise InvalidRefreshToken("The refresh token is not known.")
    now = utcnow()
    if stored.used_at is not None or stored.revoked_at is not None:
        # A dead token came back: someone holds a copy. End the whole login.
        await repository.revoke_family(session, stored.family_id, now)
        raise RefreshTokenReused("The refresh token was already used; the session is revoked.")
    if stored.expires_at <= now:
        raise InvalidRefreshToken("The refresh token has expired.")
    stored.used_at = now
    return await _issue_pair(session, tokens, stored.user_id, family_id=stored.family_id)


async def logout(session: AsyncSession, *, token: str) -> None:
    stored = await repository.get_refresh_token_for_update(session, _hash_refresh_token(token))
    if stored is not None:
        await repository.revoke_family(session, stored.family_id, utcnow())


async def get_me(session: AsyncSession, *, principal: Principal) -> User:
    user = await repository.get_user(session, principal.user_id)
    if user is None:
        raise UserNotFound("The token's user does not exist.")
    return user


@dataclass(frozen=True)
class AuthState:
    """What the auth service builds at start-up."""

    tokens: TokenSettings
    throttle: LoginThrottle

    @classmethod
    def from_settings(cls, settings: Settings, keyring: KeyRing, throttle_table: Any) -> AuthState:
        rules = ThrottleRules(
            account_allowance=settings.LOGIN_ACCOUNT_ALLOWANCE,
            client_allowance=settings.LOGIN_CLIENT_ALLOWANCE,
            window_seconds=settings.LOGIN_WINDOW_SECONDS,
            base_seconds=settings.LOGIN_BACKOFF_BASE_SECONDS,
            max_seconds=settings.LOGIN_BACKOFF_MAX_SECONDS,
        )
        return cls(
            TokenSettings.from_settings(settings, keyring),
            LoginThrottle(throttle_table, rules, hashing_slots=settings.HASHING_CONCURRENCY),
        )
