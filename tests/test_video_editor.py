"""The video editor through the gateway: timelines and edits, streamed uploads, storyboards from
real generated sequences, and exports rendered by the export worker, every render checked by
decoding the downloaded file."""

from __future__ import annotations

import asyncio
import io
import math
import struct
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import av
import httpx
import nats
import numpy as np
import psutil
import pytest
import soundfile as sf
from PIL import Image

from storycore_devstack.stack import Stack
from storycore_shared.assets import NatsAssetStore
from storycore_shared.events.broker import Broker
from storycore_shared.events.envelope import CloudEvent
from storycore_testkit.polling import settle
from storycore_testkit.problems import assert_problem, settle_gone

API = "/api/video-editor"
TERMINAL = {"completed", "failed", "cancelled"}
PROMPT = "A keeper climbs the lighthouse. The storm breaks. The lamp flares over the sea."
BUCKET = "video-editor-files"


# -- helpers ------------------------------------------------------------------------------


def project(api: httpx.Client, user: Any, width: int = 320, height: int = 180) -> str:
    answer = api.post(
        "/api/projects",
        headers=user.headers,
        json={"name": "Film", "resolution_width": width, "resolution_height": height},
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def timeline(api: httpx.Client, user: Any, pid: str, **fields: Any) -> dict[str, Any]:
    body = {"project_id": pid, "name": "Cut", "fps": 12, **fields}
    answer = api.post(f"{API}/projects", headers=user.headers, json=body)
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


def sequence(api: httpx.Client, user: Any, pid: str, shots: int = 3) -> dict[str, Any]:
    answer = api.post(
        "/api/sequences/generate",
        headers=user.headers,
        json={"project_id": pid, "prompt": PROMPT, "shot_count": shots},
    )
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["job_id"]
    seen: dict[str, Any] = {}

    def done() -> bool:
        seen.update(api.get(f"/api/sequences/{job_id}/status", headers=user.headers).json())
        return seen["status"] in TERMINAL

    settle(done, within=60, what="the storyboard generated")
    assert seen["status"] == "completed", seen
    result: dict[str, Any] = api.get(f"/api/sequences/{job_id}/result", headers=user.headers).json()
    return result


def music(api: httpx.Client, user: Any, pid: str, seconds: float) -> dict[str, Any]:
    answer = api.post(
        "/api/audio/generate",
        headers=user.headers,
        json={"project_id": pid, "audio_type": "music", "duration_seconds": seconds, "seed": 3},
    )
    assert answer.status_code == 202, answer.text
    audio_id = answer.json()["id"]
    seen: dict[str, Any] = {}

    def done() -> bool:
        seen.update(api.get(f"/api/audio/{audio_id}", headers=user.headers).json())
        return seen["status"] in TERMINAL

    settle(done, within=90, what="the music rendered")
    assert seen["status"] == "completed", seen
    return seen


def export(api: httpx.Client, user: Any, tid: str, **fields: Any) -> dict[str, Any]:
    body = {"preset": "custom", "width": 320, "height": 180, "fps": 12, "quality": "draft",
            **fields}  # fmt: skip
    answer = api.post(f"{API}/projects/{tid}/export", headers=user.headers, json=body)
    assert answer.status_code == 202, answer.text
    created: dict[str, Any] = answer.json()
    return created


def wait_export(api: httpx.Client, user: Any, eid: str, within: float = 120) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def done() -> bool:
        seen.update(api.get(f"{API}/exports/{eid}", headers=user.headers).json())
        return seen["status"] in TERMINAL

    settle(done, within=within, what=f"export {eid} finished")
    return seen


def decode_video(data: bytes) -> tuple[list[np.ndarray], dict[str, Any]]:
    """Every frame (RGB arrays) and the streams' facts."""
    with av.open(io.BytesIO(data)) as container:
        video = container.streams.video[0]
        facts = {
            "video_codec": video.codec_context.name,
            "audio_codec": container.streams.audio[0].codec_context.name
            if container.streams.audio
            else None,
            "width": video.codec_context.width,
            "height": video.codec_context.height,
            "fps": float(video.average_rate or 0),
        }
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return frames, facts


def decode_audio(data: bytes) -> tuple[np.ndarray, int]:
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate
        chunks = [f.to_ndarray() for f in container.decode(audio=0)]
    samples = np.concatenate([c if c.ndim == 2 else c[None, :] for c in chunks], axis=1)
    if samples.shape[0] > 2:  # packed interleaved
        samples = samples.reshape(-1, 2).T
    return samples.astype(np.float32), rate


def rms_db(x: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(np.square(x))) + 1e-12))


def mean_colour(image: np.ndarray) -> np.ndarray:
    return image.reshape(-1, image.shape[-1]).mean(axis=0)


def multipart(data: bytes, name: str, content_type: str) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), boundary


def upload(api: httpx.Client, user: Any, tid: str, data: bytes, name: str, kind: str) -> Any:
    body, boundary = multipart(data, name, kind)
    return api.post(
        f"{API}/projects/{tid}/media",
        headers={**user.headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
        content=body,
    )


def png(colour: tuple[int, int, int], size: tuple[int, int] = (64, 36)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


async def _stored_keys(nats_url: str, keys: list[str]) -> list[str]:
    broker = Broker(nats_url, name="video-editor-suite-test")
    await broker.start()
    try:
        await asyncio.wait_for(broker.connected(), timeout=10)
        store = NatsAssetStore(broker, BUCKET)
        return [key for key in keys if await store.stat(key) is not None]
    finally:
        await broker.close()


async def _exported_events(nats_url: str, export_id: str) -> int:
    nc = await nats.connect(nats_url)
    count = 0
    try:
        sub = await nc.jetstream().pull_subscribe("video.exported", stream="VIDEO")
        while True:
            try:
                batch = await sub.fetch(500, timeout=2)
            except TimeoutError:  # nats' own TimeoutError subclasses it; fetch raises both
                return count
            for msg in batch:
                if CloudEvent.model_validate_json(msg.data).subject == export_id:
                    count += 1
    finally:
        await nc.close()


# -- the storyboard film ----------------------------------------------------------------------


def test_a_storyboard_from_a_real_sequence_exports_to_a_playable_mp4(
    api: httpx.Client, make_user: Any
) -> None:
    user = make_user()
    pid = project(api, user)
    storyboard = sequence(api, user, pid, shots=3)
    durations = [s["duration_seconds"] for s in storyboard["shots"]]
    total = sum(durations)
    sound = music(api, user, pid, seconds=total + 1)
    tid = timeline(api, user, pid)["id"]
    settle(
        lambda: any(
            s["sequence_job_id"] == storyboard["id"]
            for s in api.get(f"{API}/projects/{tid}/storyboards", headers=user.headers).json()[
                "storyboards"
            ]
        ),
        within=15,
        what="sequence.generated recorded the storyboard",
    )
    laid = api.post(
        f"{API}/projects/{tid}/from-sequence",
        headers=user.headers,
        json={"sequence_job_id": storyboard["id"], "audio_id": sound["id"]},
    )
    assert laid.status_code == 200, laid.text
    tree = laid.json()
    assert tree["duration_seconds"] == pytest.approx(total, abs=1e-6)
    video_track = next(t for t in tree["tracks"] if t["kind"] == "video")
    assert [c["transition_in"] for c in video_track["clips"][1:]] == [
        {"type": "dissolve", "duration": 0.5}
    ] * 2
    done = wait_export(api, user, export(api, user, tid)["id"])
    assert done["status"] == "completed", done
    assert (done["width"], done["height"]) == (320, 180)
    data = api.get(done["file_url"]).content
    assert len(data) == done["size"]
    probe = api.head(done["file_url"])  # a player's probe: the size and type, no bytes
    assert (probe.status_code, probe.content) == (200, b"")
    assert probe.headers["content-length"] == str(done["size"])
    assert probe.headers["content-type"] == "video/mp4"
    frames, facts = decode_video(data)
    assert (facts["video_codec"], facts["audio_codec"]) == ("h264", "aac")
    assert (facts["width"], facts["height"], facts["fps"]) == (320, 180, 12)
    assert abs(len(frames) - round(total * 12)) <= 1  # within one frame
    assert data.find(b"moov") < data.find(b"mdat")  # faststart: playable while downloading
    stills = []
    for index in range(3):
        png_bytes = api.get(storyboard["shots"][index]["keyframe_url"]).content
        stills.append(np.asarray(Image.open(io.BytesIO(png_bytes)).convert("RGB")))
    starts = np.cumsum([0.0, *durations])
    for index in range(3):
        # The middle of the part each shot has to itself (before the next dissolve).
        mid = (starts[index] + starts[index + 1] - (0.5 if index < 2 else 0)) / 2
        frame = frames[int(mid * 12)]
        distances = [np.abs(mean_colour(frame) - mean_colour(s)).max() for s in stills]
        assert distances[index] < 12, (index, distances)
    for index in (1, 2):  # the middle of each dissolve blends its two neighbours
        t = starts[index] - 0.25
        frame = mean_colour(frames[int(t * 12 + 0.5)])
        blend = (mean_colour(stills[index - 1]) + mean_colour(stills[index])) / 2
        assert np.abs(frame - blend).max() < 12
    audio, rate = decode_audio(data)
    source, source_rate = sf.read(io.BytesIO(api.get(sound["file_url"]).content), dtype="float32")
    for second in (1.0, total / 2):
        a = audio[:, int(second * rate) : int((second + 0.5) * rate)]
        b = source[int(second * source_rate) : int((second + 0.5) * source_rate)]
        assert rms_db(a) == pytest.approx(rms_db(b), abs=2.0)


def test_webm_gif_and_a_vertical_preset_letterbox_or_crop(api: httpx.Client, make_user: Any):
    user = make_user()
    pid = project(api, user)
    tid = timeline(api, user, pid)["id"]
    red = upload(api, user, tid, png((220, 30, 30), (160, 90)), "red.png", "image/png")
    assert red.status_code == 201, red.text
    track = api.post(f"{API}/projects/{tid}/tracks", headers=user.headers, json={"kind": "video"})
    assert track.status_code == 201, track.text
    track_id = track.json()["tracks"][-1]["id"]
    clip = api.post(
        f"{API}/tracks/{track_id}/clips",
        headers=user.headers,
        json={"media_id": red.json()["id"], "start": 0, "duration": 1.5},
    )
    assert clip.status_code == 201, clip.text
    for fmt, codec in (("webm", "vp9"), ("gif", "gif")):
        done = wait_export(api, user, export(api, user, tid, format=fmt, fps=8)["id"])
        assert done["status"] == "completed", done
        data = api.get(done["file_url"]).content
        frames, facts = decode_video(data)
        assert facts["video_codec"] == codec
        assert abs(len(frames) - 12) <= 1
        part = api.get(done["file_url"], headers={"Range": "bytes=4-11"})
        assert part.status_code == 206
        assert part.content == data[4:12]
        beyond = api.get(done["file_url"], headers={"Range": f"bytes={len(data) + 1}-"})
        assert beyond.status_code == 416
    for fit, barred in (("letterbox", True), ("cover", False)):
        done = wait_export(
            api,
            user,
            export(api, user, tid, width=90, height=160, fps=4, fit=fit)["id"],
        )
        assert done["status"] == "completed", done
        frames, facts = decode_video(api.get(done["file_url"]).content)
        assert (facts["width"], facts["height"]) == (90, 160)
        top = mean_colour(frames[2][:20])
        assert bool(top.max() < 20) == barred, (fit, top)


# -- uploads ---------------------------------------------------------------------------------


def _wav_header(data_bytes: int, rate: int = 48000) -> bytes:
    return (
        b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 2, rate, rate * 4, 4, 16)
        + b"data" + struct.pack("<I", data_bytes)
    )  # fmt: skip


class _Body:
    """A multipart body produced on the fly, counting what the server pulled."""

    def __init__(self, head: bytes, size: int, tail: bytes) -> None:
        self.head, self.size, self.tail = head, size, tail
        self.sent = 0

    def __iter__(self) -> Iterator[bytes]:
        yield self.head
        chunk = bytes(1024 * 1024)
        left = self.size
        while left > 0:
            piece = chunk[: min(left, len(chunk))]
            self.sent += len(piece)
            left -= len(piece)
            yield piece
        yield self.tail


def _streamed(api: httpx.Client, user: Any, tid: str, data_bytes: int) -> tuple[Any, _Body]:
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="long.wav"\r\n'
        "Content-Type: audio/wav\r\n\r\n"
    ).encode() + _wav_header(data_bytes)
    body = _Body(head, data_bytes, f"\r\n--{boundary}--\r\n".encode())
    answer = api.post(
        f"{API}/projects/{tid}/media",
        headers={**user.headers, "Content-Type": f"multipart/form-data; boundary={boundary}"},
        content=iter(body),
        timeout=120,
    )
    return answer, body


def test_uploads_are_streamed_bounded_and_sniffed(
    stack: Stack, api: httpx.Client, make_user: Any
) -> None:
    user = make_user()
    pid = project(api, user)
    tid = timeline(api, user, pid)["id"]
    html = upload(api, user, tid, b"<!doctype html><html><body>hi</body></html>", "x.mp4",
                  "video/mp4")  # fmt: skip
    assert_problem(html, 415, "unsupported_media_type")
    process = psutil.Process(stack.replicas["video-editor"][0].process.pid)  # type: ignore[union-attr]
    peak = [process.memory_info().rss]
    running = threading.Event()
    running.set()

    def sample() -> None:
        while running.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            time.sleep(0.05)

    before = process.memory_info().rss
    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        answer, _ = _streamed(api, user, tid, 300 * 2**20)
    finally:
        running.clear()
        sampler.join()
    assert answer.status_code == 201, answer.text
    stored = answer.json()
    assert stored["kind"] == "audio"
    assert stored["duration_seconds"] == pytest.approx(300 * 2**20 / 192000, abs=0.1)
    assert (peak[0] - before) < 64 * 2**20, f"the API grew by {(peak[0] - before) / 2**20:.0f} MB"
    # Past the limit (the test stack's is 320 MiB): 413, cut mid-stream, nothing stored.
    over, body = _streamed(api, user, tid, 2**30)
    assert_problem(over, 413)
    assert body.sent < 600 * 2**20, f"the whole body was read ({body.sent} bytes)"
    listed = api.get(f"{API}/projects/{tid}/media", headers=user.headers).json()["media"]
    assert [m["id"] for m in listed] == [stored["id"]]  # the refused upload kept nothing
    range_answer = api.get(
        f"{API}/media/{stored['id']}/file", headers={**user.headers, "Range": "bytes=0-43"}
    )
    assert range_answer.status_code == 206
    assert range_answer.content == _wav_header(300 * 2**20)
    assert (
        api.get(
            f"{API}/media/{stored['id']}/file",
            headers={**user.headers, "Range": f"bytes={stored['size'] + 10}-"},
        ).status_code
        == 416
    )
    thumb = api.get(f"{API}/media/{stored['id']}/thumbnail", headers=user.headers)
    assert Image.open(io.BytesIO(thumb.content)).format == "PNG"


# -- edits -----------------------------------------------------------------------------------


def test_edits_are_versioned_and_clips_never_overlap(api: httpx.Client, make_user: Any):
    user = make_user()
    pid = project(api, user)
    created = timeline(api, user, pid)
    tid = created["id"]
    still = upload(api, user, tid, png((10, 200, 10)), "green.png", "image/png").json()
    tree = api.post(f"{API}/projects/{tid}/tracks", headers=user.headers, json={"kind": "video"})
    track_id = tree.json()["tracks"][0]["id"]

    def add(start: float, duration: float) -> httpx.Response:
        return api.post(
            f"{API}/tracks/{track_id}/clips",
            headers=user.headers,
            json={"media_id": still["id"], "start": start, "duration": duration},
        )

    assert add(0, 2).status_code == 201
    assert add(2, 2).status_code == 201
    assert_problem(add(3, 2), 409, "clip_overlap")
    clips = api.get(f"{API}/projects/{tid}", headers=user.headers).json()["tracks"][0]["clips"]
    first, second = clips
    split = api.post(f"{API}/clips/{first['id']}/split", headers=user.headers, json={"at": 0.5})
    assert split.status_code == 200, split.text
    parts = split.json()["tracks"][0]["clips"]
    assert [(c["start"], c["duration"]) for c in parts] == [(0, 0.5), (0.5, 1.5), (2, 2)]
    rippled = api.post(
        f"{API}/clips/{parts[1]['id']}/move",
        headers=user.headers,
        json={"start": 1.5, "ripple": True},
    )
    assert rippled.status_code == 200, rippled.text
    moved = {c["id"]: c["start"] for c in rippled.json()["tracks"][0]["clips"]}
    assert moved[second["id"]] == pytest.approx(3.0)  # pushed by the same second
    version = rippled.json()["version"]
    stale = api.put(
        f"{API}/projects/{tid}",
        headers={**user.headers, "If-Match": f'"{version - 1}"'},
        json={"name": "Stale"},
    )
    assert_problem(stale, 409)
    otio = api.get(f"{API}/projects/{tid}/otio", headers=user.headers)
    assert otio.status_code == 200, otio.text
    replaced = api.post(
        f"{API}/projects/{tid}/otio",
        headers={**user.headers, "Content-Type": "application/json"},
        content=otio.content,
    )
    assert replaced.status_code == 200, replaced.text

    def times(answer: httpx.Response) -> list[float]:
        clips = answer.json()["tracks"][0]["clips"]
        return [t for c in clips for t in (c["start"], c["in_point"], c["out_point"])]

    assert times(replaced) == pytest.approx(times(rippled))


# -- jobs ------------------------------------------------------------------------------------


def _long_timeline(api: httpx.Client, user: Any, seconds: float) -> str:
    pid = project(api, user)
    tid = timeline(api, user, pid)["id"]
    still = upload(api, user, tid, png((40, 90, 160), (640, 360)), "blue.png", "image/png").json()
    track = api.post(f"{API}/projects/{tid}/tracks", headers=user.headers, json={"kind": "video"})
    track_id = track.json()["tracks"][0]["id"]
    api.post(
        f"{API}/tracks/{track_id}/clips",
        headers=user.headers,
        json={"media_id": still["id"], "start": 0, "duration": seconds,
              "ken_burns": {"from_rect": {"x": 0, "y": 0, "w": 1, "h": 1},
                            "to_rect": {"x": 0.2, "y": 0.2, "w": 0.6, "h": 0.6}}},
    ).raise_for_status()  # fmt: skip
    return str(tid)


def test_cancel_mid_export_leaves_no_file(stack: Stack, api: httpx.Client, make_user: Any):
    user = make_user()
    tid = _long_timeline(api, user, 120)
    started = export(api, user, tid, width=640, height=360, fps=24)
    job = f"{API}/jobs/{started['id']}"
    settle(
        lambda: api.get(job, headers=user.headers).json()["progress"] >= 10,
        within=60,
        what="the export is rendering",
    )
    assert api.post(f"{job}/cancel", headers=user.headers).status_code == 200
    time.sleep(3)
    after = api.get(f"{API}/exports/{started['id']}", headers=user.headers).json()
    assert after["status"] == "cancelled"
    assert after["file_url"] is None
    key = f"exports/{started['id']}.mp4"
    assert asyncio.run(_stored_keys(stack.nats_url, [key])) == []


def test_a_killed_export_worker_is_replaced_and_the_export_completes_once(
    stack: Stack, api: httpx.Client, make_user: Any
) -> None:
    user = make_user()
    tid = _long_timeline(api, user, 30)
    started = export(api, user, tid, width=480, height=270, fps=24)
    job = f"{API}/jobs/{started['id']}"
    settle(
        lambda: api.get(job, headers=user.headers).json()["progress"] >= 15,
        within=60,
        what="the export is rendering",
    )
    stack.stop_worker("video-editor", kill=True)
    try:
        assert api.get(job, headers=user.headers).json()["status"] == "processing"
    finally:
        stack.start_worker("video-editor")
    done = wait_export(api, user, started["id"], within=240)
    assert done["status"] == "completed", done
    frames, _ = decode_video(api.get(done["file_url"]).content)
    assert abs(len(frames) - 30 * 24) <= 1
    settle(
        lambda: asyncio.run(_exported_events(stack.nats_url, started["id"])) >= 1,
        within=10,
        what="video.exported published",
    )
    assert asyncio.run(_exported_events(stack.nats_url, started["id"])) == 1


# -- access and lifecycle ---------------------------------------------------------------------


def test_another_user_gets_404_everywhere_and_a_project_delete_frees_every_byte(
    stack: Stack, api: httpx.Client, make_user: Any
) -> None:
    owner, stranger = make_user(), make_user()
    pid = project(api, owner)
    tid = timeline(api, owner, pid)["id"]
    still = upload(api, owner, tid, png((200, 200, 20)), "y.png", "image/png").json()
    tree = api.post(f"{API}/projects/{tid}/tracks", headers=owner.headers, json={"kind": "video"})
    track_id = tree.json()["tracks"][0]["id"]
    clip = api.post(
        f"{API}/tracks/{track_id}/clips",
        headers=owner.headers,
        json={"media_id": still["id"], "start": 0, "duration": 1},
    ).json()["tracks"][0]["clips"][0]
    done = wait_export(api, owner, export(api, owner, tid, fps=4)["id"])
    assert done["status"] == "completed", done
    eid = done["id"]
    routes = [
        ("GET", f"{API}/projects/{tid}"),
        ("PUT", f"{API}/projects/{tid}"),
        ("DELETE", f"{API}/projects/{tid}"),
        ("GET", f"{API}/projects/{tid}/otio"),
        ("POST", f"{API}/projects/{tid}/tracks"),
        ("PUT", f"{API}/tracks/{track_id}"),
        ("DELETE", f"{API}/tracks/{track_id}"),
        ("POST", f"{API}/tracks/{track_id}/clips"),
        ("PUT", f"{API}/clips/{clip['id']}"),
        ("DELETE", f"{API}/clips/{clip['id']}"),
        ("POST", f"{API}/clips/{clip['id']}/split"),
        ("POST", f"{API}/clips/{clip['id']}/move"),
        ("GET", f"{API}/media/{still['id']}"),
        ("DELETE", f"{API}/media/{still['id']}"),
        ("GET", f"{API}/media/{still['id']}/file"),
        ("GET", f"{API}/media/{still['id']}/thumbnail"),
        ("POST", f"{API}/projects/{tid}/export"),
        ("GET", f"{API}/exports/{eid}"),
        ("GET", f"{API}/exports/{eid}/download"),
        ("GET", f"{API}/jobs/{eid}"),
        ("POST", f"{API}/jobs/{eid}/cancel"),
        ("GET", f"{API}/jobs/{eid}/stream"),
    ]
    bodies = {
        "PUT": {"name": "x"},
        "POST": {"kind": "video", "start": 0, "at": 0.5, "duration": 1, "preset": "tiktok"},
    }
    for method, path in routes:
        answer = api.request(method, path, headers=stranger.headers, json=bodies.get(method))
        assert answer.status_code in (404, 422), (method, path, answer.status_code)
        if answer.status_code == 422:  # the body is refused before the lookup: retry exactly
            continue
        assert_problem(answer, 404)
    upload_answer = upload(api, stranger, tid, png((1, 2, 3)), "z.png", "image/png")
    assert_problem(upload_answer, 404)
    keys = [f"media/{still['id']}", f"media/{still['id']}.thumbnail.png", f"exports/{eid}.mp4"]
    assert sorted(asyncio.run(_stored_keys(stack.nats_url, keys))) == sorted(keys)
    assert api.delete(f"/api/projects/{pid}", headers=owner.headers).status_code == 204
    settle(
        lambda: asyncio.run(_stored_keys(stack.nats_url, keys)) == [],
        within=15,
        what="every stored byte of the timeline is freed",
    )
    # The cascade deletes the bytes inside the transaction that deletes the rows, so the rows
    # go at its commit, a moment after the last object.
    settle_gone(api, f"{API}/projects/{tid}", owner.headers, within=5, what="the timeline gone")
    assert math.isfinite(done["duration_seconds"])
