"""Story -> film through the gateway: a production runs the scenario, the storyboards, the
narration, the music, the mix, the timeline and the export on the real services and workers,
and the film is checked by decoding it (picture against the keyframes, sound against the
narration and the music it was mixed from).

Productions here use the mock LLM, builtin keyframes, draft quality and a small custom frame
(320x180 at 12 fps) so that each one takes seconds."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import nats
import numpy as np
import pytest
import soundfile as sf
from PIL import Image
from scipy.signal import resample_poly

from storycore_devstack.stack import Stack
from storycore_shared.events.envelope import CloudEvent
from storycore_testkit.polling import settle
from tests.test_video_editor import decode_audio, decode_video, mean_colour, rms_db

ROOT = Path(__file__).resolve().parents[1]
TERMINAL = {"completed", "failed", "cancelled"}
FPS = 12
STORY = """The old keeper climbs the lighthouse at dusk. He lights the great lamp.

A storm breaks over the black sea. A small ship fights the waves near the rocks.

At dawn the ship reaches the harbour. The keeper sleeps at last."""
SMALL = {"preset": "custom", "width": 320, "height": 180, "fps": FPS, "quality": "draft"}


# -- helpers ------------------------------------------------------------------------------


def new_project(api: httpx.Client, user: Any, name: str = "Lighthouse") -> str:
    answer = api.post("/api/projects", headers=user.headers, json={"name": name})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def start(api: httpx.Client, user: Any, pid: str, **fields: Any) -> dict[str, Any]:
    body = {"story": STORY, "shots_per_scene": 2, "voice": {"language": "en-US"}, **SMALL}
    answer = api.post(
        f"/api/projects/{pid}/productions", headers=user.headers, json={**body, **fields}
    )
    assert answer.status_code == 202, answer.text
    assert answer.headers["Location"] == f"/api/projects/{pid}/productions/{answer.json()['id']}"
    return dict(answer.json())


def production(api: httpx.Client, user: Any, pid: str, prod: str) -> dict[str, Any]:
    answer = api.get(f"/api/projects/{pid}/productions/{prod}", headers=user.headers)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def wait_production(
    api: httpx.Client, user: Any, pid: str, prod: str, within: float = 240
) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def done() -> bool:
        seen.update(production(api, user, pid, prod))
        return seen["status"] in TERMINAL

    settle(done, within=within, what=f"production {prod} finished")
    return seen


def steps_of(found: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [s for s in found["steps"] if s["kind"] == kind]


def mono(samples: np.ndarray) -> np.ndarray:
    return samples if samples.ndim == 1 else samples.mean(axis=1)


def audio_file(api: httpx.Client, user: Any, audio_id: str, rate: int) -> np.ndarray:
    """A record's audio, mono, at ``rate``."""
    answer = api.get(f"/api/audio/{audio_id}/download", headers=user.headers)
    assert answer.status_code == 200, answer.text
    data, source_rate = sf.read(io.BytesIO(answer.content), dtype="float32")
    signal = mono(data)
    if source_rate != rate:
        gcd = np.gcd(source_rate, rate)
        signal = resample_poly(signal, rate // gcd, source_rate // gcd).astype(np.float32)
    return np.asarray(signal, dtype=np.float32)


def envelope(signal: np.ndarray, rate: int, seconds: float = 0.02) -> np.ndarray:
    hop = int(rate * seconds)
    frames = len(signal) // hop
    blocks = signal[: frames * hop].reshape(frames, hop)
    return np.asarray(np.sqrt(np.mean(np.square(blocks), axis=1)))


async def _events(nats_url: str, subject: str, stream: str) -> Counter[str]:
    """How often each subject id (the event's ``subject``) was published on ``subject``."""
    nc = await nats.connect(nats_url)
    counts: Counter[str] = Counter()
    try:
        sub = await nc.jetstream().pull_subscribe(subject, stream=stream)
        while True:
            try:
                batch = await sub.fetch(500, timeout=2)
            except TimeoutError:  # nats' own TimeoutError subclasses it; fetch raises both
                return counts
            for msg in batch:
                event = CloudEvent.model_validate_json(msg.data)
                counts[
                    str(event.data.get("job_id") or event.data.get("export_id") or event.subject)
                ] += 1
    finally:
        await nc.close()


def events(stack: Stack, subject: str, stream: str) -> Counter[str]:
    return asyncio.run(_events(stack.nats_url, subject, stream))


def film(
    stack: Stack, user: Any, pid: str, folder: Path, out: Path, *options: str
) -> subprocess.CompletedProcess[str]:
    """``python3 storycore.py film`` on the story, into ``pid``, small and quick."""
    story = folder / "story.txt"
    story.write_text(STORY, encoding="utf-8")
    command = [sys.executable, str(ROOT / "storycore.py"), "film", str(story), "--out", str(out)]
    command += ["--url", stack.gateway_url, "--token", user.access_token, "--project", pid]
    command += ["--preset", "custom", "--width", "320", "--height", "180", "--fps", str(FPS)]
    return subprocess.run(
        [*command, *options], capture_output=True, text=True, timeout=400, cwd=ROOT, check=False
    )


def check_the_film(api: httpx.Client, user: Any, done: dict[str, Any], film: bytes) -> None:
    """The picture follows the storyboards, shot by shot, and the sound is the narration over
    the ducked music."""
    result = done["result"]
    shots: list[dict[str, Any]] = []
    for job in result["sequence_job_ids"]:
        answer = api.get(f"/api/sequences/{job}/result", headers=user.headers)
        assert answer.status_code == 200, answer.text
        shots += [{**s, "job": job} for s in answer.json()["shots"]]
    assert len(shots) == len(result["shot_ids"])
    durations = [s["duration_seconds"] for s in shots]
    total = sum(durations)
    frames, facts = decode_video(film)
    assert (facts["video_codec"], facts["audio_codec"]) == ("h264", "aac")
    assert (facts["width"], facts["height"], facts["fps"]) == (320, 180, FPS)
    assert abs(len(frames) - round(total * FPS)) <= 1  # the planned length, within one frame

    # One frame per shot matches its keyframe: the middle of the part each shot has alone.
    starts = np.cumsum([0.0, *durations])
    for index, shot in enumerate(shots):
        png = api.get(
            f"/api/sequences/{shot['job']}/keyframes/{shot['order_index']}", headers=user.headers
        )
        still = np.asarray(Image.open(io.BytesIO(png.content)).convert("RGB").resize((320, 180)))
        last = index == len(shots) - 1
        mid = (starts[index] + starts[index + 1] - (0 if last else 0.5)) / 2
        distance = np.abs(mean_colour(frames[int(mid * FPS)]) - mean_colour(still)).max()
        assert distance < 12, (index, distance)

    # The film's sound is the mix (level for level), and the mix is the narration over the music.
    rate = 48000
    mix = audio_file(api, user, result["audio"]["mix_id"], rate)
    film_audio, film_rate = decode_audio(film)
    film_mono = film_audio.mean(axis=0)
    for second in (total * 0.25, total * 0.5, total * 0.75):
        a = film_mono[int(second * film_rate) : int((second + 0.5) * film_rate)]
        b = mix[int(second * rate) : int((second + 0.5) * rate)]
        assert rms_db(a) == pytest.approx(rms_db(b), abs=2.0)
    music = audio_file(api, user, result["audio"]["music_id"], rate)
    narration = np.zeros_like(mix)
    placed = sorted(steps_of(done, "narration"), key=lambda s: int(s["key"].split(":")[1]))
    scene_starts: list[float] = []  # seconds
    for step, voice_id in zip(placed, result["audio"]["narration_ids"], strict=True):
        assert step["ref"] == voice_id
        voice = audio_file(api, user, voice_id, rate)
        begin = round(float(step["detail"]["start"]) * rate)
        scene_starts.append(begin / rate)
        part = voice[: max(0, min(len(voice), len(mix) - begin))]
        narration[begin : begin + len(part)] += part
    # Speech where the narration is placed: the mix's loudness follows the voice's syllables.
    speech_env, mix_env = envelope(narration, rate), envelope(mix, rate)
    for scene_start in scene_starts:
        window = slice(int(scene_start / 0.02), int((scene_start + 2.0) / 0.02))
        correlation = np.corrcoef(speech_env[window], mix_env[window])[0, 1]
        assert correlation > 0.4, (scene_start, correlation)
    # The music is attenuated under the voice: its gain in the mix (least squares against the
    # music itself, which the voice does not correlate with) is lower where the voice speaks.
    hop = rate // 4
    speaking, silent = [], []
    for at in range(0, len(mix) - hop, hop):
        m = music[at : at + hop]
        if len(m) < hop or not np.any(m):
            continue
        gain = float(np.dot(mix[at : at + hop], m) / np.dot(m, m))
        level = rms_db(narration[at : at + hop])
        if level > -35:
            speaking.append(gain)
        elif level < -70:
            silent.append(gain)
    assert speaking, "the narration is never heard"
    assert silent, "the music is never heard alone"
    ducked = 20 * np.log10(max(np.median(speaking), 1e-6) / max(np.median(silent), 1e-6))
    assert ducked < -2.0, (ducked, len(speaking), len(silent))


# -- the film ---------------------------------------------------------------------------------


def test_film_from_the_command_line_is_the_story_told_over_its_music(
    stack: Stack, api: httpx.Client, make_user: Any, tmp_path: Path
) -> None:
    user = make_user()
    pid = new_project(api, user)
    out = tmp_path / "film.mp4"
    options = ["--shots-per-scene", "2", "--language", "en-US", "--open"]
    run = film(stack, user, pid, tmp_path, out, *options)
    assert run.returncode == 0, run.stdout + run.stderr
    listed = api.get(f"/api/projects/{pid}/productions", headers=user.headers).json()
    [done] = listed["productions"]
    assert done["status"] == "completed", done
    assert out.read_bytes() == api.get(done["result"]["download_url"], headers=user.headers).content
    # --open: the storyboard PNGs and the audio files, downloaded, their paths printed.
    assets = [line for line in run.stdout.splitlines() if "_assets" in line]
    assert any(line.strip().endswith(".png") for line in assets), run.stdout
    assert any(line.strip().endswith(".wav") for line in assets), run.stdout
    check_the_film(api, user, done, out.read_bytes())

    # The project's summary counts what the production made.
    shots = len(done["result"]["shot_ids"])
    settle(
        lambda: (
            api.get(f"/api/projects/{pid}/summary", headers=user.headers).json()["shot_count"]
            == shots
        ),
        within=15,
        what="the summary counts the shots",
    )
    summary = api.get(f"/api/projects/{pid}/summary", headers=user.headers).json()
    assert summary["sequence_count"] == len(done["result"]["sequence_job_ids"])
    listed_shots = api.get(f"/api/projects/{pid}/shots", headers=user.headers).json()
    assert {s["id"] for s in listed_shots["shots"]} == set(done["result"]["shot_ids"])

    # Another user gets 404 on the production and on every artefact.
    stranger = make_user()
    result = done["result"]
    prod = done["id"]
    for method, path in [
        ("GET", f"/api/projects/{pid}/productions/{prod}"),
        ("GET", f"/api/projects/{pid}/productions"),
        ("GET", f"/api/productions/{prod}"),
        ("POST", f"/api/productions/{prod}/cancel"),
        ("POST", f"/api/productions/{prod}/stream-ticket"),
        ("GET", f"/api/productions/{prod}/stream"),
        ("GET", f"/api/scenario/{result['scenario_id']}"),
        *[("GET", f"/api/sequences/{j}/result") for j in result["sequence_job_ids"]],
        *[("GET", f"/api/shots/{s}") for s in result["shot_ids"]],
        *[("GET", f"/api/audio/{a}") for a in result["audio"]["narration_ids"]],
        ("GET", f"/api/audio/{result['audio']['music_id']}"),
        ("GET", f"/api/audio/{result['audio']['mix_id']}/download"),
        ("GET", f"/api/video-editor/projects/{result['timeline_id']}"),
        ("GET", f"/api/video-editor/exports/{result['export_id']}"),
        ("GET", f"/api/video-editor/exports/{result['export_id']}/download"),
    ]:
        answer = api.request(method, path, headers=stranger.headers)
        assert answer.status_code == 404, (path, answer.status_code, answer.text)
    # The owner's signed film URL loads without a token; altered, it is refused.
    signed = api.get(done["result"]["film_url"])
    assert signed.status_code == 200
    assert signed.content == out.read_bytes()
    assert api.get(done["result"]["film_url"].replace("sig=", "sig=0")).status_code == 403


def test_a_failing_step_fails_the_film_command_with_its_reason(
    stack: Stack, api: httpx.Client, make_user: Any, tmp_path: Path
) -> None:
    user = make_user()
    pid = new_project(api, user)
    # A language no voice speaks is refused when the production is requested, naming them.
    refused = api.post(
        f"/api/projects/{pid}/productions",
        headers=user.headers,
        json={"story": STORY, "voice": {"language": "xx-ZZ"}},
    )
    assert refused.status_code == 422, refused.text
    assert "en-US" in refused.text
    assert api.get(f"/api/projects/{pid}/productions", headers=user.headers).json()["total"] == 0
    # A step that fails fails the command: the music's own job is cancelled by another client
    # while `film` follows the production.
    out = tmp_path / "film.mp4"
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(film, stack, user, pid, tmp_path, out, "--shots-per-scene", "1")

        def music_ref() -> str | None:
            listed = api.get(f"/api/projects/{pid}/productions", headers=user.headers).json()
            steps = [s for p in listed["productions"] for s in p["steps"]]
            return next((s["ref"] for s in steps if s["kind"] == "music"), None)

        settle(lambda: music_ref() is not None, within=60, what="the music requested")
        job = f"/api/audio/jobs/{music_ref()}"
        settle(
            lambda: api.get(job, headers=user.headers).status_code == 200,
            within=30,
            what="the audio service queued the music",
        )
        cancel = api.post(f"{job}/cancel", headers=user.headers)
        assert cancel.status_code == 200, cancel.text
        run = running.result(timeout=300)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "the production failed at step music: the audio job was cancelled" in run.stderr
    assert not out.exists()
    [done] = api.get(f"/api/projects/{pid}/productions", headers=user.headers).json()["productions"]
    assert (done["status"], done["failed_step"]) == ("failed", "music")
    assert "film" not in {s["kind"] for s in done["steps"]}


# -- crashes and cancel -----------------------------------------------------------------------


def test_killed_sequences_and_audio_workers_mid_production_and_each_artefact_once(
    stack: Stack, api: httpx.Client, make_user: Any
) -> None:
    user = make_user()
    pid = new_project(api, user)

    def requested(kind: str) -> bool:
        return any(s["kind"] == kind for s in production(api, user, pid, prod)["steps"])

    def taken(path: str) -> bool:
        answer = api.get(path, headers=user.headers)
        return answer.status_code == 200 and answer.json()["status"] != "pending"

    # Both workers are down when the production starts, so its storyboards, narration and
    # music wait for them however fast this machine is. Each worker then comes back, takes
    # its first job, and is killed again (SIGKILL) with the production half done.
    stack.stop_worker("sequences", kill=True)
    stack.stop_worker("audio", kill=True)
    try:
        prod = start(api, user, pid)["id"]
        settle(lambda: requested("music"), within=60, what="the middle steps requested")
        found = production(api, user, pid, prod)
        middle = [s for s in found["steps"] if s["kind"] in {"storyboard", "narration", "music"}]
        assert {s["kind"] for s in middle} == {"storyboard", "narration", "music"}
        assert all(s["status"] == "requested" for s in middle), middle
        stack.start_worker("sequences")
        board = steps_of(found, "storyboard")[0]["ref"]
        settle(
            lambda: taken(f"/api/sequences/{board}/status"),
            within=30,
            what="a storyboard taken by the sequences worker",
        )
        stack.stop_worker("sequences", kill=True)
        stack.start_worker("audio")
        music = steps_of(found, "music")[0]["ref"]
        settle(lambda: taken(f"/api/audio/{music}"), within=30, what="the music taken")
        stack.stop_worker("audio", kill=True)
        assert production(api, user, pid, prod)["status"] not in TERMINAL
    finally:
        stack.start_worker("sequences")
        stack.start_worker("audio")
    done = wait_production(api, user, pid, prod, within=300)
    assert done["status"] == "completed", done
    result = done["result"]
    frames, _ = decode_video(api.get(result["download_url"], headers=user.headers).content)
    assert len(frames) > 0
    # Each artefact exactly once: one event per job, one shot per planned shot.
    generated = events(stack, "sequence.generated", "SEQUENCES")
    assert [generated[j] for j in result["sequence_job_ids"]] == [1] * len(
        result["sequence_job_ids"]
    )
    sounds = events(stack, "audio.generated", "AUDIO")
    for audio_id in [*result["audio"]["narration_ids"], result["audio"]["music_id"]]:
        assert sounds[audio_id] == 1, audio_id
    assert events(stack, "audio.mixed", "AUDIO")[result["audio"]["mix_id"]] == 1
    assert events(stack, "video.exported", "VIDEO")[result["export_id"]] == 1
    settle(
        lambda: (
            api.get(f"/api/projects/{pid}/shots", headers=user.headers).json()["total"]
            == len(result["shot_ids"])
        ),
        within=15,
        what="every shot created",
    )
    timelines = api.get(
        "/api/video-editor/projects", headers=user.headers, params={"project_id": pid}
    )
    assert timelines.status_code == 200, timelines.text
    assert [t["id"] for t in timelines.json()["timelines"]] == [result["timeline_id"]]


def test_cancel_mid_production_stops_the_steps_in_flight_and_exports_nothing(
    stack: Stack, api: httpx.Client, make_user: Any
) -> None:
    user = make_user()
    pid = new_project(api, user)
    # The audio worker is down while the production starts, so its narrations and music are
    # still in flight when the cancel comes, however fast this machine renders them.
    stack.stop_worker("audio", kill=True)
    try:
        prod = start(api, user, pid)["id"]
        settle(
            lambda: any(s["kind"] == "music" for s in production(api, user, pid, prod)["steps"]),
            within=60,
            what="the music requested",
        )
        answer = api.post(f"/api/productions/{prod}/cancel", headers=user.headers)
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "cancelled"
        found = production(api, user, pid, prod)
        music = steps_of(found, "music")[0]
        assert music["status"] == "cancelled"
        seen: dict[str, Any] = {}

        def music_cancelled() -> bool:
            answer = api.get(f"/api/audio/{music['ref']}", headers=user.headers)
            seen.update(code=answer.status_code, body=answer.json())
            return answer.status_code == 200 and answer.json()["status"] == "cancelled"

        # The music's own job stops: the audio service cancelled it on production.cancelled.
        try:
            settle(music_cancelled, within=20, what="the music job cancelled")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the music record last answered {seen}") from None
    finally:
        stack.start_worker("audio")  # it must find nothing left to render
    # Nothing new starts, and no film is exported (late answers have had time to arrive).
    time.sleep(2)
    time_left = production(api, user, pid, prod)
    assert time_left["status"] == "cancelled"
    assert not {"mix", "film"} & {s["kind"] for s in time_left["steps"]}
    timelines = api.get(
        "/api/video-editor/projects", headers=user.headers, params={"project_id": pid}
    )
    assert timelines.json()["timelines"] == []
    again = api.post(f"/api/productions/{prod}/cancel", headers=user.headers)
    assert again.status_code == 409
