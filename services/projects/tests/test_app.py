"""The projects service's middleware, outermost first, as create_service_app builds it for every
service: request id and access log, the catch-all 500, admission in arrival order, body checks."""

from __future__ import annotations

from projects.config import Settings
from projects.main import create_app
from storycore_shared.bodies import RequestBodyMiddleware
from storycore_shared.errors import CatchAllMiddleware
from storycore_shared.middleware import AdmissionMiddleware, RequestContextMiddleware


def test_requests_are_admitted_inside_the_catch_all_and_before_the_body_checks() -> None:
    settings = Settings(
        DATABASE_URL="postgresql://projects:secret@127.0.0.1:1/storycore",
        NATS_URL="nats://127.0.0.1:1",
        JWKS_URL="http://127.0.0.1:1/jwks",
        MEDIA_SIGNING_KEY="k" * 43,
        ADMISSION_LIMIT=7,
        ADMISSION_LEASE_SECONDS=2.5,
    )
    app = create_app(settings)
    stack = [middleware.cls for middleware in app.user_middleware]
    assert stack == [
        RequestContextMiddleware,
        CatchAllMiddleware,
        AdmissionMiddleware,
        RequestBodyMiddleware,
    ]
    admission = app.user_middleware[2]
    assert admission.kwargs == {"service": "projects", "limit": 7, "lease": 2.5}
