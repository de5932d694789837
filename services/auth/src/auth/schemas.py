from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, EmailStr, StringConstraints
from pydantic_core import PydanticCustomError

from storycore_shared.types import TextRules, text_problem


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _storable(value: Any) -> Any:
    """Checked before the email validator, which would otherwise see NUL or a surrogate."""
    if isinstance(value, str) and (problem := text_problem(value)):
        raise PydanticCustomError(*problem)
    return value


Email = Annotated[EmailStr, BeforeValidator(_storable)]


class UserCreate(Strict):
    email: Email
    password: Annotated[str, StringConstraints(min_length=10, max_length=1024), TextRules]
    name: Annotated[str, StringConstraints(min_length=1, max_length=255), TextRules]


class LoginRequest(Strict):
    email: Annotated[str, StringConstraints(min_length=1, max_length=320), TextRules]
    password: Annotated[str, StringConstraints(min_length=1, max_length=1024), TextRules]


class RefreshRequest(Strict):
    refresh_token: Annotated[str, StringConstraints(min_length=1, max_length=512), TextRules]


class UserPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    name: str
    created_at: datetime


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
