from __future__ import annotations

from storycore_testkit.service_db import model_drift
from video_editor.main import MIGRATIONS
from video_editor.models import SCHEMA, Base


async def test_the_migrations_build_exactly_the_models(unit_database_url: str) -> None:
    assert await model_drift(unit_database_url, SCHEMA, MIGRATIONS, Base.metadata) == []
