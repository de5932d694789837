"""Production benchmark: prints figures, asserts nothing.

One production (story -> film) of a built-in three-paragraph story, preset twitter (1280x720),
quality draft, through the gateway, on a stack with one replica and one worker per service
(the llm service's mock provider plans the scenario; keyframes, voices, music and the export
are rendered for real on this machine):

1. wall time from POST /api/projects/{p}/productions to the stream's ``complete`` frame,
2. each step's seconds (requested -> answered, from the production's steps) and the time
   each step kind spans,
3. the film's duration and the ratio wall time / film duration,
4. the downloaded film decoded with PyAV: frames, rate, size, audio.

    .venv/bin/python benchmarks/production_bench.py
    python3 storycore.py bench production_bench
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import av
import httpx
from harness import new_user, stack

from storycore_devstack.film import SSEParser, failure_message, parse_sse

STORY = """\
The Last Lamp of Kerros

On the island of Kerros, the old keeper Maren climbs the lighthouse stairs every evening,
counting the steps aloud as her father did. Tonight the radio crackles with a storm warning,
and far out beyond the reef a small fishing boat is still making for home.

The storm breaks before midnight. Rain hammers the glass, the wind tears a shutter loose, and
the great lamp flickers and dies. Maren climbs into the lantern room with a hand crank and a
tin of oil, working by the light of the lightning while the boat's engine coughs in the dark.

At last the lamp flares back to life and its beam sweeps across the waves. The fishing boat
turns away from the rocks and into the harbour. At dawn the skipper's daughter climbs the hill
with bread and coffee, and Maren, too tired to count, sits with her on the top step.
"""
TERMINAL = ("completed", "failed", "cancelled")


def follow(client: httpx.Client, production: dict[str, Any], timeout: float) -> None:
    """Read the stream until its ``complete`` frame (reconnecting after the last id); a stream
    that ends without one is checked against the job (the production may have ended)."""
    deadline = time.monotonic() + timeout
    parser = SSEParser()
    while time.monotonic() < deadline:
        headers = {"Accept": "text/event-stream"}
        if parser.last_id is not None:
            headers["Last-Event-ID"] = parser.last_id
        parser.reset()
        try:
            with client.stream(
                "GET", production["stream_url"], headers=headers, timeout=60
            ) as answer:
                for event in parse_sse(answer.iter_lines(), parser):
                    if event.event in ("complete", "error"):
                        return
        except httpx.TransportError as exc:
            print(f"(stream dropped: {exc!r}; reconnecting)")
        if client.get(production["job_url"]).json()["status"] in TERMINAL:
            return
        time.sleep(1.0)
    raise TimeoutError(f"production {production['id']} unfinished after {timeout:.0f} s")


def span(steps: list[dict[str, Any]], kind: str) -> float | None:
    """From the kind's first request to its last answer (its steps run side by side)."""
    chosen = [s for s in steps if s["kind"] == kind and s["finished_at"]]
    if not chosen:
        return None
    began = min(datetime.fromisoformat(s["requested_at"]) for s in chosen)
    ended = max(datetime.fromisoformat(s["finished_at"]) for s in chosen)
    return (ended - began).total_seconds()


def print_steps(steps: list[dict[str, Any]]) -> None:
    print(f"{'step':<16} {'kind':<11} {'status':<10} {'seconds':>8}")
    for step in steps:
        seconds = "-" if step["seconds"] is None else f"{step['seconds']:8.2f}"
        print(f"{step['key']:<16} {step['kind']:<11} {step['status']:<10} {seconds:>8}")
    kinds = dict.fromkeys(s["kind"] for s in steps)
    spans = [f"{kind} {value:.2f} s" for kind in kinds if (value := span(steps, kind)) is not None]
    print("span per kind (first request -> last answer): " + ", ".join(spans))


def decode(path: Path) -> str:
    """The film as PyAV reads it: every video frame decoded and counted."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        rate = video.average_rate
        size = f"{video.codec_context.width}x{video.codec_context.height}"
        codec = video.codec_context.name
        audio = [f"{s.codec_context.name} {s.rate} Hz" for s in container.streams.audio]
        began = time.perf_counter()
        frames = sum(1 for _ in container.decode(video))
        seconds = time.perf_counter() - began
    return (
        f"{frames} frames of {size} {codec} at {float(rate or 0):.2f} fps "
        f"(decoded in {seconds:.2f} s), audio: {', '.join(audio) or 'none'}"
    )


def run(args: argparse.Namespace) -> int:
    with stack() as running, httpx.Client(base_url=running.gateway_url, timeout=60) as client:
        print(f"machine: {os.cpu_count()} cores; stack started in {running.started_in:.1f} s")
        client.headers.update(new_user(running.gateway_url))
        project = client.post("/api/projects", json={"name": "production bench"}).json()["id"]
        body = {
            "story": STORY,
            "preset": "twitter",
            "quality": "draft",
            "shots_per_scene": args.shots_per_scene,
        }
        began = time.perf_counter()
        answer = client.post(f"/api/projects/{project}/productions", json=body)
        answer.raise_for_status()
        production = answer.json()
        follow(client, production, args.timeout)
        wall = time.perf_counter() - began
        production = client.get(answer.headers["location"]).json()
        print(f"production {production['id']}: {production['status']} in {wall:.2f} s (wall)")
        print_steps(production["steps"])
        if production["status"] != "completed":
            print(failure_message(production))
            return 1
        result = production["result"]
        duration = result["duration_seconds"] or 0.0
        ratio = f"{wall / duration:.2f}" if duration else "?"
        print(
            f"film: {duration:.2f} s long; wall time / film duration = {ratio} "
            f"({len(result['sequence_job_ids'])} storyboards, {len(result['shot_ids'])} shots, "
            f"{len(result['audio']['narration_ids'])} narrations)"
        )
        with tempfile.TemporaryDirectory(prefix="storycore-film-") as folder:
            film = Path(folder) / "film.mp4"
            with client.stream("GET", result["download_url"]) as download:
                download.raise_for_status()
                with film.open("wb") as out:
                    for chunk in download.iter_bytes(1 << 16):
                        out.write(chunk)
            print(f"downloaded {film.stat().st_size / 1e6:.2f} MB: {decode(film)}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shots-per-scene", type=int, default=3, choices=range(1, 9), metavar="{1..8}"
    )
    parser.add_argument(
        "--timeout", type=float, default=900.0, help="seconds to wait for the production"
    )
    return run(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
