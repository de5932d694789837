from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from locations.models import Location
from storycore_shared.types import Int32, JsonObject, TextRules

LocationType = Literal["interior", "exterior", "mixed", "generic"]
CubeFace = Literal["front", "back", "left", "right", "top", "bottom"]
Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255), TextRules
]
Text = Annotated[str, StringConstraints(max_length=10_000), TextRules]
AssetUrl = Annotated[str, StringConstraints(min_length=1, max_length=2000), TextRules]
Version = Annotated[Int32, Field(ge=1)]


class LocationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    project_id: uuid.UUID | None = None
    name: Name
    description: Text | None = None
    location_type: LocationType = "generic"
    significance: Text | None = None
    atmosphere: Text | None = None
    metadata: JsonObject = Field(default_factory=dict)
    cube_faces: dict[CubeFace, AssetUrl] | None = None
    skybox_data: JsonObject | None = None


class LocationUpdate(BaseModel):
    """Only the fields above; ``id``, ``owner_id`` and timestamps are refused (422)."""

    model_config = ConfigDict(extra="forbid")

    project_id: uuid.UUID | None = None
    name: Name | None = None
    description: Text | None = None
    location_type: LocationType | None = None
    significance: Text | None = None
    atmosphere: Text | None = None
    metadata: JsonObject | None = None
    cube_faces: dict[CubeFace, AssetUrl] | None = None
    skybox_data: JsonObject | None = None
    version: Version | None = None

    @model_validator(mode="after")
    def _no_null_for_required(self) -> LocationUpdate:
        required = {"name", "location_type", "metadata"}
        nulls = sorted(f for f in self.model_fields_set & required if getattr(self, f) is None)
        if nulls:
            raise ValueError(f"these fields cannot be null: {', '.join(nulls)}")
        return self

    def changes(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.model_fields_set if f != "version"}


class LocationPublic(BaseModel):
    id: uuid.UUID
    owner_id: uuid.UUID
    project_id: uuid.UUID | None
    name: str
    description: str | None
    location_type: LocationType
    significance: str | None
    atmosphere: str | None
    metadata: dict[str, Any]
    cube_faces: dict[str, str] | None
    skybox_data: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime
    version: int

    @classmethod
    def of(cls, location: Location) -> LocationPublic:
        fields = location.model_dump(exclude={"meta"})
        return cls.model_validate({**fields, "metadata": location.meta})


class LocationsPublic(BaseModel):
    locations: list[LocationPublic]
    total: int
    page: int
    page_size: int
