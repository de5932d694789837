from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from audio.main import MIGRATIONS
from audio.models import SCHEMA
from storycore_testkit.service_db import rolled_back_session, unit_database_url

__all__ = ["unit_database_url"]


@pytest.fixture
async def session(unit_database_url: str) -> AsyncIterator[AsyncSession]:
    async with rolled_back_session(unit_database_url, SCHEMA, MIGRATIONS) as session:
        yield session
