"""The export: compose each frame, mix its audio, encode both with PyAV into one file.

- MP4: libx264 yuv420p (BT.709, limited range, tagged) + AAC, ``movflags=+faststart``.
- WebM: libvpx-vp9 yuv420p + Opus. GIF: per-frame palettes (Pillow), no audio.
- MP4 and WebM always carry an audio track, silent when the timeline has no sound: players and
  editors handle a file more predictably when every export has the same streams.
- yuv420p needs even sides: an odd width/height is rounded down (``ExportInfo`` says the size
  written). GIF frame rates are capped per quality (see ``presets``).
- AAC and Opus only take some sample rates; any other ``sample_rate`` is replaced by 48 kHz.
- ``check()`` runs before every frame (and between packets of the final flush); whatever it
  raises propagates after the output file is closed and deleted. ``progress`` gets the
  fraction of frames encoded, at least every 2 %, and 1.0 once the file is complete.
- Frames are streamed into the encoder and audio is mixed one frame's worth at a time, so memory
  does not grow with the duration.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from av.audio.frame import AudioFrame
from av.audio.stream import AudioStream
from av.container import OutputContainer
from av.video.frame import VideoFrame
from av.video.reformatter import ColorPrimaries, ColorRange, Colorspace, ColorTrc
from av.video.stream import VideoStream
from PIL import Image

from .audio import AudioMixer
from .compose import RGB, Compositor, Picture, to_yuv
from .presets import AUDIO_BITRATE, CODECS, QUALITY, output_fps, output_size
from .spec import ExportInfo, RenderSpec, RenderTrack, timeline_end, validate

_SAMPLE_RATES = {
    "aac": frozenset(
        {8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000}
    ),
    "libopus": frozenset({8000, 12000, 16000, 24000, 48000}),
}
_CODEC_NAMES = {
    "libx264": "h264",
    "libvpx-vp9": "vp9",
    "gif": "gif",
    "aac": "aac",
    "libopus": "opus",
}
_PROGRESS_STEPS = 50


def _ignore() -> None:
    return None


def _ignore_progress(_fraction: float) -> None:
    return None


def render(
    spec: RenderSpec,
    tracks: Sequence[RenderTrack],
    out: Path,
    *,
    check: Callable[[], None] = _ignore,
    progress: Callable[[float], None] = _ignore_progress,
) -> ExportInfo:
    """Render ``tracks`` as ``spec`` says into the file ``out`` (written only there).

    Raises ``ValueError`` for an invalid spec or an empty range; on any error (or a cancel
    raised by ``check``) ``out`` is deleted before the exception propagates.
    """
    validate(spec, tracks)
    end = spec.end if spec.end is not None else timeline_end(tracks)
    if end - spec.start <= 0:
        raise ValueError("the range to render is empty")
    width, height = output_size(spec.format, spec.width, spec.height)
    rate = Fraction(output_fps(spec.format, spec.quality, spec.fps)).limit_denominator(1001)
    total = max(1, round((end - spec.start) * rate))
    video_codec, audio_codec = CODECS[spec.format]
    sample_rate = spec.sample_rate
    if audio_codec is not None and sample_rate not in _SAMPLE_RATES[audio_codec]:
        sample_rate = 48000
    out = Path(out)
    options = {"movflags": "+faststart"} if spec.format == "mp4" else {}
    container: OutputContainer | None = None
    compositor = Compositor(
        tracks,
        width,
        height,
        cover=spec.fit == "cover",
        subpixel=spec.quality != "draft",
        yuv=spec.format != "gif",
        check=check,
    )
    mixer = AudioMixer(tracks, sample_rate, spec.start) if audio_codec else None
    try:
        container = av.open(str(out), "w", format=spec.format, options=options)
        vstream = _video_stream(container, spec, video_codec, width, height, rate)
        astream: AudioStream | None = None
        if audio_codec is not None:
            added = container.add_stream(audio_codec, rate=sample_rate, layout="stereo")
            assert isinstance(added, AudioStream)
            astream = added
            astream.bit_rate = AUDIO_BITRATE[spec.format][spec.quality]
        step = max(1, total // _PROGRESS_STEPS)
        for i in range(total):
            check()
            t = spec.start + float(i / rate)
            frame = _to_encoder(compositor, compositor.frame(t), spec, width, height)
            frame.pts = i
            container.mux(vstream.encode(frame))
            if astream is not None and mixer is not None:
                s0, s1 = round(i * sample_rate / rate), round((i + 1) * sample_rate / rate)
                block = mixer.block(s0, s1)
                aframe = AudioFrame.from_ndarray(
                    block.reshape(1, -1), format="flt", layout="stereo"
                )
                aframe.sample_rate = sample_rate
                aframe.time_base = Fraction(1, sample_rate)
                aframe.pts = s0
                container.mux(astream.encode(aframe))
            if (i + 1) % step == 0 and i + 1 < total:
                progress((i + 1) / total)
        for packet in vstream.encode_lazy(None):
            check()  # a slow preset may still hold many frames in its lookahead
            container.mux(packet)
        if astream is not None:
            container.mux(astream.encode(None))
        container.close()
    except BaseException:
        if container is not None:
            with contextlib.suppress(Exception):
                container.close()
        out.unlink(missing_ok=True)
        raise
    finally:
        compositor.close()
        if mixer is not None:
            mixer.close()
    progress(1.0)
    return ExportInfo(
        duration_seconds=float(total / rate),
        frames=total,
        width=width,
        height=height,
        fps=float(rate),
        video_codec=_CODEC_NAMES[video_codec],
        audio_codec=_CODEC_NAMES[audio_codec] if audio_codec else None,
        size_bytes=out.stat().st_size,
    )


def _video_stream(
    container: OutputContainer,
    spec: RenderSpec,
    codec: str,
    width: int,
    height: int,
    rate: Fraction,
) -> VideoStream:
    stream = container.add_stream(codec, rate=rate)
    assert isinstance(stream, VideoStream)
    stream.width, stream.height = width, height
    if codec == "gif":
        stream.pix_fmt = "pal8"
        return stream
    stream.pix_fmt = "yuv420p"
    stream.options = dict(QUALITY[spec.format][spec.quality])
    ctx = stream.codec_context
    ctx.colorspace = Colorspace.ITU709
    ctx.color_range = ColorRange.MPEG
    ctx.color_primaries = ColorPrimaries.BT709
    ctx.color_trc = ColorTrc.BT709
    return stream


def _to_encoder(
    compositor: Compositor, picture: Picture, spec: RenderSpec, width: int, height: int
) -> VideoFrame:
    """The composed picture as a frame the encoder takes without further conversion."""
    if spec.format == "gif":
        return _palettised(compositor.to_rgb(picture), QUALITY["gif"][spec.quality])
    return to_yuv(picture, width, height)


def _palettised(rgb: RGB, options: dict[str, str]) -> VideoFrame:
    """A pal8 frame with its own adaptive palette (Pillow's fast octree quantiser)."""
    img = Image.fromarray(rgb)
    quantised = img.quantize(
        int(options["colors"]), method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE
    )
    if options["dither"] == "floyd_steinberg":
        quantised = img.quantize(palette=quantised, dither=Image.Dither.FLOYDSTEINBERG)
    colours = np.array(quantised.getpalette() or [], np.uint8).reshape(-1, 3)[:256]
    palette = np.zeros((256, 4), np.uint8)
    palette[:, 0] = 255
    palette[: colours.shape[0], 1:] = colours
    indexed: Any = (np.asarray(quantised), palette)  # PyAV's stub omits the pal8 pair
    return VideoFrame.from_ndarray(indexed, format="pal8")
