from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from auth.config import Settings
from auth.keys import KeyRing
from auth.models import SCHEMA, event_tables, login_attempts
from auth.routes import router
from auth.service import AuthState
from storycore_shared.app import Runtime, ServiceSpec, create_service_app
from storycore_shared.auth import KeySet, TokenVerifier
from storycore_shared.events.contracts import auth as auth_events

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()  # read from the environment
    keyring = KeyRing.from_pem(
        settings.signing_key_pem(), [p.read_bytes() for p in settings.PREVIOUS_KEY_FILES]
    )

    def verifier(_: object) -> TokenVerifier:
        return TokenVerifier(
            issuer=settings.JWT_ISSUER,
            audience=settings.JWT_AUDIENCE,
            keys=KeySet(keyring.jwks()),
            max_lifetime=settings.ACCESS_TOKEN_TTL_SECONDS,
        )

    def state(_: Runtime) -> AuthState:
        return AuthState.from_settings(settings, keyring, login_attempts)

    return create_service_app(
        ServiceSpec(
            name="auth",
            schema=SCHEMA,
            settings=settings,
            routers=[router],
            migrations=MIGRATIONS,
            tables=event_tables,
            publishes=[auth_events.STREAM],
            verifier=verifier,
            state=state,
            title="StoryCore auth",
            description="Accounts, access tokens, refresh rotation and the JWKS.",
        )
    )
