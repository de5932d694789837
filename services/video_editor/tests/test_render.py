"""The export renderer, end to end: render small files, decode them with PyAV, measure."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
import pytest
import soundfile
from PIL import Image

from video_editor.render import (
    PRESETS,
    QUALITY,
    KenBurns,
    Rect,
    RenderClip,
    RenderSpec,
    RenderTrack,
    TextStyle,
    Transition,
    timeline_end,
)
from video_editor.render.encode import render

W, H, FPS, SR = 160, 90, 12, 48000
RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)
TONE = 0.5  # sine amplitude: RMS = TONE / sqrt(2)

Frames = list[npt.NDArray[np.uint8]]


@dataclass
class Media:
    red: Path
    green: Path
    blue: Path
    grey: Path
    wide_yellow: Path
    gradient: Path
    sine: Path
    source_video: Path


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Media:
    d = tmp_path_factory.mktemp("media")
    paths = {}
    for name, colour, size in (
        ("red", RED, (320, 180)),
        ("green", GREEN, (320, 180)),
        ("blue", BLUE, (320, 180)),
        ("grey", (128, 128, 128), (320, 180)),
        ("wide_yellow", (255, 255, 0), (320, 180)),
    ):
        paths[name] = d / f"{name}.png"
        Image.new("RGB", size, colour).save(paths[name])
    ramp = np.tile(np.linspace(0, 255, 640, dtype=np.float32), (360, 1))
    paths["gradient"] = d / "gradient.png"
    Image.fromarray(np.repeat(ramp[..., None], 3, axis=2).astype(np.uint8)).save(paths["gradient"])
    t = np.arange(SR * 6) / SR
    paths["sine"] = d / "sine.wav"
    soundfile.write(paths["sine"], TONE * np.sin(2 * np.pi * 1000 * t), SR)
    paths["source_video"] = d / "source.mp4"
    _make_source_video(paths["source_video"])
    return Media(**paths)


def _source_level(index: int) -> int:
    """Grey level of frame ``index`` of the source video."""
    return 20 + 6 * index


def _make_source_video(path: Path) -> None:
    """3 s at 12 fps, each frame a different grey level, with a 440 Hz tone."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = 160, 90, "yuv420p"
        video.options = {"crf": "8", "preset": "ultrafast"}
        audio = container.add_stream("aac", rate=SR, layout="stereo")
        for i in range(36):
            frame = av.VideoFrame.from_ndarray(
                np.full((90, 160, 3), _source_level(i), np.uint8), format="rgb24"
            )
            frame.pts = i
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        t = np.arange(SR * 3) / SR
        tone = (TONE * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for start in range(0, tone.size, 4800):
            chunk = tone[start : start + 4800]
            stereo = np.repeat(chunk[:, None], 2, axis=1).reshape(1, -1)
            aframe = av.AudioFrame.from_ndarray(stereo, format="flt", layout="stereo")
            aframe.sample_rate, aframe.pts, aframe.time_base = SR, start, Fraction(1, SR)
            container.mux(audio.encode(aframe))
        container.mux(audio.encode(None))


def decode_frames(path: Path) -> Frames:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def decode_audio(path: Path) -> tuple[npt.NDArray[np.float32], float]:
    """All samples (channels, n) and the time of the first one."""
    with av.open(str(path)) as container:
        frames = list(container.decode(audio=0))
    first = frames[0].time or 0.0
    return np.concatenate([f.to_ndarray() for f in frames], axis=1), first


def rms_db(samples: npt.NDArray[np.float32]) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))))


def mean_colour(frame: npt.NDArray[np.uint8]) -> npt.NDArray[np.float64]:
    return frame.reshape(-1, 3).mean(axis=0)


def storyboard(
    media: Media, *, transition: str = "dissolve", volume: float = 1.0
) -> list[RenderTrack]:
    """Red, green, blue stills of 2 s overlapping by 0.5 s, over a 1 kHz tone."""
    tr = Transition(transition, 0.5)
    video = RenderTrack(
        "video",
        0,
        (
            RenderClip("image", 0.0, 2.0, media.red),
            RenderClip("image", 1.5, 2.0, media.green, transition_in=tr),
            RenderClip("image", 3.0, 2.0, media.blue, transition_in=tr),
        ),
    )
    sound = RenderTrack(
        "audio", 1, (RenderClip("audio", 0.0, 5.0, media.sine, volume=0.8),), volume=volume
    )
    return [video, sound]


def test_storyboard_mp4(media: Media, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    reported: list[float] = []
    tracks = storyboard(media, volume=0.5)
    assert timeline_end(tracks) == pytest.approx(5.0)

    info = render(RenderSpec(W, H, FPS, "mp4", "standard"), tracks, out, progress=reported.append)

    assert (info.frames, info.width, info.height, info.fps) == (60, W, H, 12.0)
    assert (info.video_codec, info.audio_codec) == ("h264", "aac")
    assert info.duration_seconds == pytest.approx(5.0)
    assert info.size_bytes == out.stat().st_size > 0
    with av.open(str(out)) as container:
        vstream, astream = container.streams.video[0], container.streams.audio[0]
        assert (vstream.codec_context.name, astream.codec_context.name) == ("h264", "aac")
        assert (vstream.width, vstream.height) == (W, H)
        assert vstream.average_rate == 12
        assert container.duration is not None
        assert abs(container.duration / 1_000_000 - 5.0) <= 1 / FPS
    frames = decode_frames(out)
    assert len(frames) == 60
    for t, colour in ((0.75, RED), (2.5, GREEN), (4.25, BLUE)):  # middles of the solo parts
        assert np.abs(mean_colour(frames[round(t * FPS)]) - colour).max() <= 10, t
    for t, a, b in ((1.75, RED, GREEN), (3.25, GREEN, BLUE)):  # middles of the dissolves
        expected = (np.array(a) + np.array(b)) / 2
        assert np.abs(mean_colour(frames[round(t * FPS)]) - expected).max() <= 12, t
    third = np.array(RED) * 2 / 3 + np.array(GREEN) / 3  # 1/3 into the first dissolve
    assert np.abs(mean_colour(frames[20]) - third).max() <= 12
    samples, first = decode_audio(out)
    i0, i1 = round((1.0 - first) * SR), round((4.0 - first) * SR)
    expected_db = 20 * np.log10(TONE / np.sqrt(2) * 0.8 * 0.5)
    for channel in samples:
        assert abs(rms_db(channel[i0:i1]) - expected_db) <= 1.5
    data = out.read_bytes()
    assert 0 < data.find(b"moov") < data.find(b"mdat")  # +faststart
    assert reported[-1] == 1.0
    assert all(b > a for a, b in itertools.pairwise(reported))
    assert max(b - a for a, b in zip([0.0, *reported], reported, strict=False)) <= 0.021


def test_audio_is_placed_at_clip_start_and_muted_tracks_are_silent(
    media: Media, tmp_path: Path
) -> None:
    out = tmp_path / "placed.mp4"
    tracks = [
        RenderTrack("video", 0, (RenderClip("image", 0.0, 3.0, media.grey),)),
        RenderTrack("audio", 1, (RenderClip("audio", 1.0, 1.5, media.sine, in_point=2.0),)),
        RenderTrack("audio", 2, (RenderClip("audio", 0.0, 3.0, media.sine),), muted=True),
    ]
    render(RenderSpec(W, H, FPS, "mp4", "draft"), tracks, out)
    samples, first = decode_audio(out)

    def at(t: float) -> int:
        return round((t - first) * SR)

    assert np.abs(samples[:, : at(0.99)]).max() < 1e-3  # before the clip: silence
    assert np.abs(samples[:, at(2.51) : at(3.0)]).max() < 1e-3  # after it
    onset = int(np.argmax(np.abs(samples[0]) > 0.05))
    assert abs(onset - at(1.0)) <= 0.005 * SR  # starts within 5 ms of 1.0 s
    assert abs(rms_db(samples[0, at(1.1) : at(2.4)]) - 20 * np.log10(TONE / np.sqrt(2))) <= 1.5


def test_audio_fades_are_linear_ramps(media: Media, tmp_path: Path) -> None:
    out = tmp_path / "fades.mp4"
    tracks = [
        RenderTrack(
            "audio", 0, (RenderClip("audio", 0.0, 2.0, media.sine, fade_in=0.5, fade_out=0.5),)
        )
    ]
    render(RenderSpec(64, 36, FPS, "mp4", "draft"), tracks, out)
    samples, first = decode_audio(out)

    def level(t0: float, t1: float) -> float:
        return rms_db(samples[0, round((t0 - first) * SR) : round((t1 - first) * SR)])

    full = 20 * np.log10(TONE / np.sqrt(2))
    ramp = full + 20 * np.log10(1 / np.sqrt(3))  # RMS of a linear ramp: 1/sqrt(3)
    assert abs(level(0.75, 1.25) - full) <= 1.0
    assert abs(level(0.0, 0.5) - ramp) <= 1.0
    assert abs(level(1.5, 2.0) - ramp) <= 1.0
    assert level(0.0, 0.1) < full - 12  # the very start is nearly silent


@pytest.mark.parametrize(
    ("fmt", "fps", "codecs", "tolerance"),
    [("webm", 12, ("vp9", "opus"), 0), ("gif", 10, ("gif", None), 1)],
)
def test_webm_and_gif_decode(
    media: Media,
    tmp_path: Path,
    fmt: str,
    fps: int,
    codecs: tuple[str, str | None],
    tolerance: int,
) -> None:
    out = tmp_path / f"out.{fmt}"
    spec = RenderSpec(W, H, fps, fmt, "standard", end=2.0)
    info = render(spec, storyboard(media), out)
    assert (info.video_codec, info.audio_codec) == codecs
    with av.open(str(out)) as container:
        assert container.streams.video[0].codec_context.name == codecs[0]
        audio = [s.codec_context.name for s in container.streams.audio]
        assert audio == ([codecs[1]] if codecs[1] else [])
    frames = decode_frames(out)
    assert abs(len(frames) - 2 * fps) <= tolerance
    assert all(f.shape == (H, W, 3) for f in frames)
    assert np.abs(mean_colour(frames[len(frames) // 4]) - RED).max() <= 12


def test_gif_frame_rate_is_capped_by_quality(media: Media, tmp_path: Path) -> None:
    spec = RenderSpec(W, H, 24, "gif", "draft", end=1.0)
    info = render(spec, storyboard(media), tmp_path / "capped.gif")
    assert info.fps == float(QUALITY["gif"]["draft"]["max_fps"]) == 10
    assert abs(len(decode_frames(tmp_path / "capped.gif")) - 10) <= 1


@pytest.mark.parametrize("fit", ["letterbox", "cover"])
def test_fit_of_a_wide_still_in_a_tall_frame(media: Media, tmp_path: Path, fit: str) -> None:
    out = tmp_path / f"{fit}.mp4"
    tracks = [RenderTrack("video", 0, (RenderClip("image", 0.0, 1.0, media.wide_yellow),))]
    render(RenderSpec(90, 160, FPS, "mp4", "standard", fit=fit), tracks, out)
    frame = decode_frames(out)[6]
    assert frame.shape == (160, 90, 3)
    top, middle, bottom = frame[:40], frame[75:85], frame[-40:]
    assert np.abs(mean_colour(middle) - (255, 255, 0)).max() <= 10
    if fit == "letterbox":  # 90 wide → a 51 px high picture: bars of ~54 px
        assert top.max() <= 20
        assert bottom.max() <= 20
    else:
        assert np.abs(mean_colour(top) - (255, 255, 0)).max() <= 10
        assert np.abs(mean_colour(bottom) - (255, 255, 0)).max() <= 10


@pytest.mark.parametrize("quality", ["draft", "standard"])  # whole-pixel and sub-pixel crops
def test_ken_burns_pans_towards_the_bright_side(media: Media, tmp_path: Path, quality: str) -> None:
    out = tmp_path / "kb.mp4"
    kb = KenBurns(Rect(0, 0, 1, 1), Rect(0.5, 0, 0.5, 1))
    tracks = [
        RenderTrack("video", 0, (RenderClip("image", 0.0, 2.0, media.gradient, ken_burns=kb),))
    ]
    render(RenderSpec(W, H, FPS, "mp4", quality), tracks, out)
    brightness = [float(f.mean()) for f in decode_frames(out)]
    assert len(brightness) == 24
    assert brightness[0] == pytest.approx(127.5, abs=8)  # the whole ramp
    assert brightness[-1] > 180  # nearly only the right half (mean ~191 at the end)
    assert all(b >= a - 1 for a, b in itertools.pairwise(brightness))


def test_text_is_drawn_over_the_picture(media: Media, tmp_path: Path) -> None:
    base = [RenderTrack("video", 0, (RenderClip("image", 0.0, 1.0, media.grey),))]
    text = RenderTrack(
        "text",
        5,
        (RenderClip("text", 0.0, 1.0, text="Hello", style=TextStyle(size=0.2, position="bottom")),),
    )
    spec = RenderSpec(W, H, FPS, "mp4", "standard")
    render(spec, base, tmp_path / "plain.mp4")
    render(spec, [*base, text], tmp_path / "text.mp4")
    plain, titled = (
        decode_frames(tmp_path / "plain.mp4")[6],
        decode_frames(tmp_path / "text.mp4")[6],
    )
    diff = np.abs(plain.astype(int) - titled.astype(int))
    assert diff[: H // 3].max() <= 12  # the top is untouched
    assert caption_pixels(plain) == (0, 0)
    box, letters = caption_pixels(titled)
    assert box >= 300  # the 60 % black box over the 128 grey (~51)
    assert letters >= 30  # white letters


def caption_pixels(frame: npt.NDArray[np.uint8]) -> tuple[int, int]:
    """Dark (box) and white (letter) pixels in the bottom half."""
    bottom = frame[H // 2 :].astype(int)
    return int((bottom.mean(axis=2) < 80).sum()), int((bottom.min(axis=2) > 200).sum())


def test_fade_black_passes_through_black(media: Media, tmp_path: Path) -> None:
    out = tmp_path / "fade.mp4"
    tracks = [
        RenderTrack(
            "video",
            0,
            (
                RenderClip("image", 0.0, 2.0, media.red),
                RenderClip(
                    "image", 1.0, 2.0, media.green, transition_in=Transition("fade_black", 1.0)
                ),
            ),
        )
    ]
    render(RenderSpec(W, H, FPS, "mp4", "standard"), tracks, out)
    frames = decode_frames(out)
    assert frames[18].max() <= 20  # t = 1.5: the middle of the transition
    assert np.abs(mean_colour(frames[15]) - (128, 0, 0)).max() <= 12  # t = 1.25: half-faded red
    assert np.abs(mean_colour(frames[21]) - (0, 128, 0)).max() <= 12  # t = 1.75: half-up green


@pytest.mark.parametrize(
    "kind",
    [
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
    ],
)
def test_every_transition_blends_only_during_its_span(
    media: Media, tmp_path: Path, kind: str
) -> None:
    out = tmp_path / "t.mp4"
    tracks = [
        RenderTrack(
            "video",
            0,
            (
                RenderClip("image", 0.0, 1.0, media.red),
                RenderClip("image", 0.5, 1.0, media.blue, transition_in=Transition(kind, 0.5)),
            ),
        )
    ]
    render(RenderSpec(64, 36, FPS, "mp4", "draft"), tracks, out)
    frames = decode_frames(out)
    assert np.abs(mean_colour(frames[3]) - RED).max() <= 12  # before
    assert np.abs(mean_colour(frames[12]) - BLUE).max() <= 12  # after
    middle = mean_colour(frames[9])  # p = 0.5
    if kind == "cut":
        assert np.abs(middle - BLUE).max() <= 12
    else:
        assert np.abs(middle - RED).max() > 40
        assert np.abs(middle - BLUE).max() > 40
    early = mean_colour(frames[7])  # p = 1/6: still mostly the outgoing red
    if kind not in ("cut", "fade_black", "fade_white"):
        assert np.abs(early - RED).max() < np.abs(early - BLUE).max()
    if kind in ("wipe_left", "slide_left"):  # the blue comes in from the right
        assert frames[9][:, -5:, 2].mean() > 200
        assert frames[9][:, :5, 0].mean() > 200
    if kind in ("wipe_right", "slide_right"):
        assert frames[9][:, :5, 2].mean() > 200
        assert frames[9][:, -5:, 0].mean() > 200


def test_transition_with_nothing_before_comes_from_black(media: Media, tmp_path: Path) -> None:
    out = tmp_path / "in.mp4"
    tracks = [
        RenderTrack(
            "video",
            0,
            (
                RenderClip(
                    "image", 0.0, 1.0, media.green, transition_in=Transition("dissolve", 0.5)
                ),
            ),
        )
    ]
    render(RenderSpec(W, H, FPS, "mp4", "standard"), tracks, out)
    frames = decode_frames(out)
    assert frames[0].max() <= 12
    assert np.abs(mean_colour(frames[3]) - (0, 128, 0)).max() <= 12


def test_opacity_and_fades_blend_over_what_lies_beneath(media: Media, tmp_path: Path) -> None:
    out = tmp_path / "layers.mp4"
    tracks = [
        RenderTrack("overlay", 2, (RenderClip("image", 0.0, 2.0, media.blue, opacity=0.5),)),
        RenderTrack("video", 1, (RenderClip("image", 0.0, 2.0, media.red, fade_in=1.0),)),
    ]
    render(RenderSpec(W, H, FPS, "mp4", "standard"), tracks, out)
    frames = decode_frames(out)
    assert np.abs(mean_colour(frames[0]) - (0, 0, 128)).max() <= 12  # red faded out, blue at 50 %
    assert np.abs(mean_colour(frames[6]) - (64, 0, 128)).max() <= 12  # red at 50 % under it
    assert np.abs(mean_colour(frames[18]) - (128, 0, 128)).max() <= 12


class Cancelled(Exception):
    pass


def test_cancel_propagates_and_removes_the_output(media: Media, tmp_path: Path) -> None:
    out = tmp_path / "cancelled.mp4"
    calls = 0
    reported: list[float] = []

    def check() -> None:
        nonlocal calls
        calls += 1
        if calls > 20:
            raise Cancelled

    with pytest.raises(Cancelled):
        render(
            RenderSpec(W, H, FPS, "mp4", "draft"),
            storyboard(media),
            out,
            check=check,
            progress=reported.append,
        )
    assert not out.exists()
    assert calls == 21  # once before every frame: it stopped at the 21st
    assert reported
    assert max(reported) < 1


def test_range_renders_only_that_part(media: Media, tmp_path: Path) -> None:
    out = tmp_path / "range.mp4"
    info = render(
        RenderSpec(W, H, FPS, "mp4", "standard", start=1.0, end=3.0), storyboard(media), out
    )
    assert info.duration_seconds == pytest.approx(2.0)
    assert info.frames == 24
    frames = decode_frames(out)
    assert len(frames) == 24
    assert np.abs(mean_colour(frames[0]) - RED).max() <= 10  # timeline 1.0 s
    assert np.abs(mean_colour(frames[18]) - GREEN).max() <= 10  # timeline 2.5 s
    with av.open(str(out)) as container:
        assert container.duration is not None
        assert abs(container.duration / 1_000_000 - 2.0) <= 1 / FPS


def test_video_clip_plays_from_its_in_point(media: Media, tmp_path: Path) -> None:
    out = tmp_path / "video.mp4"
    tracks = [
        RenderTrack(
            "video",
            0,
            (RenderClip("video", 0.0, 2.0, media.source_video, in_point=0.5, volume=0.5),),
        )
    ]
    render(RenderSpec(W, H, FPS, "mp4", "high"), tracks, out)
    frames = decode_frames(out)
    assert len(frames) == 24
    levels = [float(f.mean()) for f in frames]
    expected = [_source_level(6 + i) for i in range(24)]  # in_point 0.5 s = source frame 6
    assert np.abs(np.array(levels) - expected).max() <= 4, levels
    samples, first = decode_audio(out)  # the clip's own sound, at its volume
    segment = samples[0, round((0.2 - first) * SR) : round((1.8 - first) * SR)]
    assert abs(rms_db(segment) - 20 * np.log10(TONE / np.sqrt(2) * 0.5)) <= 1.5


def test_silent_timeline_still_gets_an_audio_track(media: Media, tmp_path: Path) -> None:
    out = tmp_path / "silent.mp4"
    tracks = [RenderTrack("video", 0, (RenderClip("image", 0.0, 1.0, media.grey),))]
    info = render(RenderSpec(161, 91, FPS, "mp4", "draft"), tracks, out)
    assert (info.width, info.height) == (160, 90)  # yuv420p: odd sides round down
    samples, _ = decode_audio(out)
    assert np.abs(samples).max() < 1e-4


def test_invalid_specs_are_refused(media: Media, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="empty"):
        render(RenderSpec(W, H, FPS, "mp4", "draft"), [], tmp_path / "x.mp4")
    with pytest.raises(ValueError, match="format"):
        render(RenderSpec(W, H, FPS, "avi", "draft"), storyboard(media), tmp_path / "x.avi")
    assert PRESETS["youtube_1080p"] == (1920, 1080)
    assert PRESETS["custom"] is None
