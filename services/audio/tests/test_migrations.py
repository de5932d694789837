from __future__ import annotations

from audio.main import MIGRATIONS
from audio.models import SCHEMA, Base
from storycore_testkit.service_db import model_drift


async def test_the_migrations_build_exactly_the_models(unit_database_url: str) -> None:
    assert await model_drift(unit_database_url, SCHEMA, MIGRATIONS, Base.metadata) == []
