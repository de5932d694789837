"""Every SQL statement of the auth service."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from auth.models import RefreshToken, User


async def get_user(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    return await session.get(User, user_id)


async def get_user_by_email(session: AsyncSession, email: str) -> User | None:
    result = await session.scalars(select(User).where(col(User.email) == email))
    return result.first()


async def get_refresh_token_for_update(
    session: AsyncSession, token_hash: str
) -> RefreshToken | None:
    result = await session.scalars(
        select(RefreshToken).where(col(RefreshToken.token_hash) == token_hash).with_for_update()
    )
    return result.first()


async def revoke_family(session: AsyncSession, family_id: uuid.UUID, at: datetime) -> None:
    await session.execute(
        update(RefreshToken)
        .where(col(RefreshToken.family_id) == family_id, col(RefreshToken.revoked_at).is_(None))
        .values(revoked_at=at)
    )
