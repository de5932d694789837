"""Output presets, aspect ratios and the quality → encoder settings mapping.

``QUALITY[format][quality]`` holds the options given to the video encoder, as strings:

=========  ==========================================  ==========================================
format     draft / standard / high                     notes
=========  ==========================================  ==========================================
mp4        libx264 ``preset`` ultrafast / medium /     yuv420p, BT.709 tags, ``+faststart``;
           slow, ``crf`` 30 / 23 / 18                  AAC 96 / 128 / 192 kb/s
webm       libvpx-vp9 ``deadline`` realtime / good /   constant quality (``b:v`` 0), ``row-mt``;
           good, ``cpu-used`` 8 / 4 / 2,               Opus 64 / 96 / 160 kb/s
           ``crf`` 40 / 32 / 24
gif        not encoder options but how frames are      ``max_fps`` 10 / 15 / 25 caps the frame
           turned into palettes (see ``encode``)       rate; ``colors`` 64 / 256 / 256 per frame;
                                                       ``dither`` none / none / floyd_steinberg
=========  ==========================================  ==========================================

Besides the encoder, ``draft`` makes Ken Burns crops snap to whole source pixels (one fast
swscale pass instead of a sub-pixel Pillow resample, see ``compose``).
"""

from __future__ import annotations

PRESETS: dict[str, tuple[int, int] | None] = {
    "youtube_1080p": (1920, 1080),
    "youtube_4k": (3840, 2160),
    "tiktok": (1080, 1920),
    "instagram_feed": (1080, 1080),
    "twitter": (1280, 720),
    "custom": None,
}

ASPECT_RATIOS: dict[str, tuple[int, int]] = {
    "16:9": (16, 9),
    "9:16": (9, 16),
    "1:1": (1, 1),
    "4:5": (4, 5),
    "4:3": (4, 3),
    "21:9": (21, 9),
}

QUALITY: dict[str, dict[str, dict[str, str]]] = {
    "mp4": {
        "draft": {"preset": "ultrafast", "crf": "30"},
        "standard": {"preset": "medium", "crf": "23"},
        "high": {"preset": "slow", "crf": "18"},
    },
    "webm": {
        "draft": {"deadline": "realtime", "cpu-used": "8", "crf": "40", "b:v": "0", "row-mt": "1"},
        "standard": {"deadline": "good", "cpu-used": "4", "crf": "32", "b:v": "0", "row-mt": "1"},
        "high": {"deadline": "good", "cpu-used": "2", "crf": "24", "b:v": "0", "row-mt": "1"},
    },
    "gif": {
        "draft": {"max_fps": "10", "colors": "64", "dither": "none"},
        "standard": {"max_fps": "15", "colors": "256", "dither": "none"},
        "high": {"max_fps": "25", "colors": "256", "dither": "floyd_steinberg"},
    },
}

AUDIO_BITRATE: dict[str, dict[str, int]] = {
    "mp4": {"draft": 96_000, "standard": 128_000, "high": 192_000},
    "webm": {"draft": 64_000, "standard": 96_000, "high": 160_000},
}

CODECS: dict[str, tuple[str, str | None]] = {
    "mp4": ("libx264", "aac"),
    "webm": ("libvpx-vp9", "libopus"),
    "gif": ("gif", None),
}
"""Encoder names per format: (video, audio)."""


def output_fps(fmt: str, quality: str, fps: float) -> float:
    """The frame rate actually written: GIF is capped per quality, the others are unchanged."""
    cap = QUALITY[fmt][quality].get("max_fps")
    return min(fps, float(cap)) if cap is not None else fps


def output_size(fmt: str, width: int, height: int) -> tuple[int, int]:
    """The size actually written: yuv420p (mp4, webm) needs even sides, so odd ones round down."""
    if fmt == "gif":
        return width, height
    return width - width % 2, height - height % 2
