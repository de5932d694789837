"""Requests and answers of timelines, tracks and clips. Times are seconds (floats): ``start`` on
the timeline, ``in_point``/``out_point`` in the clip's medium."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from storycore_shared.types import FiniteFloat, Int32, StrictBool, TextRules

AspectRatio = Literal["16:9", "9:16", "1:1", "4:5", "4:3", "21:9"]
TrackKind = Literal["video", "audio", "text", "overlay"]
TransitionType = Literal[
    "cut",
    "dissolve",
    "fade_black",
    "fade_white",
    "wipe_left",
    "wipe_right",
    "slide_left",
    "slide_right",
    "zoom_in",
    "zoom_out",
]

# The size a timeline gets from its aspect ratio when none is given.
DIMENSIONS: Final[dict[str, tuple[int, int]]] = {
    "16:9": (1920, 1080),
    "9:16": (1080, 1920),
    "1:1": (1080, 1080),
    "4:5": (1080, 1350),
    "4:3": (1440, 1080),
    "21:9": (2560, 1080),
}
MIN_SIDE, MAX_SIDE = 16, 7680
# The longest time any request may name (a day); larger values are a 422, not a float overflow.
MAX_SECONDS: Final = 86_400.0

Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255), TextRules
]
Description = Annotated[str, StringConstraints(max_length=10_000), TextRules]
ClipText = Annotated[str, StringConstraints(min_length=1, max_length=5000), TextRules]
Side = Annotated[Int32, Field(ge=MIN_SIDE, le=MAX_SIDE)]
Fps = Annotated[FiniteFloat, Field(ge=1, le=120)]
Seconds = Annotated[FiniteFloat, Field(ge=0, le=MAX_SECONDS)]
Length = Annotated[FiniteFloat, Field(gt=0, le=MAX_SECONDS)]
Unit = Annotated[FiniteFloat, Field(ge=0, le=1)]
Volume = Annotated[FiniteFloat, Field(ge=0, le=2)]
Version = Annotated[Int32, Field(ge=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _no_nulls(model: BaseModel, nullable: set[str]) -> None:
    nulls = [f for f in model.model_fields_set - nullable if getattr(model, f) is None]
    if nulls:
        raise ValueError(f"these fields cannot be null: {', '.join(sorted(nulls))}")


def dimensions(ratio: str, width: int | None, height: int | None) -> tuple[int, int]:
    """The size of a timeline of ``ratio``: the ratio's default, or the missing side derived
    from the given one (rounded to an even number); ValueError when it falls out of bounds."""
    default_w, default_h = DIMENSIONS[ratio]
    if width is None and height is None:
        return default_w, default_h
    if width is None:
        assert height is not None
        width = 2 * round(height * default_w / default_h / 2)
    elif height is None:
        height = 2 * round(width * default_h / default_w / 2)
    if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
        raise ValueError(
            f"{ratio} at {width}x{height} is out of bounds: each side must be "
            f"{MIN_SIDE}..{MAX_SIDE}; give both width and height"
        )
    return width, height


# -- timelines ---------------------------------------------------------------------------------


class TimelineCreate(_Strict):
    """A timeline of a project; ``width``/``height`` default from ``aspect_ratio`` (one side
    given: the other is derived from the ratio)."""

    project_id: uuid.UUID
    name: Name
    description: Description | None = None
    aspect_ratio: AspectRatio = "16:9"
    width: Side | None = None
    height: Side | None = None
    fps: Fps = 24.0

    @model_validator(mode="after")
    def _size(self) -> TimelineCreate:
        self.width, self.height = dimensions(self.aspect_ratio, self.width, self.height)
        return self

    def size(self) -> tuple[int, int]:
        return dimensions(self.aspect_ratio, self.width, self.height)


class TimelineUpdate(_Strict):
    """A partial update: only the fields sent change. A new ``aspect_ratio`` without a size
    takes the ratio's default size. ``version`` guards against lost updates."""

    name: Name | None = None
    description: Description | None = None
    aspect_ratio: AspectRatio | None = None
    width: Side | None = None
    height: Side | None = None
    fps: Fps | None = None
    version: Version | None = None

    @model_validator(mode="after")
    def _complete(self) -> TimelineUpdate:
        _no_nulls(self, {"description", "version"})
        if self.aspect_ratio is not None:
            self.width, self.height = dimensions(self.aspect_ratio, self.width, self.height)
        return self

    def changes(self) -> dict[str, Any]:
        fields = (self.model_fields_set | self._size_set()) - {"version"}
        return {f: getattr(self, f) for f in fields}

    def _size_set(self) -> set[str]:
        return {"width", "height"} if self.aspect_ratio is not None else set()


# -- tracks ------------------------------------------------------------------------------------


class TrackCreate(_Strict):
    """A track, added on top of the timeline's others; ``name`` defaults to "Video 2" and so on."""

    kind: TrackKind
    name: Name | None = None
    muted: StrictBool = False
    locked: StrictBool = False
    volume: Volume = 1.0
    version: Version | None = None


class TrackUpdate(_Strict):
    name: Name | None = None
    muted: StrictBool | None = None
    locked: StrictBool | None = None
    volume: Volume | None = None
    version: Version | None = None

    @model_validator(mode="after")
    def _complete(self) -> TrackUpdate:
        _no_nulls(self, {"version"})
        return self

    def changes(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.model_fields_set - {"version"}}


class TrackReorder(_Strict):
    """Every track of the timeline once, bottom first."""

    track_ids: Annotated[list[uuid.UUID], Field(min_length=1, max_length=1000)]
    version: Version | None = None


# -- clips -------------------------------------------------------------------------------------


class Transition(_Strict):
    """How a clip blends in over its first ``duration`` seconds; it may start that much before
    the previous clip on its track ends (the two overlap for the transition)."""

    type: TransitionType
    duration: Annotated[FiniteFloat, Field(ge=0, le=10)]


class Rect(_Strict):
    """A region of the picture, as fractions of its width and height."""

    x: Unit
    y: Unit
    w: Annotated[FiniteFloat, Field(gt=0, le=1)]
    h: Annotated[FiniteFloat, Field(gt=0, le=1)]

    @model_validator(mode="after")
    def _inside(self) -> Rect:
        if self.x + self.w > 1 + 1e-9 or self.y + self.h > 1 + 1e-9:
            raise ValueError("the rectangle must lie inside the picture (x + w <= 1, y + h <= 1)")
        return self


class KenBurns(_Strict):
    """A pan and zoom: the visible region moves from ``from_rect`` to ``to_rect`` over the clip."""

    from_rect: Rect
    to_rect: Rect


def check_points(in_point: float | None, out_point: float | None, duration: float | None) -> None:
    """ValueError when the points given contradict each other (unknown ones are not checked)."""
    if in_point is None or out_point is None:
        return
    if out_point <= in_point:
        raise ValueError("out_point must be after in_point")
    if duration is not None and abs(out_point - in_point - duration) > 1e-6:
        raise ValueError("duration must equal out_point - in_point (or give only one of them)")


class ClipCreate(_Strict):
    """A clip of a medium of the timeline (``media_id``) or a title (``text``). It plays the
    medium from ``in_point`` to ``out_point`` (default: ``in_point + duration``, else the
    medium's end; images and titles need a ``duration``) from ``start`` on the timeline."""

    media_id: uuid.UUID | None = None
    text: ClipText | None = None
    start: Seconds
    in_point: Seconds = 0.0
    out_point: Length | None = None
    duration: Length | None = None
    transition_in: Transition | None = None
    ken_burns: KenBurns | None = None
    opacity: Unit = 1.0
    volume: Volume = 1.0
    fade_in: Seconds = 0.0
    fade_out: Seconds = 0.0
    version: Version | None = None

    @model_validator(mode="after")
    def _complete(self) -> ClipCreate:
        if (self.media_id is None) == (self.text is None):
            raise ValueError("give either media_id or text")
        check_points(self.in_point, self.out_point, self.duration)
        return self


class ClipUpdate(_Strict):
    """A partial update; a trim changes ``in_point``/``out_point`` (or ``duration``) and
    ``start``. ``transition_in``/``ken_burns`` null removes them."""

    media_id: uuid.UUID | None = None
    text: ClipText | None = None
    start: Seconds | None = None
    in_point: Seconds | None = None
    out_point: Length | None = None
    duration: Length | None = None
    transition_in: Transition | None = None
    ken_burns: KenBurns | None = None
    opacity: Unit | None = None
    volume: Volume | None = None
    fade_in: Seconds | None = None
    fade_out: Seconds | None = None
    version: Version | None = None

    @model_validator(mode="after")
    def _complete(self) -> ClipUpdate:
        _no_nulls(self, {"media_id", "text", "transition_in", "ken_burns", "version"})
        if self.media_id is not None and self.text is not None:
            raise ValueError("give either media_id or text")
        check_points(self.in_point, self.out_point, self.duration)
        return self


class SplitRequest(_Strict):
    """Cut a clip in two at ``at`` (timeline seconds, strictly inside the clip)."""

    at: Seconds
    version: Version | None = None


class MoveRequest(_Strict):
    """Move a clip to ``start`` (on ``track_id`` when given). With ``ripple`` the clips after it
    move along (on another track: the clips from ``start`` on are pushed to make room)."""

    start: Seconds
    track_id: uuid.UUID | None = None
    ripple: StrictBool = False
    version: Version | None = None


class FillGapsRequest(_Strict):
    version: Version | None = None


# -- answers -----------------------------------------------------------------------------------


class ClipPublic(BaseModel):
    id: uuid.UUID
    track_id: uuid.UUID
    media_id: uuid.UUID | None
    text: str | None
    start: float
    in_point: float
    out_point: float
    duration: float
    transition_in: Transition | None
    ken_burns: KenBurns | None
    opacity: float
    volume: float
    fade_in: float
    fade_out: float
    missing_media: bool


class TrackPublic(BaseModel):
    id: uuid.UUID
    kind: TrackKind
    name: str
    order: int
    muted: bool
    locked: bool
    volume: float
    clips: list[ClipPublic]


class TimelinePublic(BaseModel):
    id: uuid.UUID
    project_id: uuid.UUID
    name: str
    description: str | None
    aspect_ratio: AspectRatio
    width: int
    height: int
    fps: float
    duration_seconds: float
    version: int
    tracks: list[TrackPublic]
    created_at: datetime
    updated_at: datetime


class TimelinesPublic(BaseModel):
    timelines: list[TimelinePublic]
    total: int
    page: int
    page_size: int


class PresetPublic(BaseModel):
    name: str
    width: int | None
    height: int | None


class PresetsPublic(BaseModel):
    presets: list[PresetPublic]


class AspectRatioPublic(BaseModel):
    name: AspectRatio
    width: int
    height: int


class AspectRatiosPublic(BaseModel):
    aspect_ratios: list[AspectRatioPublic]
