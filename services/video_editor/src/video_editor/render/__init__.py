"""The export renderer: a timeline (``RenderTrack``s) to an MP4, WebM or GIF file.

>>> info = render(RenderSpec(1920, 1080, 24, "mp4", "standard"), tracks, Path("/tmp/x.mp4"))
"""

from .encode import render
from .presets import ASPECT_RATIOS, AUDIO_BITRATE, PRESETS, QUALITY
from .spec import (
    ExportInfo,
    KenBurns,
    Rect,
    RenderClip,
    RenderSpec,
    RenderTrack,
    TextStyle,
    Transition,
    timeline_end,
)

__all__ = [
    "ASPECT_RATIOS",
    "AUDIO_BITRATE",
    "PRESETS",
    "QUALITY",
    "ExportInfo",
    "KenBurns",
    "Rect",
    "RenderClip",
    "RenderSpec",
    "RenderTrack",
    "TextStyle",
    "Transition",
    "render",
    "timeline_end",
]
