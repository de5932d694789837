"""Video export benchmark: prints figures, asserts nothing.

A storyboard like the one ``from-sequence`` builds: stills of 5 s generated with Pillow, 0.5 s
dissolves, Ken Burns on every still, one audio track as long as the video, exported to MP4 at
draft quality (24 fps).

1. One process: render time / video duration (aim <= 0.5), CPU seconds per output frame (all
   threads of the process, the encoder's included) and peak RSS, in a child process.
2. The same export twice at once in 2 processes: total throughput relative to one process.

    .venv/bin/python benchmarks/video_export_bench.py            (60 s at 1920x1080)
    .venv/bin/python benchmarks/video_export_bench.py --quick    (10 s at 640x360)
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile
from PIL import Image, ImageDraw, ImageFilter

if importlib.util.find_spec("video_editor") is None:  # the service is not installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "services/video_editor/src"))

from video_editor.render import (
    KenBurns,
    Rect,
    RenderClip,
    RenderSpec,
    RenderTrack,
    Transition,
    render,
)

SHOT = 5.0
DISSOLVE = 0.5
FPS = 24
SAMPLE_RATE = 48000
MOVES = (
    (Rect(0, 0, 1, 1), Rect(0.1, 0.1, 0.8, 0.8)),  # push in
    (Rect(0.1, 0.1, 0.8, 0.8), Rect(0, 0, 1, 1)),  # pull out
    (Rect(0, 0.05, 0.85, 0.85), Rect(0.15, 0.1, 0.85, 0.85)),  # pan right
    (Rect(0.15, 0.1, 0.85, 0.85), Rect(0, 0.05, 0.85, 0.85)),  # pan left
)


def make_media(folder: Path, seconds: float, size: tuple[int, int]) -> tuple[list[Path], Path]:
    """Photo-like stills (shapes, gradient, blur, grain) and a stereo chord."""
    rng = np.random.default_rng(7)
    stills = []
    w, h = size
    for i in range(round(seconds / SHOT)):
        top, bottom = rng.integers(0, 255, 3), rng.integers(0, 255, 3)
        ramp = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
        sky = (top * (1 - ramp) + bottom * ramp) * np.ones((1, w, 1), np.float32)
        img = Image.fromarray(sky.astype(np.uint8))
        draw = ImageDraw.Draw(img)
        for _ in range(25):
            x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
            r = int(rng.integers(h // 20, h // 4))
            fill = tuple(int(c) for c in rng.integers(0, 255, 3))
            draw.ellipse((x - r, y - r, x + r, y + r), fill=fill)
        img = img.filter(ImageFilter.GaussianBlur(2))
        grain = rng.normal(0, 6, (h, w, 1)).astype(np.float32)
        pixels = np.clip(np.asarray(img, np.float32) + grain, 0, 255).astype(np.uint8)
        path = folder / f"still_{i:02d}.png"
        Image.fromarray(pixels).save(path, compress_level=1)
        stills.append(path)
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    chord = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6)) / 6
    swell = 0.6 + 0.4 * np.sin(2 * np.pi * t / 8)
    music = folder / "music.wav"
    soundfile.write(music, np.stack([chord * swell, chord * (1 - swell / 2)], axis=1), SAMPLE_RATE)
    return stills, music


def storyboard(stills: list[Path], music: Path, seconds: float) -> list[RenderTrack]:
    """Each still covers [5i, 5i + 5); from the second on it starts 0.5 s early, dissolving."""
    clips = []
    for i, path in enumerate(stills):
        start = max(0.0, i * SHOT - DISSOLVE)
        from_rect, to_rect = MOVES[i % len(MOVES)]
        clips.append(
            RenderClip(
                "image",
                start,
                (i + 1) * SHOT - start,
                path,
                transition_in=Transition("dissolve", DISSOLVE) if i else None,
                ken_burns=KenBurns(from_rect, to_rect),
            )
        )
    music_clip = RenderClip("audio", 0.0, seconds, music, fade_in=1.0, fade_out=2.0)
    return [RenderTrack("video", 0, tuple(clips)), RenderTrack("audio", 1, (music_clip,))]


def child(folder: Path, seconds: float, width: int, height: int, quality: str) -> None:
    """Render once and print the figures as JSON (run in its own process)."""
    stills = sorted(folder.glob("still_*.png"))
    tracks = storyboard(stills, folder / "music.wav", seconds)
    spec = RenderSpec(width, height, FPS, "mp4", quality)
    with tempfile.TemporaryDirectory() as out_dir:
        out = Path(out_dir) / "export.mp4"
        began, cpu = time.perf_counter(), time.process_time()
        info = render(spec, tracks, out)
        wall, used = time.perf_counter() - began, time.process_time() - cpu
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "wall": wall,
                "cpu": used,
                "frames": info.frames,
                "rss_mb": rss,
                "size_mb": info.size_bytes / 1e6,
            }
        )
    )


def run_children(count: int, args: list[str]) -> tuple[float, list[dict[str, float]]]:
    began = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--child", *args], stdout=subprocess.PIPE, text=True
        )
        for _ in range(count)
    ]
    outputs = [p.communicate()[0] for p in procs]
    wall = time.perf_counter() - began
    if any(p.returncode for p in procs):
        raise SystemExit("a child render failed")
    return wall, [json.loads(o.strip().splitlines()[-1]) for o in outputs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 s at 640x360")
    parser.add_argument("--quality", default="draft", choices=["draft", "standard", "high"])
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    ns = parser.parse_args()
    if ns.child:
        folder, seconds, width, height, quality = ns.child
        child(Path(folder), float(seconds), int(width), int(height), quality)
        return
    seconds, (width, height) = (10.0, (640, 360)) if ns.quick else (60.0, (1920, 1080))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        began = time.perf_counter()
        make_media(folder, seconds, (width, height))
        print(
            f"media: {round(seconds / SHOT)} stills {width}x{height} + {seconds:.0f} s of audio "
            f"generated in {time.perf_counter() - began:.1f} s"
        )
        args = [str(folder), str(seconds), str(width), str(height), ns.quality]
        _, (one,) = run_children(1, args)
        frames = int(one["frames"])
        print(
            f"1 process : {seconds:.0f} s of {width}x{height} @ {FPS} fps ({frames} frames), "
            f"mp4 {ns.quality}: {one['wall']:.1f} s = {one['wall'] / seconds:.3f} x the video "
            f"duration; CPU {one['cpu']:.1f} s = {one['cpu'] / frames * 1000:.1f} ms/frame; "
            f"peak RSS {one['rss_mb']:.0f} MB; file {one['size_mb']:.1f} MB"
        )
        wall, both = run_children(2, args)
        ratio = (2 * seconds / wall) / (seconds / one["wall"])
        cpu = sum(r["cpu"] for r in both)
        print(
            f"2 processes at once: {wall:.1f} s wall for both ({wall / seconds:.3f} x the "
            f"duration each); throughput {ratio:.2f} x one process; CPU "
            f"{cpu / (2 * frames) * 1000:.1f} ms/frame; peak RSS "
            f"{max(r['rss_mb'] for r in both):.0f} MB per process"
        )


if __name__ == "__main__":
    main()
