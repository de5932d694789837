"""Auth use cases on real Postgres, each test rolled back: accounts, login, refresh rotation."""

from __future__ import annotations

import hashlib
import uuid

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from auth import service
from auth.errors import (
    EmailTaken,
    InvalidCredentials,
    InvalidRefreshToken,
    RefreshTokenReused,
    UserNotFound,
)
from auth.keys import KeyRing, generate_private_key_pem
from auth.models import RefreshToken, User, event_tables, login_attempts
from auth.schemas import LoginRequest, TokenPair, UserCreate
from auth.throttle import LoginThrottle, LoginThrottled, ThrottleRules
from storycore_shared.auth import KeySet, Principal, TokenVerifier

PASSWORD = "correct horse battery"
KEYRING = KeyRing.from_pem(generate_private_key_pem())


def _tokens(*, refresh_ttl: int = 3600) -> service.TokenSettings:
    return service.TokenSettings(
        KEYRING, "storycore-auth", "storycore", access_ttl=60, refresh_ttl=refresh_ttl
    )


TOKENS = _tokens()
RULES = ThrottleRules(
    account_allowance=3, client_allowance=8, window_seconds=60, base_seconds=30, max_seconds=60
)
THROTTLE = LoginThrottle(login_attempts, RULES, hashing_slots=2)
VERIFIER = TokenVerifier(issuer="storycore-auth", audience="storycore", keys=KeySet(KEYRING.jwks()))


async def _register(session: AsyncSession, email: str = "mara@example.com") -> User:
    return await service.register_user(
        session, data=UserCreate(email=email, password=PASSWORD, name=" Mara ")
    )


async def _login(
    session: AsyncSession,
    email: str = "mara@example.com",
    password: str = PASSWORD,
    tokens: service.TokenSettings = TOKENS,
    client: str = "192.0.2.1",
) -> TokenPair:
    return await service.login(
        session,
        data=LoginRequest(email=email, password=password),
        tokens=tokens,
        throttle=THROTTLE,
        client=client,
    )


async def _family_state(session: AsyncSession, refresh_token: str) -> list[tuple[bool, bool]]:
    """(used, revoked) of every token in the family of ``refresh_token``, oldest first."""
    token_hash = hashlib.sha256(refresh_token.encode()).hexdigest()
    family = select(RefreshToken.family_id).where(col(RefreshToken.token_hash) == token_hash)
    rows = await session.execute(
        select(RefreshToken.used_at, RefreshToken.revoked_at)
        .where(col(RefreshToken.family_id) == family.scalar_subquery())
        .order_by(col(RefreshToken.created_at))
        .execution_options(populate_existing=True)
    )
    return [(used is not None, revoked is not None) for used, revoked in rows]


async def test_register_stores_a_normalised_account_with_a_hash_and_an_event(
    session: AsyncSession,
) -> None:
    user = await _register(session, "  Mara@Example.COM ")
    stored = await session.get(User, user.id)
    assert stored is not None
    assert (stored.email, stored.name) == ("mara@example.com", "Mara")
    assert stored.password_hash.startswith("$argon2id$")
    assert PASSWORD not in stored.password_hash
    [(subject, payload)] = (
        await session.execute(select(event_tables.outbox.c.subject, event_tables.outbox.c.payload))
    ).all()
    assert subject == "user.registered"
    assert payload["data"] == {"id": str(user.id), "email": "mara@example.com", "name": "Mara"}
    assert payload["actor"] == str(user.id)


async def test_a_taken_email_is_a_409_whatever_its_case(session: AsyncSession) -> None:
    await _register(session)
    with pytest.raises(EmailTaken) as caught:
        await _register(session, "MARA@example.com")
    assert (caught.value.status, caught.value.code) == (409, "email_taken")
    users = (await session.scalars(select(User.email))).all()
    assert users == ["mara@example.com"]
    subjects = (await session.scalars(select(event_tables.outbox.c.subject))).all()
    assert subjects == ["user.registered"]


async def test_login_issues_a_verifiable_access_token_and_stores_only_a_refresh_hash(
    session: AsyncSession,
) -> None:
    user = await _register(session)
    pair = await _login(session, "MARA@example.com")
    assert (pair.token_type, pair.expires_in) == ("bearer", 60)
    principal = await VERIFIER.verify(pair.access_token)
    assert principal.user_id == user.id
    stored = (await session.scalars(select(RefreshToken))).all()
    assert len(stored) == 1
    assert stored[0].user_id == user.id
    assert stored[0].token_hash == hashlib.sha256(pair.refresh_token.encode()).hexdigest()
    assert pair.refresh_token not in stored[0].token_hash


async def test_a_wrong_password_and_an_unknown_email_fail_the_same_way(
    session: AsyncSession,
) -> None:
    await _register(session)
    with pytest.raises(InvalidCredentials) as wrong_password:
        await _login(session, password="not the password")
    with pytest.raises(InvalidCredentials) as unknown_email:
        await _login(session, email="nobody@example.com")
    failures = [wrong_password.value, unknown_email.value]
    assert {(e.status, e.code, e.detail) for e in failures} == {
        (401, "invalid_credentials", "The email or the password is wrong.")
    }
    assert (await session.scalars(select(RefreshToken))).all() == []


async def test_refresh_rotates_and_the_old_token_dies(session: AsyncSession) -> None:
    user = await _register(session)
    first = await _login(session)
    second = await service.refresh(session, token=first.refresh_token, tokens=TOKENS)
    assert second.refresh_token != first.refresh_token
    assert (await VERIFIER.verify(second.access_token)).user_id == user.id
    assert await _family_state(session, first.refresh_token) == [(True, False), (False, False)]
    third = await service.refresh(session, token=second.refresh_token, tokens=TOKENS)
    assert await _family_state(session, third.refresh_token) == [
        (True, False),
        (True, False),
        (False, False),
    ]


async def test_reusing_a_dead_refresh_token_revokes_the_whole_family(
    session: AsyncSession,
) -> None:
    await _register(session)
    first = await _login(session)
    other_login = await _login(session)
    second = await service.refresh(session, token=first.refresh_token, tokens=TOKENS)
    with pytest.raises(RefreshTokenReused) as caught:
        await service.refresh(session, token=first.refresh_token, tokens=TOKENS)
    assert caught.value.status == 401
    # The revocation is state that the error must keep: the request's session commits it.
    assert caught.value.commit_session is True
    assert await _family_state(session, first.refresh_token) == [(True, True), (False, True)]
    # The thief's (or the victim's) fresh token is dead too.
    with pytest.raises(RefreshTokenReused):
        await service.refresh(session, token=second.refresh_token, tokens=TOKENS)
    # Another login of the same user is not touched.
    assert await _family_state(session, other_login.refresh_token) == [(False, False)]
    rotated = await service.refresh(session, token=other_login.refresh_token, tokens=TOKENS)
    assert await _family_state(session, rotated.refresh_token) == [(True, False), (False, False)]


async def test_unknown_and_expired_refresh_tokens_are_refused(session: AsyncSession) -> None:
    await _register(session)
    with pytest.raises(InvalidRefreshToken):
        await service.refresh(session, token="never-issued", tokens=TOKENS)
    expired = await _login(session, tokens=_tokens(refresh_ttl=0))
    with pytest.raises(InvalidRefreshToken, match="expired"):
        await service.refresh(session, token=expired.refresh_token, tokens=TOKENS)
    assert await _family_state(session, expired.refresh_token) == [(False, False)]


async def test_logout_revokes_the_family_and_nothing_else(session: AsyncSession) -> None:
    await _register(session)
    first = await _login(session)
    second = await service.refresh(session, token=first.refresh_token, tokens=TOKENS)
    other_login = await _login(session)
    await service.logout(session, token=second.refresh_token)
    assert await _family_state(session, first.refresh_token) == [(True, True), (False, True)]
    with pytest.raises(RefreshTokenReused):
        await service.refresh(session, token=second.refresh_token, tokens=TOKENS)
    await service.logout(session, token="never-issued")  # a no-op, not an error
    assert await _family_state(session, other_login.refresh_token) == [(False, False)]


async def test_me_is_the_tokens_user(session: AsyncSession) -> None:
    user = await _register(session)
    me = await service.get_me(session, principal=Principal(user_id=user.id))
    assert (me.id, me.email) == (user.id, "mara@example.com")
    with pytest.raises(UserNotFound):
        await service.get_me(session, principal=Principal(user_id=uuid.uuid4()))


async def test_an_account_is_blocked_after_its_allowance_and_others_are_not(
    session: AsyncSession,
) -> None:
    await _register(session)
    await _register(session, "tomas@example.com")
    for _ in range(RULES.account_allowance):
        with pytest.raises(InvalidCredentials):
            await _login(session, password="wrong password!")
    with pytest.raises(LoginThrottled) as blocked:
        await _login(session, password="wrong password!")
    assert 1 <= int(blocked.value.headers["Retry-After"]) <= RULES.max_seconds
    # Now even the right password waits: the guesser learns nothing more.
    with pytest.raises(LoginThrottled):
        await _login(session)
    # Another account from the same address logs in.
    assert (await _login(session, "tomas@example.com")).access_token


async def test_a_client_spraying_many_accounts_is_blocked(session: AsyncSession) -> None:
    emails = [f"user{i}@example.com" for i in range(RULES.client_allowance + 1)]
    for email in emails[:-1]:
        with pytest.raises(InvalidCredentials):
            await _login(session, email=email, password="wrong password!", client="198.51.100.7")
    with pytest.raises(LoginThrottled):
        await _login(session, email=emails[-1], password="wrong password!", client="198.51.100.7")
    await _register(session, "spared@example.com")
    assert (await _login(session, "spared@example.com", client="203.0.113.9")).access_token


async def test_a_success_clears_the_account_s_failures(session: AsyncSession) -> None:
    await _register(session)
    for _ in range(RULES.account_allowance):
        with pytest.raises(InvalidCredentials):
            await _login(session, password="wrong password!")
    await _login(session)  # still inside the allowance: the right password works
    rows = await session.execute(select(login_attempts.c.key))
    assert [r[0] for r in rows] == ["client:192.0.2.1"]


def test_backoff_doubles_up_to_the_cap() -> None:
    rules = ThrottleRules(base_seconds=1, max_seconds=10)
    assert [rules.block_for(n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]
