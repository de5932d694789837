"""Frame composition: one picture per output frame time, at the output size.

Visual tracks (``video``/``overlay`` by ascending order, then ``text`` tracks by order) are
drawn bottom-up over black. On a track the clip that started last is on top; while it is in
its ``transition_in`` it is blended with the clip it overlaps (the previous clip on the same
track) or, when nothing overlaps, with what lies beneath the track (black on the bottom track).
A clip's ``opacity`` and its ``fade_in``/``fade_out`` ramps blend it over what lies beneath.

Transitions, with progress ``p`` going 0 → 1 over the transition:

- ``dissolve``: ``(1 - p)·out + p·in``; ``fade_black``/``fade_white``: the first half fades the
  outgoing picture to black/white, the second half from black/white to the incoming one;
- ``wipe_left``/``wipe_right``: a vertical edge moves leftwards/rightwards uncovering the
  incoming picture behind it;
- ``slide_left``/``slide_right``: the incoming picture slides in moving leftwards/rightwards,
  pushing the outgoing one out;
- ``zoom_in``: the outgoing picture zooms in (1x to 1.5x) while dissolving into the incoming;
  ``zoom_out``: the incoming picture zooms out (1.5x to 1x) while dissolving in;
- ``cut`` (or none): no blend.

Stills are decoded once per render and dropped after their last clip. Video clips keep one
decoder each: it seeks to the clip's first needed time once and then only reads forward.
Fast paths (the storyboard case): a frame that is exactly one opaque still/video clip comes
back as a ``VideoFrame`` (the source crop, or the still already converted to yuv420p) so the
encoder scales and converts it in one swscale pass; a dissolve or fade between two such clips
is blended on yuv420p planes. Everything else is composed as an RGB array.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TypeAlias, cast

import av
import numpy as np
import numpy.typing as npt
from av.video.frame import VideoFrame
from av.video.reformatter import ColorRange, Colorspace
from PIL import Image, ImageColor, ImageDraw, ImageFont, ImageOps

from .spec import FULL_FRAME, Rect, RenderClip, RenderTrack

RGB: TypeAlias = npt.NDArray[np.uint8]
YUV: TypeAlias = npt.NDArray[np.uint8]
Picture: TypeAlias = RGB | VideoFrame
"""An RGB array at the output size, or a frame to be scaled to fill the output."""

_EPS = 1e-6
_ZOOM = 0.5  # extra magnification reached by the zoom transitions
_VISUAL_KINDS = frozenset({"video", "image", "text"})
_LINEAR = frozenset({"dissolve", "fade_black", "fade_white"})  # blend the same in yuv
_LUMA_BLACK, _LUMA_WHITE = 16, 235


def mix(a: RGB, b: RGB, w: float) -> RGB:
    """``(1 - w)·a + w·b`` in 8-bit fixed point."""
    k = round(min(max(w, 0.0), 1.0) * 256)
    if k <= 0:
        return a
    if k >= 256:
        return b
    acc = a.astype(np.uint16)
    acc *= 256 - k
    other = b.astype(np.uint16)
    other *= k
    acc += other
    acc += 128
    acc >>= 8
    return acc.astype(np.uint8)


def mix_const(a: RGB, value: int, w: float) -> RGB:
    """``(1 - w)·a + w·value`` for a grey level ``value`` (0 black, 255 white)."""
    k = round(min(max(w, 0.0), 1.0) * 256)
    if k <= 0:
        return a
    if k >= 256:
        return np.full_like(a, value)
    acc = a.astype(np.uint16)
    acc *= 256 - k
    acc += value * k + 128
    acc >>= 8
    return acc.astype(np.uint8)


def _zoom(img: RGB, scale: float) -> RGB:
    """Magnify about the centre by ``scale`` (≥ 1), keeping the size."""
    if scale <= 1.0 + 1e-4:
        return img
    h, w = img.shape[:2]
    cw, ch = w / scale, h / scale
    box = ((w - cw) / 2, (h - ch) / 2, (w + cw) / 2, (h + ch) / 2)
    resized = Image.fromarray(img).resize((w, h), Image.Resampling.BILINEAR, box=box)
    return np.asarray(resized)


def transition(kind: str, out: RGB, inc: RGB, p: float) -> RGB:
    """Blend the outgoing picture ``out`` into the incoming ``inc`` at progress ``p``."""
    p = min(max(p, 0.0), 1.0)
    width = out.shape[1]
    if kind in ("fade_black", "fade_white"):
        level = 0 if kind == "fade_black" else 255
        if p < 0.5:
            return mix_const(out, level, 2 * p)
        return mix_const(inc, level, 2 - 2 * p)
    if kind in ("wipe_left", "wipe_right"):
        result = out.copy()
        if kind == "wipe_left":
            edge = round(width * (1 - p))
            result[:, edge:] = inc[:, edge:]
        else:
            edge = round(width * p)
            result[:, :edge] = inc[:, :edge]
        return result
    if kind in ("slide_left", "slide_right"):
        shift = round(width * p)
        if shift <= 0:
            return out
        if shift >= width:
            return inc
        result = np.empty_like(out)
        if kind == "slide_left":
            result[:, : width - shift] = out[:, shift:]
            result[:, width - shift :] = inc[:, :shift]
        else:
            result[:, shift:] = out[:, : width - shift]
            result[:, :shift] = inc[:, width - shift :]
        return result
    if kind == "zoom_in":
        return mix(_zoom(out, 1 + _ZOOM * p), inc, p)
    if kind == "zoom_out":
        return mix(out, _zoom(inc, 1 + _ZOOM * (1 - p)), p)
    return mix(out, inc, p)  # dissolve


def _clamp01(v: float) -> float:
    return min(max(v, 0.0), 1.0)


def _lerp_rect(a: Rect, b: Rect, u: float) -> Rect:
    return Rect(
        a.x + (b.x - a.x) * u, a.y + (b.y - a.y) * u, a.w + (b.w - a.w) * u, a.h + (b.h - a.h) * u
    )


def source_box(
    rect: Rect, src_w: int, src_h: int, out_w: int, out_h: int, *, cover: bool
) -> tuple[float, float, float, float]:
    """The crop of the source (pixels) shown for ``rect``; ``cover`` trims it to the output's
    aspect about its centre (the rest of the rect is cut off, as a cover fit does)."""
    x0, x1 = _clamp01(rect.x) * src_w, _clamp01(rect.x + rect.w) * src_w
    y0, y1 = _clamp01(rect.y) * src_h, _clamp01(rect.y + rect.h) * src_h
    x1, y1 = max(x1, min(x0 + 1, src_w)), max(y1, min(y0 + 1, src_h))
    x0, y0 = min(x0, x1 - 1), min(y0, y1 - 1)
    if cover:
        bw, bh, target = x1 - x0, y1 - y0, out_w / out_h
        if bw / bh > target:
            cx, half = (x0 + x1) / 2, bh * target / 2
            x0, x1 = cx - half, cx + half
        else:
            cy, half = (y0 + y1) / 2, bw / target / 2
            y0, y1 = cy - half, cy + half
    return x0, y0, x1, y1


def _int_box(box: tuple[float, float, float, float], w: int, h: int) -> tuple[int, int, int, int]:
    x0, y0 = max(0, round(box[0])), max(0, round(box[1]))
    x1, y1 = min(w, max(x0 + 1, round(box[2]))), min(h, max(y0 + 1, round(box[3])))
    return x0, y0, x1, y1


def fade_weight(clip: RenderClip, t: float) -> float:
    """The clip's fade-in/fade-out envelope at timeline time ``t`` (0..1)."""
    w = 1.0
    if clip.fade_in > 0:
        w = min(w, (t - clip.start) / clip.fade_in)
    if clip.fade_out > 0:
        w = min(w, (clip.end - t) / clip.fade_out)
    return _clamp01(w)


def load_still(path: Path) -> Image.Image:
    """Decode an image file to RGB, honouring EXIF orientation; transparency becomes black."""
    with Image.open(path) as opened:
        img = ImageOps.exif_transpose(opened)
        img.load()
    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, (0, 0, 0, 255)), rgba)
    return img.convert("RGB") if img.mode != "RGB" else img


class _Stills:
    """Decoded stills and their fitted/reduced versions, each kept until its last clip ends."""

    def __init__(self, last_use: dict[Path, float]) -> None:
        self._last_use = last_use
        self._images: dict[Path, Image.Image] = {}
        self._derived: dict[tuple[object, ...], object] = {}

    def image(self, path: Path) -> Image.Image:
        img = self._images.get(path)
        if img is None:
            img = self._images[path] = load_still(path)
        return img

    def derived(self, key: tuple[object, ...], make: Callable[[], object]) -> object:
        """A value computed once from a still (key starts with its path)."""
        if key not in self._derived:
            self._derived[key] = make()
        return self._derived[key]

    def release(self, t: float) -> None:
        """Forget the stills no clip needs after ``t``."""
        for path in [p for p in self._images if self._last_use.get(p, 0.0) <= t + _EPS]:
            del self._images[path]
            for key in [k for k in self._derived if k[0] == path]:
                del self._derived[key]


def fit_image(img: Image.Image, width: int, height: int, *, cover: bool) -> RGB:
    """A whole still fitted to the output once (Lanczos): centre-cropped, or letterboxed."""
    if cover:
        box = source_box(FULL_FRAME, img.width, img.height, width, height, cover=True)
        fitted = img.resize((width, height), Image.Resampling.LANCZOS, box=box)
        return np.asarray(fitted)
    fw, fh = _fit_size(img.width, img.height, width, height)
    canvas = Image.new("RGB", (width, height))
    canvas.paste(
        img.resize((fw, fh), Image.Resampling.LANCZOS), ((width - fw) // 2, (height - fh) // 2)
    )
    return np.asarray(canvas)


class _Fitted:
    """A still fitted to the output, in RGB and (made once when needed) yuv420p."""

    def __init__(self, rgb: RGB) -> None:
        self.rgb = rgb
        self._yuv: VideoFrame | None = None

    def yuv_frame(self) -> VideoFrame:
        if self._yuv is None:
            self._yuv = to_yuv(self.rgb, self.rgb.shape[1], self.rgb.shape[0])
        return self._yuv

    def yuv(self) -> YUV:
        return yuv_array(self.yuv_frame())


def to_yuv(picture: Picture, width: int, height: int) -> VideoFrame:
    """A yuv420p frame (BT.709, limited range) at ``width`` x ``height``; no-op when it is one."""
    frame = (
        VideoFrame.from_ndarray(picture, format="rgb24")
        if isinstance(picture, np.ndarray)
        else picture
    )
    return frame.reformat(
        width,
        height,
        "yuv420p",
        dst_colorspace=Colorspace.ITU709,
        dst_color_range=ColorRange.MPEG,
        interpolation="BILINEAR",
    )


def yuv_array(frame: VideoFrame) -> YUV:
    """The planes of a yuv420p frame stacked in one ``(h * 3 / 2, w)`` array."""
    return cast(YUV, frame.to_ndarray())


def yuv_frame(planes: YUV) -> VideoFrame:
    """The inverse of ``yuv_array``, tagged BT.709 limited range."""
    frame = VideoFrame.from_ndarray(planes, format="yuv420p")
    frame.colorspace, frame.color_range = Colorspace.ITU709, ColorRange.MPEG
    return frame


def yuv_mix_level(planes: YUV, height: int, luma: int, w: float) -> YUV:
    """``mix_const`` for yuv420p: luma towards ``luma``, chroma towards neutral."""
    out = np.empty_like(planes)
    out[:height] = mix_const(planes[:height], luma, w)
    out[height:] = mix_const(planes[height:], 128, w)
    return out


def _fit_size(src_w: float, src_h: float, width: int, height: int) -> tuple[int, int]:
    scale = min(width / src_w, height / src_h)
    return max(1, min(width, round(src_w * scale))), max(1, min(height, round(src_h * scale)))


class _VideoReader:
    """Sequential decoder for one clip: seeks once, then only reads forward."""

    def __init__(self, path: Path, check: Callable[[], None]) -> None:
        self._check = check
        self._container = av.open(str(path))
        self._stream = self._container.streams.video[0] if self._container.streams.video else None
        self._frames: Iterator[VideoFrame] | None = None
        self._current: VideoFrame | None = None
        self._next: VideoFrame | None = None
        self._origin = 0.0
        self._time_base = Fraction(1, 1000)
        if self._stream is not None:
            self._stream.thread_type = "AUTO"
            if self._stream.time_base is not None:
                self._time_base = self._stream.time_base
            if self._stream.start_time is not None:
                self._origin = float(self._stream.start_time * self._time_base)

    def _read(self) -> VideoFrame | None:
        assert self._frames is not None
        return next(self._frames, None)

    def frame_at(self, seconds: float) -> VideoFrame | None:
        """The frame on screen ``seconds`` into the source (the last one past its end)."""
        if self._stream is None:
            return None
        target = self._origin + seconds
        if self._frames is None:
            if seconds > 0:
                self._container.seek(int(target / self._time_base), stream=self._stream)
            self._frames = self._container.decode(self._stream)
            self._next = self._read()
        decoded = 0
        while self._next is not None and (
            self._current is None or self._next.time is None or self._next.time <= target + 1e-3
        ):
            self._current, self._next = self._next, self._read()
            decoded += 1
            if decoded % 8 == 0:
                self._check()  # catching up after a seek may decode a whole GOP
        return self._current

    def close(self) -> None:
        self._container.close()


class _MediaClip:
    """Pictures of one still or video clip."""

    def __init__(self, owner: Compositor, clip: RenderClip) -> None:
        assert clip.path is not None
        self._owner = owner
        self._clip = clip
        self._path = clip.path
        self._reader = _VideoReader(clip.path, owner.check) if clip.kind == "video" else None
        self._last: tuple[VideoFrame, Picture] | None = None

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()

    def _rect(self, t: float) -> Rect:
        kb = self._clip.ken_burns
        if kb is None:
            return FULL_FRAME
        u = _clamp01((t - self._clip.start) / self._clip.duration) if self._clip.duration else 0
        return _lerp_rect(kb.from_rect, kb.to_rect, u)

    def _fitted(self) -> _Fitted:
        o = self._owner
        made = o.stills.derived(
            (self._path, "fit", o.cover),
            lambda: _Fitted(
                fit_image(o.stills.image(self._path), o.width, o.height, cover=o.cover)
            ),
        )
        assert isinstance(made, _Fitted)
        return made

    def picture(self, t: float) -> Picture:
        """The picture in its cheapest form (see ``Compositor.frame``)."""
        o = self._owner
        if self._reader is None:
            if self._clip.ken_burns is None:
                fitted = self._fitted()
                return fitted.yuv_frame() if o.yuv else fitted.rgb
            return self._crop(self._working_still(), self._rect(t))
        frame = self._reader.frame_at(self._clip.in_point + (t - self._clip.start))
        if frame is None:
            return o.black
        if self._clip.ken_burns is not None:
            return self._crop(_FrameSource(frame), self._rect(t))
        if self._last is not None and self._last[0] is frame:
            return self._last[1]
        picture = self._fit_frame(frame)
        self._last = (frame, picture)
        return picture

    def rgb(self, t: float) -> RGB:
        """The picture as an RGB array at the output size."""
        if self._reader is None and self._clip.ken_burns is None:
            return self._fitted().rgb
        return self._owner.to_rgb(self.picture(t))

    def yuv(self, t: float) -> YUV:
        """The picture as a yuv420p array at the output size."""
        if self._reader is None and self._clip.ken_burns is None:
            return self._fitted().yuv()
        return yuv_array(to_yuv(self.picture(t), self._owner.width, self._owner.height))

    def _fit_frame(self, frame: VideoFrame) -> Picture:
        o = self._owner
        if abs(frame.width * o.height - frame.height * o.width) <= max(frame.width, frame.height):
            return frame  # same aspect: cover and letterbox agree
        if o.cover:
            box = _int_box(
                source_box(FULL_FRAME, frame.width, frame.height, o.width, o.height, cover=True),
                frame.width,
                frame.height,
            )
            arr = frame.to_ndarray(format="rgb24")[box[1] : box[3], box[0] : box[2]]
            return VideoFrame.from_ndarray(arr, format="rgb24")
        fw, fh = _fit_size(frame.width, frame.height, o.width, o.height)
        scaled = frame.reformat(fw, fh, "rgb24", interpolation="BILINEAR").to_ndarray()
        canvas = np.zeros((o.height, o.width, 3), np.uint8)
        y0, x0 = (o.height - fh) // 2, (o.width - fw) // 2
        canvas[y0 : y0 + fh, x0 : x0 + fw] = scaled
        return canvas

    def _working_still(self) -> _StillSource:
        """The still, reduced once to the resolution the tightest Ken Burns crop needs."""
        o = self._owner
        img = o.stills.image(self._path)
        kb = self._clip.ken_burns
        assert kb is not None
        need = 0.0
        for rect in (kb.from_rect, kb.to_rect):
            x0, y0, x1, y1 = source_box(
                rect, img.width, img.height, o.width, o.height, cover=o.cover
            )
            need = max(need, o.width / (x1 - x0), o.height / (y1 - y0))
        size = (img.width, img.height)
        if need < 0.75:
            size = (max(1, round(img.width * need)), max(1, round(img.height * need)))
        made = o.stills.derived(
            (self._path, "working", size),
            lambda: _StillSource(
                img if size == img.size else img.resize(size, Image.Resampling.LANCZOS)
            ),
        )
        assert isinstance(made, _StillSource)
        return made

    def _crop(self, source: _StillSource | _FrameSource, rect: Rect) -> Picture:
        o = self._owner
        box = source_box(rect, source.width, source.height, o.width, o.height, cover=o.cover)
        if o.cover and not o.subpixel:
            x0, y0, x1, y1 = _int_box(box, source.width, source.height)
            return VideoFrame.from_ndarray(source.array()[y0:y1, x0:x1], format="rgb24")
        img = source.image()
        if o.cover:
            return np.asarray(img.resize((o.width, o.height), Image.Resampling.BILINEAR, box=box))
        fw, fh = _fit_size(box[2] - box[0], box[3] - box[1], o.width, o.height)
        canvas = Image.new("RGB", (o.width, o.height))
        canvas.paste(
            img.resize((fw, fh), Image.Resampling.BILINEAR, box=box),
            ((o.width - fw) // 2, (o.height - fh) // 2),
        )
        return np.asarray(canvas)


class _StillSource:
    """A still as a Pillow image and, once asked for, as an array."""

    def __init__(self, img: Image.Image) -> None:
        self._img = img
        self._array: RGB | None = None
        self.width, self.height = img.size

    def image(self) -> Image.Image:
        return self._img

    def array(self) -> RGB:
        if self._array is None:
            self._array = np.asarray(self._img)
        return self._array


class _FrameSource:
    """A decoded video frame, converted to RGB as needed."""

    def __init__(self, frame: VideoFrame) -> None:
        self._frame = frame
        self.width, self.height = frame.width, frame.height

    def image(self) -> Image.Image:
        return Image.fromarray(self.array())

    def array(self) -> RGB:
        return cast(RGB, self._frame.to_ndarray(format="rgb24"))


def wrap_text(
    text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, max_width: float
) -> list[str]:
    """Greedy word wrap; explicit newlines are kept; an over-long word gets its own line."""
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for word in paragraph.split():
            candidate = f"{line} {word}" if line else word
            if line and font.getlength(candidate) > max_width:
                lines.append(line)
                line = word
            else:
                line = candidate
        lines.append(line)
    return lines


def _rgba(color: str) -> tuple[npt.NDArray[np.float32], float]:
    value = ImageColor.getrgb(color)
    alpha = value[3] / 255 if len(value) == 4 else 1.0
    return np.array(value[:3], np.float32), alpha


class _TextOverlay:
    """A text block rendered once (premultiplied RGB + alpha) and composited per frame."""

    def __init__(self, clip: RenderClip, width: int, height: int) -> None:
        self.region: tuple[int, int, int, int] | None = None
        text = (clip.text or "").strip()
        if not text:
            return
        style = clip.style
        px = max(6, round(style.size * height))
        font = ImageFont.load_default(size=px)
        body = "\n".join(wrap_text(text, font, 0.9 * width))
        spacing = round(px * 0.25)
        probe = ImageDraw.Draw(Image.new("L", (1, 1)))
        bx0, by0, bx1, by1 = probe.multiline_textbbox(
            (0, 0), body, font=font, spacing=spacing, align="center"
        )
        pad = round(px * 0.35)
        box_w, box_h = round(bx1 - bx0) + 2 * pad, round(by1 - by0) + 2 * pad
        origin = (pad - bx0, pad - by0)

        def coverage(stroke: int) -> npt.NDArray[np.float32]:
            mask = Image.new("L", (box_w, box_h), 0)
            ImageDraw.Draw(mask).multiline_text(
                origin,
                body,
                fill=255,
                font=font,
                spacing=spacing,
                align="center",
                stroke_width=stroke,
                stroke_fill=255,
            )
            return np.asarray(mask, np.float32)[..., None] * np.float32(1 / 255)

        fg, fg_alpha = _rgba(style.color)
        premultiplied = np.zeros((box_h, box_w, 3), np.float32)
        alpha = np.zeros((box_h, box_w, 1), np.float32)
        layers: list[tuple[npt.NDArray[np.float32], npt.NDArray[np.float32] | float]] = []
        if style.background:
            bg, bg_alpha = _rgba(style.background)
            layers.append((bg, bg_alpha))
        else:  # no box: a dark outline keeps the text readable on any picture
            layers.append((np.zeros(3, np.float32), coverage(max(1, px // 14)) * 0.6))
        layers.append((fg, coverage(0) * fg_alpha))
        for colour, a in layers:  # "over", bottom to top, premultiplied
            premultiplied = colour * a + premultiplied * (1 - a)
            alpha = a + alpha * (1 - a)
        self.premultiplied, self.alpha = premultiplied, alpha
        margin = round(0.05 * height)
        x0 = (width - box_w) // 2
        y0 = {"top": margin, "center": (height - box_h) // 2}.get(
            style.position, height - margin - box_h
        )
        cx0, cy0 = max(0, x0), max(0, y0)
        cx1, cy1 = min(width, x0 + box_w), min(height, y0 + box_h)
        if cx0 >= cx1 or cy0 >= cy1:
            return
        inner = (slice(cy0 - y0, cy1 - y0), slice(cx0 - x0, cx1 - x0))
        self.premultiplied = self.premultiplied[inner]
        self.alpha = self.alpha[inner]
        self.region = (cx0, cy0, cx1, cy1)

    def over(self, below: RGB, weight: float) -> RGB:
        if self.region is None or weight <= 0:
            return below
        x0, y0, x1, y1 = self.region
        out = below.copy()
        base = out[y0:y1, x0:x1].astype(np.float32)
        base *= 1 - self.alpha * weight
        base += self.premultiplied * weight
        base += 0.5
        out[y0:y1, x0:x1] = np.clip(base, 0, 255).astype(np.uint8)
        return out


@dataclass(frozen=True)
class _Placed:
    key: int
    clip: RenderClip


class Compositor:
    """Makes the picture for any timeline time; times must not go backwards."""

    def __init__(
        self,
        tracks: Sequence[RenderTrack],
        width: int,
        height: int,
        *,
        cover: bool,
        subpixel: bool,
        yuv: bool = False,
        check: Callable[[], None] = lambda: None,
    ) -> None:
        self.width, self.height, self.cover, self.subpixel, self.check = (
            width,
            height,
            cover,
            subpixel,
            check,
        )
        self.yuv = yuv and width % 2 == 0 and height % 2 == 0
        self.black: RGB = np.zeros((height, width, 3), np.uint8)
        self.black.flags.writeable = False
        self._black_yuv: VideoFrame | None = None
        visual = sorted(
            (t for t in tracks if t.kind != "audio"), key=lambda t: (t.kind == "text", t.order)
        )
        self._layers: list[list[_Placed]] = []
        last_use: dict[Path, float] = {}
        key = 0
        for track in visual:
            layer = []
            for clip in sorted(track.clips, key=lambda c: c.start):
                if clip.kind in _VISUAL_KINDS and clip.duration > 0:
                    layer.append(_Placed(key, clip))
                    key += 1
                    if clip.kind == "image" and clip.path is not None:
                        last_use[clip.path] = max(last_use.get(clip.path, 0.0), clip.end)
            if layer:
                self._layers.append(layer)
        self.stills = _Stills(last_use)
        self._media: dict[int, _MediaClip] = {}
        self._texts: dict[int, _TextOverlay] = {}
        self._ends = {p.key: p.clip.end for layer in self._layers for p in layer}
        self._cursors = [0] * len(self._layers)

    def close(self) -> None:
        """Close every open decoder."""
        for media in self._media.values():
            media.close()
        self._media.clear()
        self._texts.clear()

    def _release(self, t: float) -> None:
        for key in [k for k in self._media if self._ends[k] <= t + _EPS]:
            self._media.pop(key).close()
        for key in [k for k in self._texts if self._ends[k] <= t + _EPS]:
            del self._texts[key]
        self.stills.release(t)

    def frame(self, t: float) -> Picture:
        """The composed picture at timeline time ``t``."""
        self._release(t)
        active = [a for a in (self._active(i, t) for i in range(len(self._layers))) if a]
        if not active:
            return self._blank()
        if len(active) == 1:
            fast = self._single_layer(active[0], t)
            if fast is not None:
                return fast
        canvas: RGB | None = None
        for placed in active:
            canvas = self._track_over(placed, t, canvas)
        return self.black if canvas is None else canvas

    def _active(self, index: int, t: float) -> list[_Placed]:
        """The clips of a layer covering ``t``, by start; a cursor skips the finished ones."""
        layer, first = self._layers[index], self._cursors[index]
        while first < len(layer) and layer[first].clip.end <= t + _EPS:
            first += 1
        self._cursors[index] = first
        found = []
        for placed in layer[first:]:
            if placed.clip.start > t + _EPS:
                break
            if t + _EPS < placed.clip.end:
                found.append(placed)
        return found

    def _blank(self) -> Picture:
        if not self.yuv:
            return self.black
        if self._black_yuv is None:
            self._black_yuv = to_yuv(self.black, self.width, self.height)
        return self._black_yuv

    def _single_layer(self, placed: list[_Placed], t: float) -> Picture | None:
        """The cheap cases of one layer: an opaque clip as it comes, or a linear transition
        between opaque clips blended in yuv420p (half the bytes, no RGB conversions)."""
        top = placed[-1]
        if not self._opaque_media(top.clip, t):
            return None
        if not self._in_transition(top.clip, t):
            return self._media_clip(top).picture(t)
        tr = top.clip.transition_in
        assert tr is not None
        if not self.yuv or tr.type not in _LINEAR:
            return None
        previous = placed[-2] if len(placed) > 1 else None
        if previous is not None and not self._opaque_media(previous.clip, t):
            return None
        h, p = self.height, _clamp01((t - top.clip.start) / tr.duration)
        incoming = self._media_clip(top).yuv(t)
        if previous is None:
            outgoing = yuv_mix_level(incoming, h, _LUMA_BLACK, 1.0)
        else:
            outgoing = self._media_clip(previous).yuv(t)
        if tr.type == "dissolve":
            return yuv_frame(mix(outgoing, incoming, p))
        luma = _LUMA_BLACK if tr.type == "fade_black" else _LUMA_WHITE
        if p < 0.5:
            return yuv_frame(yuv_mix_level(outgoing, h, luma, 2 * p))
        return yuv_frame(yuv_mix_level(incoming, h, luma, 2 - 2 * p))

    @staticmethod
    def _opaque_media(clip: RenderClip, t: float) -> bool:
        return clip.kind != "text" and clip.opacity * fade_weight(clip, t) >= 1.0

    @staticmethod
    def _in_transition(clip: RenderClip, t: float) -> bool:
        tr = clip.transition_in
        return (
            tr is not None and tr.type != "cut" and tr.duration > 0 and t < clip.start + tr.duration
        )

    def _track_over(self, placed: list[_Placed], t: float, below: RGB | None) -> RGB:
        top = placed[-1]
        incoming = self._clip_over(top, t, below)
        tr = top.clip.transition_in
        if tr is None or not self._in_transition(top.clip, t):
            return incoming
        if len(placed) > 1:
            outgoing = self._clip_over(placed[-2], t, below)
        else:
            outgoing = self.black if below is None else below
        return transition(tr.type, outgoing, incoming, (t - top.clip.start) / tr.duration)

    def _clip_over(self, placed: _Placed, t: float, below: RGB | None) -> RGB:
        clip = placed.clip
        weight = clip.opacity * fade_weight(clip, t)
        base = self.black if below is None else below
        if clip.kind == "text":
            overlay = self._texts.get(placed.key)
            if overlay is None:
                overlay = self._texts[placed.key] = _TextOverlay(clip, self.width, self.height)
            return overlay.over(base, weight)
        if weight <= 0:
            return base
        rgb = self._media_clip(placed).rgb(t)
        if weight >= 1:
            return rgb
        if below is None:
            return mix_const(rgb, 0, 1 - weight)
        return mix(below, rgb, weight)

    def _media_clip(self, placed: _Placed) -> _MediaClip:
        media = self._media.get(placed.key)
        if media is None:
            media = self._media[placed.key] = _MediaClip(self, placed.clip)
        return media

    def to_rgb(self, picture: Picture) -> RGB:
        """An RGB array at the output size."""
        if isinstance(picture, np.ndarray):
            return picture
        # swscale scales into packed RGB slowly: scale in yuv420p, then convert (4x faster)
        if picture.format.name != "yuv420p" or (picture.width, picture.height) != (
            self.width,
            self.height,
        ):
            picture = to_yuv(picture, self.width, self.height)
        return cast(RGB, picture.to_ndarray(format="rgb24"))
