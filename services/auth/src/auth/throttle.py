"""Login throttling per account and per client address, kept in Postgres (so it holds across
auth replicas).

Each key (``account:<email>``, ``client:<address>``) counts failed logins inside a window.
Past its allowance every further failure blocks the key for an exponentially growing time
(``base * 2^(failures past the allowance)``, capped); while a key is blocked, logins for it
answer 429 with ``Retry-After`` before any password is hashed, so a guesser costs no CPU. A
success clears the account's key (never the client's, so spraying many accounts from one
address still counts). One account's attacker never slows another account's login, and the
per-client allowance is high enough for addresses that many people share.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from storycore_shared.db import utcnow
from storycore_shared.errors import TooManyRequests


def login_attempt_table(metadata: MetaData) -> Table:
    return Table(
        "login_attempt",
        metadata,
        Column("key", String(400), primary_key=True),
        Column("failures", Integer, nullable=False),
        Column("window_start", DateTime(timezone=True), nullable=False),
        Column("blocked_until", DateTime(timezone=True), nullable=True),
    )


class LoginThrottled(TooManyRequests):
    code = "login_throttled"
    title = "Too many failed logins"
    # The failure just counted must be kept although the answer is an error.
    commit_session = True


@dataclass(frozen=True)
class ThrottleRules:
    account_allowance: int = 5
    client_allowance: int = 50
    window_seconds: float = 900.0
    base_seconds: float = 1.0
    max_seconds: float = 900.0

    def block_for(self, past_allowance: int) -> float:
        return float(min(self.max_seconds, self.base_seconds * 2 ** max(0, past_allowance - 1)))


def _throttled(until: datetime, now: datetime) -> LoginThrottled:
    wait = max(1, math.ceil((until - now).total_seconds()))
    return LoginThrottled(
        f"Too many failed logins; try again in {wait} s.", headers={"Retry-After": str(wait)}
    )


class LoginThrottle:
    def __init__(self, table: Table, rules: ThrottleRules, *, hashing_slots: int) -> None:
        self.table = table
        self.rules = rules
        # argon2 runs in worker threads; bounding how many run at once keeps a flood of
        # logins from taking every core and every thread from the rest of the service.
        self.hashing = asyncio.Semaphore(hashing_slots)

    def _keys(self, email: str, client: str | None) -> list[tuple[str, int]]:
        return [
            (f"account:{email}", self.rules.account_allowance),
            (f"client:{client or 'unknown'}", self.rules.client_allowance),
        ]

    async def check(self, session: AsyncSession, email: str, client: str | None) -> None:
        """429 with ``Retry-After`` while either key is blocked."""
        now = utcnow()
        names = [key for key, _ in self._keys(email, client)]
        until = await session.scalar(
            select(self.table.c.blocked_until)
            .where(self.table.c.key.in_(names), self.table.c.blocked_until > now)
            .order_by(self.table.c.blocked_until.desc())
            .limit(1)
        )
        if until is not None:
            raise _throttled(until, now)

    async def failed(self, session: AsyncSession, email: str, client: str | None) -> None:
        """Count a failure for both keys and block those past their allowance; raise 429 when
        this failure blocked one (so the next guess is refused without hashing)."""
        now = utcnow()
        blocked: datetime | None = None
        for key, allowance in self._keys(email, client):
            await session.execute(
                insert(self.table)
                .values(key=key, failures=0, window_start=now)
                .on_conflict_do_nothing()
            )
            row = (
                await session.execute(
                    select(self.table).where(self.table.c.key == key).with_for_update()
                )
            ).one()
            expired = row.window_start < now - timedelta(seconds=self.rules.window_seconds)
            failures = 1 if expired else row.failures + 1
            until = row.blocked_until
            if failures > allowance:
                until = now + timedelta(seconds=self.rules.block_for(failures - allowance))
                blocked = until if blocked is None else max(blocked, until)
            await session.execute(
                self.table.update()
                .where(self.table.c.key == key)
                .values(
                    failures=failures,
                    window_start=now if expired else row.window_start,
                    blocked_until=until,
                )
            )
        if blocked is not None:
            raise _throttled(blocked, now)

    async def succeeded(self, session: AsyncSession, email: str) -> None:
        await session.execute(delete(self.table).where(self.table.c.key == f"account:{email}"))
