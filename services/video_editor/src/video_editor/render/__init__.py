"""The export renderer: a timeline (``RenderTrack``s) to an MP4, WebM or GIF file.

>>> from video_editor.render.encode import render
>>> info = render(RenderSpec(1920, 1080, 24, "mp4", "standard"), tracks, Path("/tmp/x.mp4"))

The package itself is light (the specification and the presets, which the API needs):
``render.encode`` brings PyAV, numpy and Pillow, so only the worker imports it.
"""

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
    "timeline_end",
]
