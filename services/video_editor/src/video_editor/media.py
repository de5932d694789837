"""What a media file is, from its bytes: type sniffing, probing and thumbnails.

The type comes from the file's first bytes (``filetype``), never from its name or the
client's declared type; the file must then open and decode (PyAV for audio and video,
Pillow for images). All functions are blocking: call them from a worker thread.
"""

from __future__ import annotations

import io
import math
from array import array
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Final

import av
import filetype
import numpy as np
from av.audio.stream import AudioStream
from av.container import InputContainer
from av.stream import Disposition
from av.video.stream import VideoStream
from PIL import Image, ImageDraw, ImageOps

__all__ = [
    "ALLOWED",
    "MAX_IMAGE_PIXELS",
    "Probe",
    "UnsupportedMedia",
    "probe",
    "sniff",
    "thumbnail",
]

ALLOWED: Final[dict[str, str]] = {
    "video/mp4": "video",
    "video/webm": "video",
    "video/quicktime": "video",
    "video/x-matroska": "video",
    "audio/mpeg": "audio",
    "audio/wav": "audio",
    "audio/x-wav": "audio",
    "audio/flac": "audio",
    "audio/x-flac": "audio",
    "audio/ogg": "audio",
    "audio/mp4": "audio",
    "audio/webm": "audio",
    "audio/x-matroska": "audio",
    "image/png": "image",
    "image/jpeg": "image",
    "image/webp": "image",
    "image/gif": "image",
}
"""Allowed content types and their kind. ``sniff`` answers the canonical names (audio/wav,
audio/flac); audio/webm and audio/x-matroska only come from ``probe`` (no video stream)."""

MAX_IMAGE_PIXELS: Final = 80_000_000
"""Images above this many pixels are refused (decoding them would take gigabytes)."""

_HEAD_BYTES: Final = 8192
_ALIASES: Final = {
    "audio/x-wav": "audio/wav",
    "audio/x-flac": "audio/flac",
    "video/x-m4v": "video/mp4",
}
_AUDIO_ONLY: Final = {
    "video/mp4": "audio/mp4",
    "video/quicktime": "audio/mp4",
    "video/webm": "audio/webm",
    "video/x-matroska": "audio/x-matroska",
}
_PILLOW_FORMATS: Final = {
    "image/png": "PNG",
    "image/jpeg": "JPEG",
    "image/webp": "WEBP",
    "image/gif": "GIF",
}
_ISOBMFF: Final = frozenset({"video/mp4", "video/quicktime", "audio/mp4"})
_EBML: Final = frozenset({"video/webm", "video/x-matroska"})
_BACKGROUND: Final = (24, 24, 28)
_WAVE: Final = (90, 200, 250)


class UnsupportedMedia(Exception):
    """The bytes are not an allowed media type, or do not decode (the caller answers 415)."""


@dataclass(frozen=True)
class Probe:
    """What a media file holds."""

    kind: str
    content_type: str
    duration_seconds: float | None
    width: int | None
    height: int | None
    fps: float | None
    has_audio: bool


# --- sniffing -------------------------------------------------------------------------------


def _looks_like_mp3_frame(head: bytes) -> bool:
    """An MPEG audio layer III frame header (an MP3 without ID3 tag that filetype misses)."""
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    version, layer = (head[1] >> 3) & 0b11, (head[1] >> 1) & 0b11
    bitrate, rate = head[2] >> 4, (head[2] >> 2) & 0b11
    return version != 0b01 and layer == 0b01 and bitrate not in (0, 0xF) and rate != 0b11


def _describe(head: bytes) -> str:
    """What unrecognised bytes look like, for the error message."""
    if not head:
        return "an empty file"
    try:
        text = head.decode("utf-8").lstrip("\ufeff \t\r\n").lower()
    except UnicodeDecodeError:
        return f"unrecognised binary data starting {head[:8].hex(' ')}"
    if text.startswith(("<!doctype html", "<html")) or "<html" in text[:1024]:
        return "an HTML document"
    if text.startswith("<"):
        return "XML or markup text"
    if text.startswith(("{", "[")):
        return "JSON text"
    return "plain text"


def _sniff_head(head: bytes) -> str:
    guess = filetype.guess(head)
    mime: str | None = str(guess.mime) if guess is not None else None
    if mime is None and _looks_like_mp3_frame(head):
        mime = "audio/mpeg"
    if mime is None:
        raise UnsupportedMedia(
            f"the bytes are not a known media type: they look like {_describe(head)}"
        )
    mime = _ALIASES.get(mime, mime)
    if mime not in ALLOWED:
        raise UnsupportedMedia(f"the bytes look like {mime}, which is not an allowed media type")
    return mime


def sniff(path: Path) -> str:
    """The content type from the file's first bytes; UnsupportedMedia unless it is ALLOWED."""
    with path.open("rb") as file:
        head = file.read(_HEAD_BYTES)
    return _sniff_head(head)


# --- structure checks (truncation) ----------------------------------------------------------


def _check_isobmff(path: Path) -> None:
    """Every top-level box of an MP4/MOV must end inside the file (else it was cut short)."""
    size = path.stat().st_size
    with path.open("rb") as file:
        offset = 0
        while size - offset >= 8:
            file.seek(offset)
            header = file.read(16)
            length, kind = int.from_bytes(header[:4], "big"), header[4:8]
            if length == 1 and len(header) == 16:
                length = int.from_bytes(header[8:16], "big")
            elif length == 0:  # the last box runs to the end of the file
                return
            name = kind.decode("latin-1")
            if length < 8:
                raise UnsupportedMedia(f"corrupt MP4/MOV: box {name!r} has an invalid size")
            if offset + length > size:
                raise UnsupportedMedia(
                    f"truncated MP4/MOV: box {name!r} ends {offset + length - size} bytes "
                    "past the end of the file"
                )
            offset += length


def _vint(data: bytes, pos: int, *, marker: bool) -> tuple[int, int, bool]:
    """An EBML variable-size integer at ``pos``: (value, next position, all data bits set)."""
    if pos >= len(data) or data[pos] == 0:
        raise UnsupportedMedia("corrupt WebM/Matroska header")
    width = 8 - data[pos].bit_length() + 1
    if pos + width > len(data):
        raise UnsupportedMedia("corrupt WebM/Matroska header")
    value = int.from_bytes(data[pos : pos + width], "big")
    data_bits = (1 << (7 * width)) - 1
    unknown = value & data_bits == data_bits
    return (value if marker else value & data_bits), pos + width, unknown


def _check_ebml(path: Path) -> None:
    """The Segment of a WebM/MKV must fit in the file when its size is declared."""
    size = path.stat().st_size
    with path.open("rb") as file:
        head = file.read(_HEAD_BYTES)
    element, pos, _ = _vint(head, 0, marker=True)
    length, pos, _ = _vint(head, pos, marker=False)
    pos += length
    element, pos, _ = _vint(head, pos, marker=True)
    if element != 0x18538067:
        raise UnsupportedMedia("corrupt WebM/Matroska: no Segment after the EBML header")
    length, pos, unknown = _vint(head, pos, marker=False)
    if not unknown and pos + length > size:
        raise UnsupportedMedia(
            f"truncated WebM/Matroska: the segment ends {pos + length - size} bytes "
            "past the end of the file"
        )


# --- probing --------------------------------------------------------------------------------


def _image_orientation_swaps(image: Image.Image) -> bool:
    """True when the EXIF orientation turns the image a quarter (width and height swap)."""
    return image.getexif().get(0x0112) in (5, 6, 7, 8)


def _probe_image(path: Path, mime: str) -> Probe:
    formats = [_PILLOW_FORMATS[mime]]
    try:
        with Image.open(path, formats=formats) as image:
            image.verify()
        with Image.open(path, formats=formats) as image:
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise UnsupportedMedia(
                    f"the image is {image.width}x{image.height}, above {MAX_IMAGE_PIXELS} pixels"
                )
            image.load()
            width, height = image.size
            if _image_orientation_swaps(image):
                width, height = height, width
    except UnsupportedMedia:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise UnsupportedMedia(f"the bytes start like {mime} but do not decode: {exc}") from exc
    return Probe("image", mime, None, width, height, None, False)


def _video_streams(container: InputContainer) -> list[VideoStream]:
    """The video streams, without cover art (an MP3's or M4A's attached picture)."""
    return [s for s in container.streams.video if not s.disposition & Disposition.attached_pic]


def _rate(stream: VideoStream) -> float | None:
    rate: Fraction | None = stream.average_rate or stream.guessed_rate or stream.base_rate
    return round(float(rate), 3) if rate else None


def _duration(container: InputContainer, stream: VideoStream | AudioStream) -> float | None:
    """The container's duration, else the stream's, else the end of its last packet."""
    if container.duration is not None and container.duration > 0:
        return round(container.duration / av.time_base, 6)
    if stream.duration is not None and stream.time_base is not None:
        return round(float(stream.duration * stream.time_base), 6)
    end: float | None = None
    for packet in container.demux(stream):
        if packet.pts is not None and packet.time_base is not None:
            last = float((packet.pts + (packet.duration or 0)) * packet.time_base)
            end = last if end is None else max(end, last)
    return None if end is None else round(end, 6)


def _probe_av(path: Path, mime: str) -> Probe:
    kind = ALLOWED[mime]
    with av.open(str(path), metadata_errors="ignore") as container:
        videos = _video_streams(container)
        audios = list(container.streams.audio)
        if not videos and not audios:
            raise UnsupportedMedia(f"the {mime} file has neither an audio nor a video stream")
        if kind == "video" and not videos:
            kind, mime = "audio", _AUDIO_ONLY.get(mime, mime)
        elif kind == "audio" and videos and mime == "audio/mp4":
            kind, mime = "video", "video/mp4"
        primary: VideoStream | AudioStream = videos[0] if kind == "video" else audios[0]
        first = next(iter(container.decode(primary)), None)
        if first is None:
            raise UnsupportedMedia(f"the {mime} file's {primary.type} stream decodes no frame")
        width = height = None
        fps = None
        if isinstance(primary, VideoStream):
            width, height = primary.codec_context.width, primary.codec_context.height
            if isinstance(first, av.VideoFrame) and abs(first.rotation) in (90, 270):
                width, height = height, width
            fps = _rate(primary)
        duration = _duration(container, primary)
        return Probe(kind, mime, duration, width, height, fps, bool(audios))


def probe(path: Path) -> Probe:
    """Sniff the type, then open and decode the file; UnsupportedMedia when it does not."""
    mime = sniff(path)
    if ALLOWED[mime] == "image":
        return _probe_image(path, mime)
    if mime in _ISOBMFF:
        _check_isobmff(path)
    elif mime in _EBML:
        _check_ebml(path)
    try:
        return _probe_av(path, mime)
    except UnsupportedMedia:
        raise
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise UnsupportedMedia(f"the bytes start like {mime} but do not decode: {exc}") from exc


# --- thumbnails -----------------------------------------------------------------------------


def _png(image: Image.Image, width: int) -> bytes:
    """The image scaled to ``width`` (aspect kept), encoded as PNG."""
    if image.mode not in ("RGB", "RGBA"):
        alpha = "A" in image.getbands() or "transparency" in image.info
        image = image.convert("RGBA" if alpha else "RGB")
    height = max(1, round(image.height * width / max(1, image.width)))
    image = image.resize((width, height), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def _placeholder(width: int) -> bytes:
    """A plain 16:9 tile, for media that yield no picture."""
    return _png(Image.new("RGB", (width, max(1, width * 9 // 16)), _BACKGROUND), width)


def _image_thumbnail(path: Path, width: int) -> bytes:
    with Image.open(path) as image:
        image.draft("RGB", (width, width))  # JPEG: decode at a reduced scale
        return _png(ImageOps.exif_transpose(image), width)


def _video_frame(path: Path, at: float) -> Image.Image | None:
    """The first video frame at or after ``at`` seconds (the last one before the end if none)."""
    with av.open(str(path), metadata_errors="ignore") as container:
        streams = _video_streams(container)
        if not streams:
            return None
        stream = streams[0]
        if at > 0 and stream.time_base is not None:
            container.seek(int(at / stream.time_base), stream=stream)
        chosen = None
        for frame in container.decode(stream):
            chosen = frame
            if frame.time is None or frame.time >= at - 1e-3:
                break
        if chosen is None:
            return None
        image = Image.fromarray(chosen.to_ndarray(format="rgb24"))
        if chosen.rotation:
            image = image.rotate(chosen.rotation, expand=True)
        return image


def _video_thumbnail(path: Path, probe: Probe, width: int) -> bytes:
    at = 0.1 * probe.duration_seconds if probe.duration_seconds else 0.0
    image = None
    for moment in (at, 0.0) if at > 0 else (0.0,):
        try:
            image = _video_frame(path, moment)
        except (av.FFmpegError, OSError, ValueError):
            image = None
        if image is not None:
            break
    return _png(image, width) if image is not None else _placeholder(width)


def _audio_peaks(path: Path, columns: int) -> np.ndarray:
    """Peak amplitude (0..1) of the decoded samples in ``columns`` equal slices of the file."""
    blocks = array("f")
    with av.open(str(path), metadata_errors="ignore") as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="fltp")
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                samples = np.abs(out.to_ndarray()).max(axis=0)
                for piece in np.array_split(samples, max(1, math.ceil(samples.size / 512))):
                    if piece.size:
                        blocks.append(float(piece.max()))
    if not blocks:
        return np.zeros(columns, dtype=np.float32)
    peaks = np.frombuffer(blocks, dtype=np.float32)
    starts = (np.arange(columns) * peaks.size) // columns
    return np.clip(np.maximum.reduceat(peaks, starts), 0.0, 1.0)


def _waveform(peaks: np.ndarray, width: int) -> Image.Image:
    """The peaks drawn as a mirrored waveform, scaled to the loudest one."""
    height = max(16, width // 4)
    image = Image.new("RGB", (width, height), _BACKGROUND)
    draw = ImageDraw.Draw(image)
    loudest = float(peaks.max()) if peaks.size else 0.0
    scale = 1.0 / loudest if loudest > 1e-4 else 0.0
    middle, reach = (height - 1) / 2, (height - 2) / 2
    for x, peak in enumerate(peaks[:width]):
        half = max(0.5, float(peak) * scale * reach)
        draw.line([(x, round(middle - half)), (x, round(middle + half))], fill=_WAVE)
    return image


def thumbnail(path: Path, probe: Probe, *, width: int = 320) -> bytes:
    """A PNG ``width`` pixels wide: the image, a video frame at ~10 %, or the audio's waveform."""
    if width < 1:
        raise ValueError("width must be positive")
    if probe.kind == "image":
        return _image_thumbnail(path, width)
    if probe.kind == "video":
        return _video_thumbnail(path, probe, width)
    try:
        peaks = _audio_peaks(path, width)
    except (av.FFmpegError, OSError, ValueError):
        return _placeholder(width)
    return _png(_waveform(peaks, width), width)
