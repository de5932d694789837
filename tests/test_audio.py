"""Audio through the gateway: voice, music, effects and mixes rendered by the audio worker, every
result checked by decoding the downloaded file (never by trusting a status field)."""

from __future__ import annotations

import asyncio
import io
import time
import uuid
from typing import Any

import httpx
import nats
import numpy as np
import pyloudnorm  # type: ignore[import-untyped]
import pytest
import soundfile as sf

from storycore_devstack.stack import Stack
from storycore_shared.assets import NatsAssetStore
from storycore_shared.events.broker import Broker
from storycore_shared.events.envelope import CloudEvent
from storycore_testkit.polling import settle
from storycore_testkit.problems import assert_problem, settle_gone

TERMINAL = {"completed", "failed", "cancelled"}
SENTENCE = "The lighthouse keeper climbed the stairs slowly, counting every step until dawn."


# -- helpers ------------------------------------------------------------------------------


def project(api: httpx.Client, user: Any) -> str:
    answer = api.post("/api/projects", headers=user.headers, json={"name": "Sound"})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def queue(api: httpx.Client, user: Any, path: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = api.post(f"/api/audio/{path}", headers=user.headers, json=body)
    assert answer.status_code == 202, answer.text
    record: dict[str, Any] = answer.json()
    return record


def wait(api: httpx.Client, user: Any, audio_id: str, within: float = 90) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def done() -> bool:
        answer = api.get(f"/api/audio/{audio_id}", headers=user.headers)
        assert answer.status_code == 200, answer.text
        seen.update(answer.json())
        return seen["status"] in TERMINAL

    settle(done, within=within, what=f"audio {audio_id} rendered")
    return seen


def render(
    api: httpx.Client, user: Any, body: dict[str, Any], within: float = 90
) -> dict[str, Any]:
    record = wait(api, user, queue(api, user, "generate", body)["id"], within)
    assert record["status"] == "completed", record
    return record


def fetch(api: httpx.Client, record: dict[str, Any]) -> bytes:
    answer = api.get(record["file_url"])  # the signed URL alone, as an <audio> element loads it
    assert answer.status_code == 200, answer.text
    assert int(answer.headers["content-length"]) == record["file_size_bytes"]
    return answer.content


def decode(data: bytes) -> tuple[np.ndarray, int]:
    samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    return samples, rate


def band_share(mono: np.ndarray, rate: int, low: float, high: float) -> float:
    power = np.abs(np.fft.rfft(mono)) ** 2
    freqs = np.fft.rfftfreq(mono.size, 1 / rate)
    return float(power[(freqs >= low) & (freqs <= high)].sum() / power.sum())


def onset_period(mono: np.ndarray, rate: int) -> float:
    """The lag (s) at which the onset strength's autocorrelation peaks, within 0.25 to 1 s."""
    hop = rate // 200  # 5 ms
    frames = mono[: mono.size // hop * hop].reshape(-1, hop)
    energy = np.log1p(100 * (frames**2).mean(axis=1))
    onset = np.maximum(np.diff(energy), 0)
    onset -= onset.mean()
    corr = np.correlate(onset, onset, mode="full")[onset.size - 1 :]
    lags = np.arange(corr.size) * hop / rate
    window = (lags >= 0.25) & (lags <= 1.0)
    return float(lags[window][np.argmax(corr[window])])


def rms_db(x: np.ndarray) -> float:
    return float(20 * np.log10(np.sqrt(np.mean(np.square(x))) + 1e-12))


async def _stored(nats_url: str, key: str) -> bool:
    broker = Broker(nats_url, name="audio-suite-test")
    await broker.start()
    try:
        await asyncio.wait_for(broker.connected(), timeout=10)
        return await NatsAssetStore(broker, "audio-files").stat(key) is not None
    finally:
        await broker.close()


async def _events(nats_url: str, event_type: str, subject: str) -> list[CloudEvent]:
    """Every ``event_type`` event about ``subject`` on the AUDIO stream."""
    nc = await nats.connect(nats_url)
    found: list[CloudEvent] = []
    try:
        sub = await nc.jetstream().pull_subscribe(event_type, stream="AUDIO")
        while True:
            try:
                batch = await sub.fetch(500, timeout=2)
            except TimeoutError:  # nats' own TimeoutError subclasses it; fetch raises both
                return found
            for msg in batch:
                event = CloudEvent.model_validate_json(msg.data)
                if event.subject == subject:
                    found.append(event)
    finally:
        await nc.close()


# -- voice --------------------------------------------------------------------------------


def test_voice_is_real_speech_that_follows_language_and_speed(api: httpx.Client, make_user: Any):
    user = make_user()
    pid = project(api, user)
    body = {
        "project_id": pid,
        "audio_type": "voice",
        "text": SENTENCE,
        "voice": {"language": "en-US", "gender": "female"},
    }
    normal = render(api, user, body)
    samples, rate = decode(fetch(api, normal))
    assert rate == normal["sample_rate"] == 48000
    assert samples.shape[1] == normal["channels"] == 1
    duration = samples.shape[0] / rate
    assert duration == pytest.approx(normal["duration_seconds"], abs=0.01)
    words = len(SENTENCE.split())
    assert words / 175 * 60 * 0.5 < duration < words / 175 * 60 * 2  # a speaking pace
    assert band_share(samples[:, 0], rate, 100, 4000) > 0.5
    assert normal["loudness_lufs"] is not None
    assert normal["peak_dbfs"] <= 0

    fast = render(api, user, {**body, "voice": {"language": "en-US", "speed": 2}})
    fast_samples, _ = decode(fetch(api, fast))
    assert fast_samples.shape[0] <= 0.65 * samples.shape[0]

    french = render(api, user, {**body, "voice": {"language": "fr", "gender": "female"}})
    assert french["profile"]["language"] == "fr-FR"
    french_samples, _ = decode(fetch(api, french))
    n = min(french_samples.shape[0], samples.shape[0])
    assert not np.allclose(french_samples[:n], samples[:n], atol=1e-3)

    unknown = api.post(
        "/api/audio/generate",
        headers=user.headers,
        json={**body, "voice": {"language": "tlh-QO"}},
    )
    problem = assert_problem(unknown, 422, "voice_language_not_available")
    assert "fr-FR" in problem["detail"]
    assert "en-US" in problem["detail"]


# -- music --------------------------------------------------------------------------------


def test_music_keeps_its_tempo_and_its_seed(api: httpx.Client, make_user: Any):
    user = make_user()
    pid = project(api, user)
    body = {
        "project_id": pid,
        "audio_type": "music",
        "duration_seconds": 8,
        "seed": 7,
        "music": {"genre": "Aventure", "intensity": "moyenne"},
    }
    first = render(api, user, body)
    assert first["profile"]["bpm"] == 120
    assert first["profile"]["genre"] == "adventure"
    data = fetch(api, first)
    samples, rate = decode(data)
    assert samples.shape == (8 * rate, 2)
    assert onset_period(samples.mean(axis=1), rate) == pytest.approx(0.5, abs=0.02)
    again = render(api, user, body)
    assert fetch(api, again) == data
    other = render(api, user, {**body, "seed": 8})
    other_samples, _ = decode(fetch(api, other))
    assert not np.allclose(other_samples, samples, atol=1e-3)


def test_multitrack_music_has_six_stems_and_a_mono_bass(api: httpx.Client, make_user: Any):
    user = make_user()
    pid = project(api, user)
    answer = api.post(
        "/api/audio/generate-multitrack",
        headers=user.headers,
        json={
            "project_id": pid,
            "profile_type": "music",
            "duration_seconds": 8,
            "music": {"genre": "sci-fi", "action": "fight"},
        },
    )
    assert answer.status_code == 202, answer.text
    multitrack = answer.json()
    names = [t["name"] for t in multitrack["tracks"]]
    assert names == ["base", "melody", "percussion", "bass", "fx", "drones"]
    for track in multitrack["tracks"]:
        done = wait(api, user, track["id"])
        assert done["status"] == "completed", done
        samples, rate = decode(fetch(api, done))
        assert samples.shape[0] == 8 * rate
        assert samples.shape[1] == (1 if track["name"] == "bass" else 2)
        assert done["profile"]["bpm"] == 145
        assert np.abs(samples).max() > 0.001, f"{track['name']} is silent"


def test_build_profile_names_the_allowed_values(api: httpx.Client, make_user: Any):
    user = make_user()
    pid = project(api, user)
    sfx = api.post(
        "/api/audio/build-profile",
        headers=user.headers,
        json={
            "project_id": pid,
            "profile_type": "sfx",
            "sfx": {"action": "explosion", "muffling": "sous l'eau"},
        },
    )
    assert sfx.status_code == 200, sfx.text
    tracks = {t["name"]: t for t in sfx.json()["tracks"]}
    assert tracks["action"]["level_db"] == 4
    assert tracks["action"]["filters"]["high_cut_hz"] == 3000
    assert tracks["environment"]["filters"]["low_pass_hz"] == 800
    assert tracks["bullet_time"]["pitch_semitones"] == -7
    unknown = api.post(
        "/api/audio/build-profile",
        headers=user.headers,
        json={"project_id": pid, "profile_type": "music", "music": {"genre": "polka"}},
    )
    problem = assert_problem(unknown, 422)
    assert "adventure" in str(problem["errors"])
    assert "sci-fi" in str(problem["errors"])


# -- mixing -------------------------------------------------------------------------------


def test_a_mix_places_tracks_exactly_ducks_under_voice_and_meets_its_loudness(
    api: httpx.Client, make_user: Any
):
    user = make_user()
    pid = project(api, user)
    voice = render(
        api,
        user,
        {
            "project_id": pid,
            "audio_type": "voice",
            "text": SENTENCE,
            "voice": {"language": "en-GB"},
        },
    )
    music = render(
        api,
        user,
        {
            "project_id": pid,
            "audio_type": "music",
            "duration_seconds": 12,
            "music": {"genre": "drama", "intensity": "low"},
        },
    )
    voice_only, rate = decode(fetch(api, voice))
    music_only, _ = decode(fetch(api, music))
    start = 3.0
    at = int(start * rate)
    tracks = [
        {"audio_id": music["id"], "volume": 0.25},
        {"audio_id": voice["id"], "start_time_seconds": start, "volume": 1.4},
    ]
    raw = queue(api, user, "mix", {"project_id": pid, "tracks": tracks, "normalize_lufs": None})
    assert raw["type"] == "mix"
    assert raw["status"] == "pending"
    done = wait(api, user, raw["id"])
    assert done["status"] == "completed", done
    mixed, mix_rate = decode(fetch(api, done))
    assert mix_rate == 48000
    assert mixed.shape == (12 * rate, 2)
    # What the mix should be without ducking: the music at 0.25 and the mono voice panned to
    # the centre at constant power (-3 dB), starting exactly at its offset. The voice peaks at
    # -3 dBFS, so at 1.4 it stays under the limiter and keys the ducking well above -20 dB.
    voice_part = np.zeros_like(mixed)
    end = min(mixed.shape[0], at + voice_only.shape[0])
    voice_part[at:end] = 1.4 * np.sqrt(0.5) * voice_only[: end - at]
    music_part = 0.25 * music_only[: mixed.shape[0]]
    residual = mixed - voice_part  # the music as mixed
    before = slice(rate // 2, at - rate // 10)
    assert np.allclose(residual[before], music_part[before], atol=2e-4)  # untouched, in place
    speaking = np.zeros(mixed.shape[0], dtype=bool)
    hop = rate // 20
    for i in range(at, end - hop, hop):
        if rms_db(voice_only[i - at : i - at + hop]) > -30:
            speaking[i + hop // 2 : i + hop] = True  # past the attack
    assert speaking.sum() > rate // 2
    ducked_by = rms_db(music_part[speaking]) - rms_db(residual[speaking])
    assert ducked_by > 2, f"the music is ducked by only {ducked_by:.1f} dB under the voice"

    loud = queue(
        api,
        user,
        "mix",
        {
            "project_id": pid,
            "tracks": tracks,
            "normalize_lufs": -16,
            "output_format": "wav",
            "bit_depth": 24,
        },
    )
    loud = wait(api, user, loud["id"])
    assert loud["status"] == "completed", loud
    samples, _ = decode(fetch(api, loud))
    assert np.abs(samples).max() <= 10 ** (-1 / 20) + 1e-4  # the master limiter
    loudness = pyloudnorm.Meter(rate).integrated_loudness(samples.astype(np.float64))
    assert loudness == pytest.approx(-16, abs=0.5)
    assert loud["loudness_lufs"] == pytest.approx(loudness, abs=0.2)


def test_a_mix_refuses_what_is_not_the_callers_and_bad_input_stores_nothing(
    api: httpx.Client, make_user: Any
):
    owner, stranger = make_user(), make_user()
    pid = project(api, owner)
    short = {
        "project_id": pid,
        "audio_type": "sfx",
        "duration_seconds": 1,
        "sfx": {"action": "gunshot"},
    }
    a, b = render(api, owner, short), render(api, owner, {**short, "seed": 3})
    # The stranger's own project and their own mix request naming the owner's tracks: 404.
    theirs = project(api, stranger)
    tracks = [{"audio_id": a["id"]}, {"audio_id": b["id"]}]
    for target in (theirs, pid):
        assert_problem(
            api.post(
                "/api/audio/mix",
                headers=stranger.headers,
                json={"project_id": target, "tracks": tracks},
            ),
            404,
        )
    # Tracks of another project of the owner's: 404 too.
    other = project(api, owner)
    assert_problem(
        api.post(
            "/api/audio/mix", headers=owner.headers, json={"project_id": other, "tracks": tracks}
        ),
        404,
        "audio_not_found",
    )
    empty = project(api, owner)
    bad = [
        {"project_id": empty, "audio_type": "voice", "text": "x" * 5001},
        {"project_id": empty, "audio_type": "music", "music": {"genre": "polka"}},
    ]
    for body in bad:
        assert_problem(api.post("/api/audio/generate", headers=owner.headers, json=body), 422)
    mixes = [
        {"project_id": pid, "tracks": [{"audio_id": a["id"]}]},
        {
            "project_id": pid,
            "tracks": [{"audio_id": a["id"]}, {"audio_id": b["id"], "start_time_seconds": -1}],
        },
    ]
    for body in mixes:
        assert_problem(api.post("/api/audio/mix", headers=owner.headers, json=body), 422)
    listed = api.get(f"/api/projects/{empty}/audio", headers=owner.headers).json()
    assert listed["total"] == 0
    listed = api.get(f"/api/projects/{pid}/audio", headers=owner.headers).json()
    assert {r["id"] for r in listed["audio_files"]} == {a["id"], b["id"]}


def test_automix_stores_a_configuration_that_export_mix_renders(api: httpx.Client, make_user: Any):
    user = make_user()
    pid = project(api, user)
    voice = render(
        api,
        user,
        {
            "project_id": pid,
            "audio_type": "voice",
            "text": "Run. Now.",
            "voice": {"language": "en-US"},
        },
    )
    music = render(
        api,
        user,
        {
            "project_id": pid,
            "audio_type": "music",
            "duration_seconds": 4,
            "music": {"action": "chase"},
        },
    )
    impact = render(
        api,
        user,
        {
            "project_id": pid,
            "audio_type": "sfx",
            "duration_seconds": 2,
            "sfx": {"action": "explosion"},
        },
    )
    answer = api.post(
        "/api/audio/automix",
        headers=user.headers,
        json={"project_id": pid, "track_ids": [music["id"], impact["id"], voice["id"]]},
    )
    assert answer.status_code == 200, answer.text
    configuration = answer.json()["configuration"]
    order = [t["audio_id"] for t in configuration["tracks"]]
    assert order == [voice["id"], impact["id"], music["id"]]  # by priority
    levels = {t["audio_id"]: t["volume_db"] for t in configuration["tracks"]}
    assert levels == {voice["id"]: 0, impact["id"]: 4, music["id"]: -6}
    assert configuration["ducking"]["enabled"] is True
    assert set(configuration["ducking"]["ducked"]) == {impact["id"], music["id"]}
    impact_effects = next(t for t in configuration["tracks"] if t["audio_id"] == impact["id"])
    assert {"type": "mono_below", "frequency_hz": 120} in impact_effects["effects"]
    assert any("above 0 dB" in w for w in answer.json()["warnings"])
    exported = queue(
        api,
        user,
        "export-mix",
        {"project_id": pid, "configuration_id": configuration["id"], "format": "flac"},
    )
    done = wait(api, user, exported["id"])
    assert done["status"] == "completed", done
    samples, rate = decode(fetch(api, done))
    assert samples.shape[0] == pytest.approx(4 * rate, abs=2)  # the longest track
    assert np.abs(samples).max() <= 10 ** (-1 / 20) + 1e-3


# -- files ----------------------------------------------------------------------------------


def test_every_format_decodes_and_downloads_take_ranges(api: httpx.Client, make_user: Any):
    user = make_user()
    pid = project(api, user)
    for fmt, content_type in (
        ("wav", "audio/wav"),
        ("flac", "audio/flac"),
        ("mp3", "audio/mpeg"),
        ("ogg", "audio/ogg"),
    ):
        record = render(
            api,
            user,
            {
                "project_id": pid,
                "audio_type": "ambient",
                "format": fmt,
                "duration_seconds": 2,
                "sfx": {"environment": "rain"},
            },
        )
        data = fetch(api, record)
        samples, rate = decode(data)
        assert rate == 48000
        assert samples.shape[1] == 2
        assert samples.shape[0] / rate == pytest.approx(2, abs=0.06)
        assert rms_db(samples) > -60
        answer = api.get(record["file_url"], headers={"Range": "bytes=10-19"})
        assert answer.status_code == 206
        assert answer.headers["content-type"].startswith(content_type)
        assert answer.content == data[10:20]
        beyond = api.get(record["file_url"], headers={"Range": f"bytes={len(data) + 5}-"})
        assert beyond.status_code == 416
        # HEAD through the gateway: the file's size and tag, not its bytes.
        head = api.head(record["file_url"])
        assert head.status_code == 200
        assert head.content == b""
        assert head.headers["content-length"] == str(len(data))
        assert head.headers["etag"] == answer.headers["etag"]


def test_waveform_peaks_are_the_samples(api: httpx.Client, make_user: Any):
    user = make_user()
    pid = project(api, user)
    record = render(
        api,
        user,
        {
            "project_id": pid,
            "audio_type": "sfx",
            "duration_seconds": 3,
            "sfx": {"action": "impact"},
        },
    )
    samples, _rate = decode(fetch(api, record))
    answer = api.get(
        f"/api/audio/{record['id']}/waveform",
        params={"samples_per_second": 20, "max_points": 1000},
        headers=user.headers,
    )
    assert answer.status_code == 200, answer.text
    wave = answer.json()
    assert wave["sample_count"] == len(wave["waveform"]) == 60
    mono = samples.mean(axis=1)
    buckets = np.array_split(mono, 60)
    expected = [float(b[np.argmax(np.abs(b))]) for b in buckets]
    assert np.allclose(wave["waveform"], expected, atol=2e-3)
    assert wave["peak_amplitude"] == pytest.approx(np.abs(mono).max(), abs=2e-3)
    capped = api.get(
        f"/api/audio/{record['id']}/waveform",
        params={"samples_per_second": 1000, "max_points": 100},
        headers=user.headers,
    ).json()
    assert len(capped["waveform"]) == 100
    peaks = api.get(
        f"/api/audio/{record['id']}/waveform",
        params={"format": "audiowaveform", "max_points": 50},
        headers=user.headers,
    ).json()
    assert peaks["version"] == 2
    assert peaks["channels"] == 1
    assert len(peaks["data"]) == 2 * peaks["length"] <= 100


# -- access and lifecycle ---------------------------------------------------------------------


def test_another_user_gets_404_on_every_audio_route(api: httpx.Client, make_user: Any):
    owner, stranger = make_user(), make_user()
    pid = project(api, owner)
    record = render(api, owner, {"project_id": pid, "audio_type": "sfx", "duration_seconds": 1})
    rid, job = record["id"], record["job_id"]
    routes = [
        ("GET", f"/api/audio/{rid}"),
        ("DELETE", f"/api/audio/{rid}"),
        ("GET", f"/api/audio/{rid}/download"),
        ("GET", f"/api/audio/{rid}/waveform"),
        ("GET", f"/api/projects/{pid}/audio"),
        ("GET", f"/api/audio/jobs/{job}"),
        ("POST", f"/api/audio/jobs/{job}/cancel"),
        ("POST", f"/api/audio/jobs/{job}/stream-ticket"),
        ("GET", f"/api/audio/jobs/{job}/stream"),
    ]
    for method, path in routes:
        assert_problem(api.request(method, path, headers=stranger.headers), 404)
    bodies = {
        "generate": {"project_id": pid, "audio_type": "sfx"},
        "generate-multitrack": {"project_id": pid, "profile_type": "sfx"},
        "build-profile": {"project_id": pid, "profile_type": "music"},
        "automix": {"project_id": pid, "track_ids": [rid]},
        "export-mix": {"project_id": pid, "configuration_id": str(uuid.uuid4())},
        "mix": {"project_id": pid, "tracks": [{"audio_id": rid}, {"audio_id": rid}]},
    }
    for path, body in bodies.items():
        answer = api.post(f"/api/audio/{path}", headers=stranger.headers, json=body)
        assert answer.status_code in (404, 422), (path, answer.text)
        if path != "mix":  # a track named twice is refused before anything is looked up
            assert_problem(answer, 404)
    # The owner still has it all.
    assert api.get(f"/api/audio/{rid}", headers=owner.headers).json()["status"] == "completed"


def test_delete_and_project_delete_remove_records_and_files(
    stack: Stack, api: httpx.Client, make_user: Any
):
    user = make_user()
    pid = project(api, user)
    body = {"project_id": pid, "audio_type": "sfx", "duration_seconds": 1}
    one, two = render(api, user, body), render(api, user, {**body, "seed": 1})
    keys = [f"audio/{r['id']}.wav" for r in (one, two)]
    assert all(asyncio.run(_stored(stack.nats_url, key)) for key in keys)
    assert api.delete(f"/api/audio/{one['id']}", headers=user.headers).status_code == 204
    assert_problem(api.get(f"/api/audio/{one['id']}", headers=user.headers), 404)
    assert not asyncio.run(_stored(stack.nats_url, keys[0]))
    settle(
        lambda: bool(asyncio.run(_events(stack.nats_url, "audio.deleted", one["id"]))),
        within=10,
        what="audio.deleted published",
    )
    assert api.delete(f"/api/projects/{pid}", headers=user.headers).status_code == 204
    settle(
        lambda: not asyncio.run(_stored(stack.nats_url, keys[1])),
        within=15,
        what="the project's files are deleted",
    )
    # The bytes go inside the transaction that deletes the rows, a moment before its commit.
    settle_gone(api, f"/api/audio/{two['id']}", user.headers, within=5, what="the record gone too")


# -- jobs -----------------------------------------------------------------------------------


def test_cancel_stops_a_long_music_render_and_stores_nothing(
    stack: Stack, api: httpx.Client, make_user: Any
):
    user = make_user()
    pid = project(api, user)
    record = queue(
        api, user, "generate", {"project_id": pid, "audio_type": "music", "duration_seconds": 600}
    )
    settle(
        lambda: (
            api.get(f"/api/audio/jobs/{record['job_id']}", headers=user.headers).json()["progress"]
            >= 15
        ),
        within=60,
        what="the render is under way",
    )
    cancelled = api.post(f"/api/audio/jobs/{record['job_id']}/cancel", headers=user.headers)
    assert cancelled.status_code == 200, cancelled.text
    settle(
        lambda: (
            api.get(f"/api/audio/{record['id']}", headers=user.headers).json()["status"]
            == "cancelled"
        ),
        within=5,
        what="cancelled",
    )
    time.sleep(3)  # longer than a block: a render that went on would store now
    after = api.get(f"/api/audio/{record['id']}", headers=user.headers).json()
    assert after["status"] == "cancelled"
    assert after["file_url"] is None
    assert not asyncio.run(_stored(stack.nats_url, f"audio/{record['id']}.wav"))


def test_a_killed_worker_does_not_lose_the_render_or_complete_it_twice(
    stack: Stack, api: httpx.Client, make_user: Any
):
    user = make_user()
    pid = project(api, user)
    record = queue(
        api,
        user,
        "generate",
        {"project_id": pid, "audio_type": "music", "duration_seconds": 90, "seed": 11},
    )
    settle(
        lambda: (
            api.get(f"/api/audio/jobs/{record['job_id']}", headers=user.headers).json()["progress"]
            >= 15
        ),
        within=60,
        what="the render is under way",
    )
    stack.stop_worker("audio", kill=True)  # SIGKILL mid-render
    try:
        job = api.get(f"/api/audio/jobs/{record['job_id']}", headers=user.headers).json()
        assert job["status"] == "processing"
    finally:
        stack.start_worker("audio")
    done = wait(api, user, record["id"], within=180)
    assert done["status"] == "completed", done
    samples, rate = decode(fetch(api, done))
    assert samples.shape[0] == 90 * rate
    settle(
        lambda: len(asyncio.run(_events(stack.nats_url, "audio.generated", record["id"]))) >= 1,
        within=10,
        what="audio.generated published",
    )
    assert len(asyncio.run(_events(stack.nats_url, "audio.generated", record["id"]))) == 1
