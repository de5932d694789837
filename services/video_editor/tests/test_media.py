"""Media sniffing, probing and thumbnails on real files generated here."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile
from av.audio.stream import AudioStream
from av.video.stream import VideoStream
from PIL import Image

from video_editor.media import ALLOWED, Probe, UnsupportedMedia, probe, sniff, thumbnail

WAVE_COLOUR = (90, 200, 250)


# --- sample makers --------------------------------------------------------------------------


def make_video(
    path: Path,
    *,
    container: str,
    video_codec: str,
    audio_codec: str | None,
    seconds: float = 1.0,
    fps: int = 25,
    size: tuple[int, int] = (320, 240),
    faststart: bool = False,
    grey: Callable[[int], int] = lambda i: (i * 10) % 200,
) -> Path:
    """A real video: flat grey frames (level ``grey(i)``) and, if asked, a 440 Hz tone."""
    width, height = size
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", format=container, options=options) as out:
        video = out.add_stream(video_codec, rate=fps)
        assert isinstance(video, VideoStream)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = out.add_stream(audio_codec, rate=48000) if audio_codec else None
        if audio is not None:
            assert isinstance(audio, AudioStream)
            audio.layout = "mono"
        for index in range(round(seconds * fps)):
            pixels = np.full((height, width, 3), grey(index), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = index
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if audio is not None:
            total, step = round(seconds * 48000), 960
            for start in range(0, total, step):
                count = min(step, total - start)
                tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(start, start + count) / 48000)
                samples = av.AudioFrame.from_ndarray(
                    tone.astype(np.float32).reshape(1, -1), format="fltp", layout="mono"
                )
                samples.sample_rate, samples.pts = 48000, start
                out.mux(audio.encode(samples))
            out.mux(audio.encode(None))
    return path


def make_audio_mp4(path: Path) -> Path:
    """An MP4 holding only AAC audio (what many phones' voice memos are)."""
    with av.open(str(path), "w", format="mp4") as out:
        audio = out.add_stream("aac", rate=48000)
        audio.layout = "mono"
        for start in range(0, 48000, 1024):
            tone = 0.3 * np.sin(2 * np.pi * 220 * np.arange(start, start + 1024) / 48000)
            frame = av.AudioFrame.from_ndarray(
                tone.astype(np.float32).reshape(1, -1), format="fltp", layout="mono"
            )
            frame.sample_rate, frame.pts = 48000, start
            out.mux(audio.encode(frame))
        out.mux(audio.encode(None))
    return path


def make_tone(path: Path, seconds: float = 1.0, **kwargs: str) -> Path:
    rate = 44100
    tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(round(seconds * rate)) / rate)
    soundfile.write(path, tone.astype(np.float32), rate, **kwargs)
    return path


def png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG"
        image.load()
        return image.size


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("media")
    make_video(folder / "clip.mp4", container="mp4", video_codec="libx264", audio_codec="aac")
    make_video(
        folder / "clip.webm",
        container="webm",
        video_codec="libvpx",
        audio_codec="libopus",
        fps=30,
        size=(256, 144),
    )
    make_video(
        folder / "silent.mp4", container="mp4", video_codec="libx264", audio_codec=None, fps=24
    )
    make_video(folder / "mov.mov", container="mov", video_codec="libx264", audio_codec=None, fps=10)
    make_video(
        folder / "clip.mkv",
        container="matroska",
        video_codec="libx264",
        audio_codec="aac",
        fps=20,
        size=(160, 96),
    )
    make_video(
        folder / "faststart.mp4",
        container="mp4",
        video_codec="libx264",
        audio_codec="aac",
        faststart=True,
    )
    make_audio_mp4(folder / "voice.m4a")
    make_tone(folder / "tone.wav")
    make_tone(folder / "tone.flac")
    make_tone(folder / "tone.mp3")
    make_tone(folder / "tone.ogg", format="OGG", subtype="VORBIS")
    gradient = np.tile(np.linspace(0, 255, 640, dtype=np.uint8), (360, 1))
    Image.fromarray(np.dstack([gradient] * 3)).save(folder / "picture.png")
    Image.new("RGB", (400, 300), (200, 30, 30)).save(folder / "photo.jpg", quality=90)
    Image.new("RGBA", (120, 80), (0, 128, 0, 128)).save(folder / "alpha.webp")
    Image.new("P", (50, 40), 3).save(folder / "anim.gif")
    return folder


# --- sniff and probe ------------------------------------------------------------------------


VIDEOS = [
    # name, content type, width, height, fps, has audio, duration
    ("clip.mp4", "video/mp4", 320, 240, 25.0, True, 1.0),
    ("clip.webm", "video/webm", 256, 144, 30.0, True, 1.0),
    ("silent.mp4", "video/mp4", 320, 240, 24.0, False, 1.0),
    ("mov.mov", "video/quicktime", 320, 240, 10.0, False, 1.0),
    ("clip.mkv", "video/x-matroska", 160, 96, 20.0, True, 1.0),
    ("faststart.mp4", "video/mp4", 320, 240, 25.0, True, 1.0),
]


@pytest.mark.parametrize(
    ("name", "content_type", "width", "height", "fps", "has_audio", "duration"), VIDEOS
)
def test_videos_are_probed(
    samples: Path,
    name: str,
    content_type: str,
    width: int,
    height: int,
    fps: float,
    has_audio: bool,
    duration: float,
) -> None:
    path = samples / name
    assert sniff(path) == content_type
    found = probe(path)
    assert found.kind == "video"
    assert found.content_type == content_type
    assert found.duration_seconds == pytest.approx(duration, abs=0.1)
    assert (found.width, found.height) == (width, height)
    assert found.fps == pytest.approx(fps)
    assert found.has_audio is has_audio


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("tone.wav", "audio/wav"),
        ("tone.flac", "audio/flac"),
        ("tone.mp3", "audio/mpeg"),
        ("tone.ogg", "audio/ogg"),
    ],
)
def test_audio_files_are_probed(samples: Path, name: str, content_type: str) -> None:
    path = samples / name
    assert sniff(path) == content_type
    found = probe(path)
    assert found.duration_seconds == pytest.approx(1.0, abs=0.1)
    assert found == Probe("audio", content_type, found.duration_seconds, None, None, None, True)


def test_an_mp4_with_only_audio_is_audio(samples: Path) -> None:
    path = samples / "voice.m4a"
    assert sniff(path) in ("video/mp4", "audio/mp4")  # the ftyp brands alone cannot tell
    found = probe(path)
    assert (found.kind, found.content_type, found.width, found.has_audio) == (
        "audio",
        "audio/mp4",
        None,
        True,
    )
    assert found.duration_seconds == pytest.approx(1.0, abs=0.1)


def test_an_mp3_without_id3_tag_is_recognised(tmp_path: Path) -> None:
    """8 kHz MP3 frames (MPEG 2.5, header FF E3) that filetype itself does not know."""
    path = tmp_path / "bare.mp3"
    with av.open(str(path), "w", format="mp3", options={"id3v2_version": "0"}) as out:
        stream = out.add_stream("libmp3lame", rate=8000)
        stream.layout = "mono"
        for start in range(0, 8064, 1152):
            tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(start, start + 1152) / 8000)
            frame = av.AudioFrame.from_ndarray(
                tone.astype(np.float32).reshape(1, -1), format="fltp", layout="mono"
            )
            frame.sample_rate, frame.pts = 8000, start
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    assert path.read_bytes()[:2] == b"\xff\xe3"
    assert sniff(path) == "audio/mpeg"
    assert probe(path).kind == "audio"


@pytest.mark.parametrize(
    ("name", "content_type", "size"),
    [
        ("picture.png", "image/png", (640, 360)),
        ("photo.jpg", "image/jpeg", (400, 300)),
        ("alpha.webp", "image/webp", (120, 80)),
        ("anim.gif", "image/gif", (50, 40)),
    ],
)
def test_images_are_probed(
    samples: Path, name: str, content_type: str, size: tuple[int, int]
) -> None:
    path = samples / name
    assert sniff(path) == content_type
    assert probe(path) == Probe("image", content_type, None, size[0], size[1], None, False)


def test_exif_orientation_swaps_the_image_size(tmp_path: Path) -> None:
    path = tmp_path / "portrait.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown rotated a quarter turn
    Image.new("RGB", (300, 200), (10, 10, 10)).save(path, exif=exif)
    found = probe(path)
    assert (found.width, found.height) == (200, 300)
    assert png_size(thumbnail(path, found, width=100)) == (100, 150)


def test_a_video_rotated_by_its_display_matrix_is_portrait(tmp_path: Path) -> None:
    path = tmp_path / "phone.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.set_display_rotation(90)
        for index in range(5):
            frame = av.VideoFrame.from_ndarray(np.zeros((240, 320, 3), np.uint8), format="rgb24")
            frame.pts = index
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    found = probe(path)
    assert (found.width, found.height) == (240, 320)
    assert png_size(thumbnail(path, found, width=120)) == (120, 160)


def test_allowed_lists_the_kinds() -> None:
    assert set(ALLOWED.values()) == {"video", "audio", "image"}
    for mime in ("video/mp4", "audio/wav", "audio/x-wav", "audio/flac", "image/gif"):
        assert mime in ALLOWED


# --- refusals -------------------------------------------------------------------------------


def test_html_named_mp4_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.mp4"
    path.write_text("<!DOCTYPE html>\n<html><body><video src='x.mp4'></video></body></html>")
    with pytest.raises(UnsupportedMedia, match="HTML"):
        sniff(path)
    with pytest.raises(UnsupportedMedia, match="HTML"):
        probe(path)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", "application/pdf"),
        (b"PK\x03\x04" + bytes(60), "application/zip"),
        (b"", "empty file"),
        (b'{"not": "media"}', "JSON"),
        (bytes(range(1, 200)), "binary data"),
    ],
    ids=["pdf", "zip", "empty", "json", "binary"],
)
def test_other_bytes_are_refused_saying_what_they_look_like(
    tmp_path: Path, data: bytes, message: str
) -> None:
    path = tmp_path / "upload.webm"
    path.write_bytes(data)
    with pytest.raises(UnsupportedMedia, match=message):
        probe(path)


def test_png_header_then_garbage_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "broken.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)
    assert sniff(path) == "image/png"  # it does start like a PNG
    with pytest.raises(UnsupportedMedia, match="do not decode"):
        probe(path)


def test_png_with_corrupt_pixel_data_is_refused(samples: Path, tmp_path: Path) -> None:
    data = bytearray((samples / "picture.png").read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)
    path = tmp_path / "corrupt.png"
    path.write_bytes(bytes(data))
    with pytest.raises(UnsupportedMedia):
        probe(path)


def test_truncated_jpeg_is_refused(samples: Path, tmp_path: Path) -> None:
    data = (samples / "photo.jpg").read_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UnsupportedMedia):
        probe(path)


@pytest.mark.parametrize("name", ["clip.mp4", "faststart.mp4", "clip.webm", "clip.mkv"])
def test_truncated_videos_are_refused(samples: Path, tmp_path: Path, name: str) -> None:
    """Cut at 60 %: the moov box (at the end) is lost, or the media data is (faststart)."""
    data = (samples / name).read_bytes()
    path = tmp_path / name
    path.write_bytes(data[: len(data) * 6 // 10])
    assert sniff(path) == sniff(samples / name)
    with pytest.raises(UnsupportedMedia, match="truncated"):
        probe(path)


def test_mp4_header_then_garbage_is_refused(samples: Path, tmp_path: Path) -> None:
    data = (samples / "clip.mp4").read_bytes()
    path = tmp_path / "garbage.mp4"
    path.write_bytes(data[:32] + bytes(range(256)) * 64)
    with pytest.raises(UnsupportedMedia):
        probe(path)


def test_wav_header_then_nothing_is_refused(samples: Path, tmp_path: Path) -> None:
    path = tmp_path / "header-only.wav"
    path.write_bytes((samples / "tone.wav").read_bytes()[:44])
    with pytest.raises(UnsupportedMedia):
        probe(path)


# --- thumbnails -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "width", "size"),
    [
        ("picture.png", 320, (320, 180)),
        ("photo.jpg", 100, (100, 75)),
        ("alpha.webp", 240, (240, 160)),
        ("anim.gif", 320, (320, 256)),
        ("clip.mp4", 320, (320, 240)),
        ("clip.webm", 128, (128, 72)),
        ("clip.mkv", 200, (200, 120)),
        ("tone.wav", 320, (320, 80)),
        ("tone.mp3", 160, (160, 40)),
        ("voice.m4a", 200, (200, 50)),
    ],
)
def test_thumbnails_are_pngs_of_the_requested_width(
    samples: Path, name: str, width: int, size: tuple[int, int]
) -> None:
    path = samples / name
    assert png_size(thumbnail(path, probe(path), width=width)) == size


def test_the_video_thumbnail_is_the_frame_at_a_tenth(tmp_path: Path) -> None:
    """Frame i is grey 40 + 5 i; at 10 % of 3 s (0.3 s at 10 fps) it is frame 3: grey 55."""
    path = make_video(
        tmp_path / "ramp.mp4",
        container="mp4",
        video_codec="libx264",
        audio_codec=None,
        seconds=3.0,
        fps=10,
        grey=lambda i: 40 + 5 * i,
    )
    data = thumbnail(path, probe(path), width=64)
    with Image.open(io.BytesIO(data)) as image:
        level = float(np.asarray(image.convert("L")).mean())
    assert level == pytest.approx(55, abs=2.5)  # frames 2 and 4 are 50 and 60


def test_the_waveform_follows_the_loudness(tmp_path: Path) -> None:
    """Silence for the first half, a loud tone for the second: only the right half is drawn."""
    rate = 16000
    signal = np.zeros(rate * 2, dtype=np.float32)
    signal[rate:] = 0.8 * np.sin(2 * np.pi * 300 * np.arange(rate) / rate)
    path = tmp_path / "half.wav"
    soundfile.write(path, signal, rate)
    data = thumbnail(path, probe(path), width=200)
    with Image.open(io.BytesIO(data)) as image:
        pixels = np.asarray(image.convert("RGB"))
    drawn = (pixels == WAVE_COLOUR).all(axis=2).sum(axis=0)  # wave pixels per column
    assert pixels.shape == (50, 200, 3)
    assert drawn[:90].max() <= 2  # silence: a hairline
    assert drawn[110:].min() >= 40  # the tone fills (nearly) the whole height
