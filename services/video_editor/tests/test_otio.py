"""The timeline as OpenTimelineIO JSON: structure, round trip, foreign files, refusals."""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any

import opentimelineio as otio
import pytest
from opentimelineio import opentime, schema

from video_editor.otio_io import from_otio, to_otio

KEN_BURNS = {"from_rect": [0.0, 0.0, 1.0, 1.0], "to_rect": [0.1, 0.1, 0.8, 0.8]}


def clip(
    clip_id: str, start: float, in_point: float, out_point: float, **extra: Any
) -> dict[str, Any]:
    return {
        "id": clip_id,
        "media_id": None,
        "media_name": None,
        "media_url": None,
        "text": None,
        "start": start,
        "in_point": in_point,
        "out_point": out_point,
        "duration": round(out_point - in_point, 9),
        "transition_in": None,
        "ken_burns": None,
        "opacity": 1.0,
        "volume": 1.0,
        "fade_in": 0.0,
        "fade_out": 0.0,
    } | extra


def timeline() -> dict[str, Any]:
    return {
        "id": "tl-1",
        "project_id": "p-1",
        "name": "Storyboard",
        "fps": 25.0,
        "width": 1920,
        "height": 1080,
        "tracks": [
            {
                "id": "t-audio",
                "kind": "audio",
                "name": "Music",
                "order": 3,
                "muted": False,
                "volume": 0.8,
                "clips": [
                    clip(
                        "a1",
                        0.25,
                        10.0,
                        17.5,
                        media_id="m-song",
                        media_name="song.mp3",
                        volume=0.7,
                        fade_out=1.5,
                    ),
                ],
            },
            {
                "id": "t-video",
                "kind": "video",
                "name": "Main",
                "order": 0,
                "muted": False,
                "volume": 1.0,
                "clips": [
                    # listed out of order on purpose
                    clip(
                        "v3",
                        5.0,
                        0.0,
                        2.2,
                        media_id="m-3",
                        transition_in={"type": "dissolve", "duration": 0.5},
                    ),
                    clip(
                        "v1",
                        0.0,
                        1.0,
                        3.0,
                        media_id="m-1",
                        media_name="shot 1.png",
                        ken_burns=KEN_BURNS,
                        transition_in={"type": "fade_black", "duration": 0.4},
                    ),
                    clip(
                        "v2",
                        2.0,
                        0.5,
                        3.0,
                        media_id="m-2",
                        media_url="https://cdn.example/m-2.mp4",
                        transition_in={"type": "cut", "duration": 0.0},
                    ),
                    clip(
                        "v4",
                        7.2,
                        0.0,
                        1.0,
                        media_id="m-4",
                        transition_in={"type": "wipe_left", "duration": 0.3},
                    ),
                ],
            },
            {
                "id": "t-text",
                "kind": "text",
                "name": "Titles",
                "order": 1,
                "muted": False,
                "volume": 1.0,
                "clips": [
                    clip("x1", 1.0, 0.0, 2.0, text="Chapter one", fade_in=0.25, opacity=0.9),
                    clip(
                        "x2",
                        4.0,
                        0.0,
                        1.0,
                        text="The end",
                        transition_in={"type": "dissolve", "duration": 0.5},
                    ),
                ],
            },
            {
                "id": "t-overlay",
                "kind": "overlay",
                "name": "Logo",
                "order": 2,
                "muted": True,
                "volume": 1.0,
                "clips": [],
            },
        ],
    }


def by_id(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["id"]: item for item in items}


def test_the_json_is_a_valid_otio_timeline() -> None:
    document = otio.adapters.read_from_string(to_otio(timeline()), "otio_json")

    assert isinstance(document, schema.Timeline)
    assert document.name == "Storyboard"
    assert [t.name for t in document.tracks] == ["Main", "Titles", "Logo", "Music"]
    assert [t.kind for t in document.tracks] == [
        schema.TrackKind.Video,
        schema.TrackKind.Video,
        schema.TrackKind.Video,
        schema.TrackKind.Audio,
    ]
    assert document.tracks[2].enabled is False  # the muted overlay

    main = document.tracks[0]
    assert [type(item).__name__ for item in main] == [
        "Clip",
        "Clip",
        "Gap",
        "Transition",
        "Clip",
        "Transition",
        "Clip",
    ]
    v1, v2, gap, dissolve, v3, wipe, v4 = main
    assert v1.source_range == opentime.TimeRange(
        opentime.RationalTime(25, 25), opentime.RationalTime(50, 25)
    )
    assert v1.media_reference.target_url == "storycore:media/m-1"
    assert v2.media_reference.target_url == "https://cdn.example/m-2.mp4"
    assert gap.duration().to_seconds() == pytest.approx(0.5)  # v2 ends at 4.5, v3 starts at 5
    assert dissolve.transition_type == schema.TransitionTypes.SMPTE_Dissolve
    assert dissolve.in_offset.to_seconds() == pytest.approx(0.25)
    assert dissolve.out_offset.to_seconds() == pytest.approx(0.25)
    assert wipe.transition_type == schema.TransitionTypes.Custom
    assert wipe.metadata["storycore"]["type"] == "wipe_left"
    assert main.range_of_child(v3).start_time.to_seconds() == pytest.approx(5.0)
    assert main.range_of_child(v4).start_time.to_seconds() == pytest.approx(7.2)
    assert v1.metadata["storycore"]["id"] == "v1"

    title = document.tracks[1][1]
    assert isinstance(title.media_reference, schema.GeneratorReference)
    assert title.media_reference.parameters["text"] == "Chapter one"
    assert main.duration().to_seconds() == pytest.approx(8.2)


def test_round_trip_keeps_tracks_clips_times_and_transitions() -> None:
    original = timeline()
    back = from_otio(to_otio(copy.deepcopy(original)))

    assert (back["id"], back["name"], back["fps"], back["width"], back["height"]) == (
        "tl-1",
        "Storyboard",
        25.0,
        1920,
        1080,
    )
    assert back["project_id"] == "p-1"
    tracks = by_id(back["tracks"])
    assert set(tracks) == {t["id"] for t in original["tracks"]}
    for track in original["tracks"]:
        found = tracks[track["id"]]
        for key in ("kind", "order", "name", "muted", "volume"):
            assert found[key] == track[key], (track["id"], key)
        clips = by_id(found["clips"])
        assert set(clips) == {c["id"] for c in track["clips"]}
        for expected in track["clips"]:
            got = clips[expected["id"]]
            for key in ("start", "in_point", "out_point", "duration"):
                assert got[key] == pytest.approx(expected[key], abs=1e-6), (expected["id"], key)
            for key in (
                "media_id",
                "media_name",
                "text",
                "transition_in",
                "ken_burns",
                "opacity",
                "volume",
                "fade_in",
                "fade_out",
                "media_url",
            ):
                assert got[key] == expected[key], (expected["id"], key)
    # clips come back in timeline order
    assert [c["id"] for c in tracks["t-video"]["clips"]] == ["v1", "v2", "v3", "v4"]


def test_a_second_round_trip_is_stable() -> None:
    once = from_otio(to_otio(timeline()))
    assert from_otio(to_otio(once)) == once


def test_fractional_frame_rates_and_odd_times_survive() -> None:
    tl = {
        "id": "t",
        "name": "ntsc",
        "fps": 29.97,
        "width": 1280,
        "height": 720,
        "tracks": [
            {
                "id": "v",
                "kind": "video",
                "name": "V",
                "order": 0,
                "muted": False,
                "volume": 1.0,
                "clips": [
                    clip("c1", 0.123457, 0.333333, 1.777777, media_id="m"),
                    clip(
                        "c2",
                        3.14159,
                        2.0,
                        2.718281,
                        media_id="m",
                        transition_in={"type": "dissolve", "duration": 0.333},
                    ),
                ],
            },
        ],
    }
    back = by_id(from_otio(to_otio(tl))["tracks"][0]["clips"])
    assert back["c1"]["start"] == 0.123457
    assert back["c1"]["in_point"] == 0.333333
    assert back["c1"]["out_point"] == 1.777777
    assert back["c2"]["start"] == 3.14159
    assert back["c2"]["duration"] == 0.718281
    assert back["c2"]["transition_in"] == {"type": "dissolve", "duration": 0.333}


def test_a_foreign_otio_file_is_read() -> None:
    """A timeline made by another tool: no StoryCore metadata at all."""
    rate = 24
    document = schema.Timeline(name="From Resolve")
    video = schema.Track(name="V1", kind=schema.TrackKind.Video)
    audio = schema.Track(name="A1", kind=schema.TrackKind.Audio)
    document.tracks.extend([video, audio])

    def span(start: float, frames: float) -> opentime.TimeRange:
        return opentime.TimeRange(
            opentime.RationalTime(start, rate), opentime.RationalTime(frames, rate)
        )

    video.append(schema.Gap(source_range=span(0, 12)))
    video.append(
        schema.Clip(
            name="A001.mov",
            media_reference=schema.ExternalReference(target_url="file:///footage/A001.mov"),
            source_range=span(100, 48),
        )
    )
    video.append(
        schema.Transition(
            transition_type=schema.TransitionTypes.SMPTE_Dissolve,
            in_offset=opentime.RationalTime(6, rate),
            out_offset=opentime.RationalTime(6, rate),
        )
    )
    video.append(
        schema.Clip(
            name="ours",
            media_reference=schema.ExternalReference(target_url="storycore:media/abc-123"),
            source_range=span(0, 24),
        )
    )
    audio.append(schema.Clip(name="nothing", source_range=span(0, 36)))

    back = from_otio(otio.adapters.write_to_string(document, "otio_json"))

    assert back["name"] == "From Resolve"
    assert back["fps"] == 24.0
    assert uuid.UUID(back["id"]).version == 4
    v1, a1 = back["tracks"]
    assert (v1["kind"], v1["name"], v1["order"], v1["muted"]) == ("video", "V1", 0, False)
    assert (a1["kind"], a1["name"], a1["order"]) == ("audio", "A1", 1)
    first, second = v1["clips"]
    assert uuid.UUID(first["id"]).version == 4
    assert (first["start"], first["in_point"], first["out_point"], first["duration"]) == (
        0.5,
        4.166667,
        6.166667,
        2.0,
    )
    assert (first["media_id"], first["media_url"], first["media_name"]) == (
        None,
        "file:///footage/A001.mov",
        "A001.mov",
    )
    assert first["transition_in"] is None
    assert (second["start"], second["duration"]) == (2.5, 1.0)
    assert (second["media_id"], second["media_url"]) == ("abc-123", None)
    assert second["transition_in"] == {"type": "dissolve", "duration": 0.5}
    assert (second["opacity"], second["volume"], second["fade_in"]) == (1.0, 1.0, 0.0)
    assert a1["clips"][0]["media_id"] is None
    assert a1["clips"][0]["duration"] == 1.5


@pytest.mark.parametrize(
    "data",
    [
        "",
        "not json at all",
        "{",
        "[1, 2, 3]",
        '{"a": 1}',
        '{"OTIO_SCHEMA": "Nonsense.1"}',
        '{"OTIO_SCHEMA": "Clip.2", "name": "a lone clip"}',
        json.dumps({"OTIO_SCHEMA": "Timeline.1", "tracks": 5}),
    ],
)
def test_garbage_is_a_value_error(data: str) -> None:
    with pytest.raises(ValueError, match=r"OpenTimelineIO|Timeline"):
        from_otio(data)


def test_nested_stacks_are_refused() -> None:
    document = schema.Timeline(name="nested")
    track = schema.Track(name="V")
    track.append(schema.Stack(name="compound"))
    document.tracks.append(track)
    with pytest.raises(ValueError, match="nested Stack"):
        from_otio(otio.adapters.write_to_string(document, "otio_json"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"start": 1.5}, "overlaps"),
        ({"out_point": 1.0, "in_point": 1.0, "duration": 0.0}, "out_point must be after"),
        ({"duration": 7.0}, "duration is not out_point - in_point"),
    ],
)
def test_inconsistent_clips_are_refused(change: dict[str, Any], message: str) -> None:
    tl = timeline()
    video = next(t for t in tl["tracks"] if t["id"] == "t-video")
    next(c for c in video["clips"] if c["id"] == "v2").update(change)
    with pytest.raises(ValueError, match=message):
        to_otio(tl)


def test_unknown_track_kind_is_refused() -> None:
    tl = timeline()
    tl["tracks"][0]["kind"] = "subtitles"
    with pytest.raises(ValueError, match="unknown kind"):
        to_otio(tl)
