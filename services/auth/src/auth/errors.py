from __future__ import annotations

from storycore_shared.errors import Conflict, NotFound, Unauthorized


class EmailTaken(Conflict):
    code = "email_taken"
    title = "Email already registered"


class InvalidCredentials(Unauthorized):
    code = "invalid_credentials"
    title = "Invalid email or password"
    # The failed attempt is counted by the login throttle, and that count must be kept.
    commit_session = True


class InvalidRefreshToken(Unauthorized):
    code = "invalid_refresh_token"
    title = "Invalid refresh token"


class RefreshTokenReused(Unauthorized):
    """A rotated refresh token came back: the family is revoked, and that must be kept."""

    code = "refresh_token_reused"
    title = "Refresh token reused"
    commit_session = True


class UserNotFound(NotFound):
    code = "user_not_found"
    title = "User not found"
