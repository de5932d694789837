"""Shot shapes, with the audit's shot-type fix.

``shot_type`` is the narrative purpose, ``framing`` the shot size, ``camera_angle`` the camera.
The old clients sent a shot size as ``shot_type``; those legacy values become ``framing``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from shots.models import Shot
from storycore_shared.contracts.vocabulary import (
    FRAMINGS,
    SHOT_TYPES,
    CameraAngle,
    Framing,
    ShotType,
    as_framing,
)
from storycore_shared.media import MediaSigner
from storycore_shared.types import FiniteFloat, Int32, JsonObject, TextRules

ShotStatus = Literal["pending", "generating", "completed", "failed", "archived"]

Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255), TextRules
]
Prompt = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000), TextRules
]
Description = Annotated[str, StringConstraints(max_length=10_000), TextRules]
Duration = Annotated[FiniteFloat, Field(ge=0.5, le=300)]
OrderIndex = Annotated[Int32, Field(ge=0)]
Version = Annotated[Int32, Field(ge=1)]
Ids = Annotated[
    list[Annotated[str, StringConstraints(min_length=1, max_length=255), TextRules]],
    Field(max_length=200),
]


def normalise_legacy(data: Any) -> Any:
    """Map a framing sent as ``shot_type`` (the old clients' habit: ``wide``, ``closeup``,
    ``pov``...) to ``framing``, and accept other spellings of framing values."""
    if not isinstance(data, dict):
        return data
    data = dict(data)
    framing = data.get("framing")
    if isinstance(framing, str):
        framing = data["framing"] = as_framing(framing) or framing
    shot_type = data.get("shot_type")
    if isinstance(shot_type, str) and shot_type not in SHOT_TYPES:
        meant = as_framing(shot_type)
        if meant is None:
            return data  # the field's own validator names both vocabularies
        if framing is not None and framing != meant:
            raise ValueError(
                f"shot_type {shot_type!r} is a legacy framing ({meant!r}) but framing is "
                f"{framing!r}; send shot_type as one of the narrative purposes instead"
            )
        data["framing"] = meant
        del data["shot_type"]  # the purpose stays at its default (create) or as it was (update)
    return data


def check_shot_type(value: Any) -> Any:
    """An unknown ``shot_type`` is a 422 naming what it may be."""
    if isinstance(value, str) and value not in SHOT_TYPES:
        raise ValueError(
            f"shot_type {value!r} is neither a narrative purpose ({', '.join(SHOT_TYPES)}) "
            f"nor a framing, which goes in `framing` ({', '.join(FRAMINGS)})"
        )
    return value


class ShotCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    project_id: uuid.UUID
    sequence_id: uuid.UUID | None = None
    name: Name
    description: Description | None = None
    prompt: Prompt
    shot_type: ShotType = "action"
    framing: Framing | None = None
    camera_angle: CameraAngle | None = None
    duration_seconds: Duration = 5.0
    order_index: OrderIndex | None = None
    metadata: JsonObject = Field(default_factory=dict)
    character_ids: Ids = Field(default_factory=list)
    asset_ids: Ids = Field(default_factory=list)

    _legacy = model_validator(mode="before")(normalise_legacy)
    _shot_type = field_validator("shot_type", mode="before")(check_shot_type)


class ShotUpdate(BaseModel):
    """A partial update: a field that is absent or null is left as it is."""

    model_config = ConfigDict(extra="forbid")

    sequence_id: uuid.UUID | None = None
    name: Name | None = None
    description: Description | None = None
    prompt: Prompt | None = None
    shot_type: ShotType | None = None
    framing: Framing | None = None
    camera_angle: CameraAngle | None = None
    duration_seconds: Duration | None = None
    order_index: OrderIndex | None = None
    status: ShotStatus | None = None
    metadata: JsonObject | None = None
    character_ids: Ids | None = None
    asset_ids: Ids | None = None
    version: Version | None = None

    _legacy = model_validator(mode="before")(normalise_legacy)
    _shot_type = field_validator("shot_type", mode="before")(check_shot_type)

    def changes(self) -> dict[str, Any]:
        return {
            field: value
            for field in self.model_fields_set - {"version"}
            if (value := getattr(self, field)) is not None
        }


class ShotPublic(BaseModel):
    id: uuid.UUID
    project_id: uuid.UUID
    sequence_id: uuid.UUID | None
    name: str
    description: str | None
    prompt: str
    shot_type: ShotType
    framing: Framing | None
    camera_angle: CameraAngle | None
    duration_seconds: float
    order_index: int
    status: ShotStatus
    metadata: dict[str, Any]
    character_ids: list[str]
    asset_ids: list[str]
    result_url: str | None
    thumbnail_url: str | None
    created_at: datetime
    updated_at: datetime
    version: int

    @classmethod
    def of(cls, shot: Shot, *, signer: MediaSigner, user_id: uuid.UUID) -> ShotPublic:
        """The shot as answered to ``user_id``: suite media URLs signed for them."""
        public = cls.model_validate({**shot.model_dump(exclude={"meta"}), "metadata": shot.meta})
        return public.signed(signer, user_id=user_id)

    def signed(self, signer: MediaSigner, *, user_id: uuid.UUID) -> ShotPublic:
        """This shot with its suite media URLs signed for ``user_id``."""
        self.result_url = signer.sign_suite_url(self.result_url, user_id=user_id)
        self.thumbnail_url = signer.sign_suite_url(self.thumbnail_url, user_id=user_id)
        return self


class ShotsPublic(BaseModel):
    shots: list[ShotPublic]
    total: int
    page: int
    page_size: int


class ShotOrder(BaseModel):
    model_config = ConfigDict(extra="forbid")

    shot_ids: Annotated[list[uuid.UUID], Field(max_length=10_000)]


class RegenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: Prompt | None = None
