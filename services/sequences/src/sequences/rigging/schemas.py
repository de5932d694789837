from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Discriminator, Field, StringConstraints, Tag

from sequences.rigging.skeleton import KeypointName
from storycore_shared.jobs.schemas import JobStatus
from storycore_shared.types import FiniteFloat, Int32, TextRules

Coordinate = Annotated[FiniteFloat, Field(ge=-1e6, le=1e6)]
# [x, y] or [x, y, z]: image axes, x right, y down, z away from the viewer; one unit for all.
Point = Annotated[list[Coordinate], Field(min_length=2, max_length=3)]
# An asset key (see storycore_shared.assets): plain segments, never a path on a server.
AssetKey = Annotated[
    str,
    StringConstraints(
        min_length=1,
        max_length=300,
        pattern=r"^[A-Za-z0-9_\-=@+,][A-Za-z0-9_\-=@+,.]*(/[A-Za-z0-9_\-=@+,][A-Za-z0-9_\-=@+,.]*)*$",
    ),
    TextRules,
]


class KeyframeRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sequence_job_id: uuid.UUID
    index: Annotated[Int32, Field(ge=0, le=49)]


class KeyframeSheet(BaseModel):
    """A keyframe the caller generated."""

    model_config = ConfigDict(extra="forbid")

    keyframe: KeyframeRef


class AssetSheet(BaseModel):
    """An image the caller uploaded (``POST /api/rigging/sheets``), by its asset id."""

    model_config = ConfigDict(extra="forbid")

    asset_id: AssetKey


class KeypointsSheet(BaseModel):
    """Keypoints the client found itself."""

    model_config = ConfigDict(extra="forbid")

    keypoints: Annotated[dict[KeypointName, Point], Field(min_length=1)]


def _sheet_kind(value: Any) -> str | None:
    """Which sheet a body is, by the key it has (None: none of them, a 422)."""
    keys = value if isinstance(value, dict) else vars(value) if isinstance(value, BaseModel) else {}
    return next((k for k in ("keyframe", "asset_id", "keypoints") if k in keys), None)


Sheet = Annotated[
    Annotated[KeyframeSheet, Tag("keyframe")]
    | Annotated[AssetSheet, Tag("asset_id")]
    | Annotated[KeypointsSheet, Tag("keypoints")],
    Discriminator(
        _sheet_kind,
        custom_error_type="sheet_kind",
        custom_error_message="A sheet is {keyframe}, {asset_id} or {keypoints}",
    ),
]


class RigCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    project_id: uuid.UUID
    shot_id: uuid.UUID | None = None
    sheet: Sheet


class RigPublic(BaseModel):
    id: uuid.UUID
    project_id: uuid.UUID
    shot_id: uuid.UUID | None
    status: JobStatus
    bone_count: int | None
    hash: str | None
    # The keypoints the rig was built from (sheet units), which of them were inferred and how,
    # each joint's position in metres, and the scale between the two.
    keypoints: dict[str, Any] | None
    rig_url: str | None
    detector: str
    error: str | None
    job_id: uuid.UUID
    job_url: str
    created_at: datetime


class SheetPublic(BaseModel):
    asset_id: str
    project_id: uuid.UUID
    content_type: str
    size_bytes: int
    sha256: str
