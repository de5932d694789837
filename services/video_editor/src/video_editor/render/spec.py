"""What the renderer is asked to draw: a flattened, immutable copy of a timeline."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

TRANSITIONS = frozenset(
    {
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
    }
)
CLIP_KINDS = frozenset({"video", "image", "audio", "text"})
TRACK_KINDS = frozenset({"video", "audio", "text", "overlay"})
FORMATS = frozenset({"mp4", "webm", "gif"})
QUALITIES = frozenset({"draft", "standard", "high"})
FITS = frozenset({"cover", "letterbox"})


@dataclass(frozen=True)
class Rect:
    """A region of the source image, normalised to 0..1 of its width and height."""

    x: float
    y: float
    w: float
    h: float


FULL_FRAME = Rect(0.0, 0.0, 1.0, 1.0)


@dataclass(frozen=True)
class KenBurns:
    """A pan/zoom: the source crop moves from ``from_rect`` to ``to_rect`` over the clip."""

    from_rect: Rect
    to_rect: Rect


@dataclass(frozen=True)
class Transition:
    """How a clip blends in over its first ``duration`` seconds (see ``compose``)."""

    type: str
    duration: float


@dataclass(frozen=True)
class TextStyle:
    """Text look: ``size`` is a fraction of the frame height; colours are CSS-like strings."""

    size: float = 0.06
    color: str = "#ffffff"
    position: str = "bottom"
    background: str | None = "#00000099"


@dataclass(frozen=True)
class RenderClip:
    """One clip placed on the timeline; ``start``/``duration`` in timeline seconds."""

    kind: str
    start: float
    duration: float
    path: Path | None = None
    in_point: float = 0.0
    text: str | None = None
    style: TextStyle = field(default_factory=TextStyle)
    transition_in: Transition | None = None
    ken_burns: KenBurns | None = None
    opacity: float = 1.0
    volume: float = 1.0
    fade_in: float = 0.0
    fade_out: float = 0.0

    @property
    def end(self) -> float:
        """Timeline second where the clip stops."""
        return self.start + self.duration


@dataclass(frozen=True)
class RenderTrack:
    """A track; visual tracks are stacked by ascending ``order`` (text tracks on top)."""

    kind: str
    order: int
    clips: tuple[RenderClip, ...]
    muted: bool = False
    volume: float = 1.0


@dataclass(frozen=True)
class RenderSpec:
    """Output settings; ``start``/``end`` select a range of the timeline (``end=None``: all)."""

    width: int
    height: int
    fps: float
    format: str
    quality: str
    fit: str = "cover"
    start: float = 0.0
    end: float | None = None
    sample_rate: int = 48000


@dataclass(frozen=True)
class ExportInfo:
    """What was written."""

    duration_seconds: float
    frames: int
    width: int
    height: int
    fps: float
    video_codec: str
    audio_codec: str | None
    size_bytes: int


def timeline_end(tracks: Sequence[RenderTrack]) -> float:
    """The end of the last clip on any track (0.0 for an empty timeline)."""
    return max((clip.end for track in tracks for clip in track.clips), default=0.0)


def validate(spec: RenderSpec, tracks: Sequence[RenderTrack]) -> None:
    """Raise ``ValueError`` for a spec or timeline the renderer cannot honour."""
    if spec.format not in FORMATS:
        raise ValueError(f"unknown format {spec.format!r}")
    if spec.quality not in QUALITIES:
        raise ValueError(f"unknown quality {spec.quality!r}")
    if spec.fit not in FITS:
        raise ValueError(f"unknown fit {spec.fit!r}")
    if spec.width < 2 or spec.height < 2:
        raise ValueError("width and height must be at least 2")
    if not 0 < spec.fps <= 120:
        raise ValueError("fps must be in (0, 120]")
    if spec.sample_rate < 8000:
        raise ValueError("sample_rate must be at least 8000")
    if spec.start < 0:
        raise ValueError("start must not be negative")
    for track in tracks:
        if track.kind not in TRACK_KINDS:
            raise ValueError(f"unknown track kind {track.kind!r}")
        for clip in track.clips:
            if clip.kind not in CLIP_KINDS:
                raise ValueError(f"unknown clip kind {clip.kind!r}")
            if clip.duration < 0:
                raise ValueError("clip duration must not be negative")
            if clip.kind in ("video", "image", "audio") and clip.path is None:
                raise ValueError(f"a {clip.kind} clip needs a path")
            if clip.transition_in is not None and clip.transition_in.type not in TRANSITIONS:
                raise ValueError(f"unknown transition {clip.transition_in.type!r}")
