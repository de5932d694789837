"""Settings for a service's unit tests: every required value filled with one that is never
used (no server listens on port 9), so a test names only what it is about::

    settings = unit_settings(Settings, SHEET_MAX_BYTES=1024)
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel

SettingsT = TypeVar("SettingsT", bound=BaseModel)

UNUSED: dict[str, Any] = {
    "DATABASE_URL": "postgresql://unused/unused",
    "NATS_URL": "nats://127.0.0.1:9",
    "JWKS_URL": "http://127.0.0.1:9/jwks",
    "PROJECTS_URL": "http://127.0.0.1:9",
    "LLM_URL": "http://127.0.0.1:9",
    "SEQUENCES_URL": "http://127.0.0.1:9",
    "AUDIO_URL": "http://127.0.0.1:9",
    "INTERNAL_TOKEN": "unused",
    "MEDIA_SIGNING_KEY": "a media signing key for tests",
    "ENVIRONMENT": "test",
}


def unit_settings(settings: type[SettingsT], **values: Any) -> SettingsT:
    """``settings`` with ``values``, and the unused defaults for the fields it has."""
    fields = settings.model_fields
    return settings(**{**{k: v for k, v in UNUSED.items() if k in fields}, **values})
