"""The service's timeline as OpenTimelineIO JSON (``otio_json``), both ways.

Mapping:

* timeline → ``otio.schema.Timeline`` (``global_start_time`` 0 at the timeline's fps); every
  track → a ``Track`` (kind Audio for ``audio``, Video for ``video``/``overlay``/``text``),
  in ascending ``order`` (the first is at the bottom of the OTIO stack);
* clips are placed one after the other, a ``Gap`` filling any space before a clip; a clip's
  ``source_range`` is ``in_point`` .. ``out_point``; times are ``RationalTime(seconds * fps,
  fps)`` (not rounded to whole frames, so nothing moves on a round trip);
* media → ``ExternalReference(target_url=media_url or "storycore:media/<media_id>")``; a text
  clip → ``GeneratorReference(generator_kind="storycore.text", parameters={"text": ...})``;
  a clip with neither → ``MissingReference``;
* a clip's ``transition_in`` {type, duration} → a ``Transition`` just before the clip, centred
  on the cut: ``in_offset`` = ``out_offset`` = duration / 2 (``SMPTE_Dissolve`` for dissolve,
  ``Custom_Transition`` for the other types, the StoryCore type in its metadata). A transition
  with nothing before it on the track (a clip at 0) or of type ``cut``/duration 0 is kept only
  in the clip's metadata;
* everything else of the timeline, each track and each clip (ids, kind, order, muted, volume,
  ken_burns, opacity, fades, text, ...) is in ``metadata["storycore"]``.

``from_otio`` reads the structure back (the OTIO items win over the metadata for times and
transitions, so edits made in another tool count) and fills ids, kinds and the rest from the
metadata when present, else from the OTIO objects (new uuid4 ids).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Final

import opentimelineio as otio
from opentimelineio import opentime, schema

__all__ = ["from_otio", "to_otio"]

TEXT_GENERATOR: Final = "storycore.text"
MEDIA_SCHEME: Final = "storycore:media/"
TRACK_KINDS: Final = ("video", "audio", "text", "overlay")

_KEY: Final = "storycore"
_TOLERANCE: Final = 1e-6
_TIMELINE_STRUCTURE: Final = frozenset({"name", "fps", "tracks"})
_TRACK_STRUCTURE: Final = frozenset({"name", "clips"})
_CLIP_STRUCTURE: Final = frozenset(
    {"start", "in_point", "out_point", "duration", "media_url", "transition_in"}
)
_CLIP_DEFAULTS: Final[dict[str, Any]] = {
    "media_id": None,
    "media_name": None,
    "media_url": None,
    "text": None,
    "transition_in": None,
    "ken_burns": None,
    "opacity": 1.0,
    "volume": 1.0,
    "fade_in": 0.0,
    "fade_out": 0.0,
}


# --- helpers ----------------------------------------------------------------------------------


def _metadata_value(value: Any) -> Any:
    """A value OTIO metadata can hold (JSON-like); anything else becomes its string."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Mapping):
        return {str(k): _metadata_value(v) for k, v in value.items()}
    if isinstance(value, Sequence | set | frozenset):
        return [_metadata_value(v) for v in value]
    return str(value)


def _plain(value: Any) -> Any:
    """OTIO's AnyDictionary/AnyVector as plain dicts and lists."""
    if isinstance(value, str | bytes):
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Sequence):
        return [_plain(v) for v in value]
    return value


def _ours(item: Any) -> dict[str, Any]:
    """The ``storycore`` metadata of an OTIO object, as a plain dict."""
    found = item.metadata.get(_KEY)
    return _plain(found) if isinstance(found, Mapping) else {}


def _time(seconds: float, fps: float) -> opentime.RationalTime:
    return opentime.RationalTime(seconds * fps, fps)


def _range(start: float, duration: float, fps: float) -> opentime.TimeRange:
    return opentime.TimeRange(start_time=_time(start, fps), duration=_time(duration, fps))


def _seconds(time: opentime.RationalTime) -> float:
    return float(time.to_seconds())


def _r(seconds: float) -> float:
    return round(seconds, 6) + 0.0  # + 0.0 turns -0.0 into 0.0


# --- to OTIO ----------------------------------------------------------------------------------


def _reference(clip: Mapping[str, Any]) -> Any:
    media_id, url, text = clip.get("media_id"), clip.get("media_url"), clip.get("text")
    if url or media_id:
        return schema.ExternalReference(target_url=str(url or f"{MEDIA_SCHEME}{media_id}"))
    if text is not None:
        return schema.GeneratorReference(
            name="text", generator_kind=TEXT_GENERATOR, parameters={"text": str(text)}
        )
    return schema.MissingReference()


def _transition(kind: str, duration: float, fps: float) -> Any:
    half = _time(duration / 2, fps)
    transition = schema.Transition(
        name=kind,
        transition_type=(
            schema.TransitionTypes.SMPTE_Dissolve
            if kind == "dissolve"
            else schema.TransitionTypes.Custom
        ),
        in_offset=half,
        out_offset=half,
    )
    transition.metadata[_KEY] = {"type": kind}
    return transition


def _track_to_otio(track: Mapping[str, Any], fps: float) -> Any:
    kind = track.get("kind")
    if kind not in TRACK_KINDS:
        raise ValueError(f"track {track.get('id')}: unknown kind {kind!r}")
    result = schema.Track(
        name=str(track.get("name") or ""),
        kind=schema.TrackKind.Audio if kind == "audio" else schema.TrackKind.Video,
    )
    result.enabled = not track.get("muted", False)
    result.metadata[_KEY] = _metadata_value(
        {k: v for k, v in track.items() if k not in _TRACK_STRUCTURE}
    )
    position = 0.0
    for clip in sorted(track.get("clips") or [], key=lambda c: float(c["start"])):
        name = clip.get("id")
        start, in_point = float(clip["start"]), float(clip["in_point"])
        length = float(clip["out_point"]) - in_point
        if length <= 0:
            raise ValueError(f"clip {name}: out_point must be after in_point")
        if abs(float(clip.get("duration", length)) - length) > _TOLERANCE:
            raise ValueError(f"clip {name}: duration is not out_point - in_point")
        space = start - position
        if space < -_TOLERANCE:
            raise ValueError(f"clip {name} overlaps the previous clip on track {track.get('id')}")
        if space > 1e-9:
            result.append(schema.Gap(source_range=_range(0.0, space, fps)))
            position = start
        extra = {k: v for k, v in clip.items() if k not in _CLIP_STRUCTURE}
        transition = clip.get("transition_in")
        if transition:
            kind_in, length_in = str(transition.get("type")), float(transition.get("duration", 0))
            if len(result) and kind_in != "cut" and length_in > 0:
                result.append(_transition(kind_in, length_in, fps))
            else:
                extra["transition_in"] = transition
        item = schema.Clip(
            name=str(clip.get("media_name") or clip.get("text") or name or "clip")[:200],
            media_reference=_reference(clip),
            source_range=_range(in_point, length, fps),
        )
        item.metadata[_KEY] = _metadata_value(extra)
        result.append(item)
        position += length
    return result


def to_otio(timeline: Mapping[str, Any]) -> str:
    """The timeline (API shape, seconds as floats) as an ``otio_json`` string."""
    fps = float(timeline["fps"])
    if not fps > 0:
        raise ValueError("fps must be positive")
    result = schema.Timeline(
        name=str(timeline.get("name") or ""), global_start_time=opentime.RationalTime(0, fps)
    )
    result.metadata[_KEY] = _metadata_value(
        {k: v for k, v in timeline.items() if k not in _TIMELINE_STRUCTURE} | {"fps": fps}
    )
    tracks = sorted(timeline.get("tracks") or [], key=lambda t: float(t.get("order", 0)))
    for track in tracks:
        result.tracks.append(_track_to_otio(track, fps))
    return str(otio.adapters.write_to_string(result, "otio_json"))


# --- from OTIO --------------------------------------------------------------------------------


def _rate(timeline: Any, meta: Mapping[str, Any]) -> float:
    """The fps: from our metadata, else the global start time's rate, else the first clip's."""
    if isinstance(meta.get("fps"), int | float) and meta["fps"] > 0:
        return float(meta["fps"])
    if timeline.global_start_time is not None:
        return float(timeline.global_start_time.rate)
    for clip in timeline.find_clips():
        if clip.source_range is not None:
            return float(clip.source_range.duration.rate)
    return 24.0


def _transition_in(item: Any) -> dict[str, Any]:
    kind = _ours(item).get("type")
    if not isinstance(kind, str) or not kind:
        kind = "dissolve"  # SMPTE_Dissolve, and the nearest thing for a foreign type
    duration = _seconds(item.in_offset) + _seconds(item.out_offset)
    return {"type": kind, "duration": _r(duration)}


def _media(reference: Any, meta: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(media_id, media_url) from the clip's reference and metadata."""
    if not isinstance(reference, schema.ExternalReference) or not reference.target_url:
        return meta.get("media_id"), None
    url = str(reference.target_url)
    if url.startswith(MEDIA_SCHEME):
        return url.removeprefix(MEDIA_SCHEME) or meta.get("media_id"), None
    return meta.get("media_id"), url


def _clip_from_otio(item: Any, start: float, transition: Any) -> dict[str, Any]:
    meta = _ours(item)
    try:
        trimmed = item.trimmed_range()
    except Exception as exc:  # OTIO raises its own errors for a clip without any range
        raise ValueError(f"clip {item.name!r} has no source range") from exc
    in_point, duration = _seconds(trimmed.start_time), _seconds(trimmed.duration)
    media_id, media_url = _media(item.media_reference, meta)
    text = meta.get("text")
    reference = item.media_reference
    if text is None and isinstance(reference, schema.GeneratorReference):
        found = reference.parameters.get("text")
        text = str(found) if found is not None else None
    clip = _CLIP_DEFAULTS | meta
    clip |= {
        "id": str(meta.get("id") or uuid.uuid4()),
        "media_id": media_id,
        "media_url": media_url,
        "media_name": meta.get("media_name", item.name or None),
        "text": text,
        "start": _r(start),
        "in_point": _r(in_point),
        "out_point": _r(in_point + duration),
        "duration": _r(duration),
        "transition_in": (
            _transition_in(transition) if transition is not None else meta.get("transition_in")
        ),
    }
    return clip


def _track_from_otio(track: Any, index: int) -> dict[str, Any]:
    meta = _ours(track)
    kind = meta.get("kind")
    if kind not in TRACK_KINDS:
        kind = "audio" if track.kind == schema.TrackKind.Audio else "video"
    clips: list[dict[str, Any]] = []
    position = 0.0
    pending = None
    for item in track:
        if isinstance(item, schema.Transition):
            pending = item
        elif isinstance(item, schema.Clip):
            clip = _clip_from_otio(item, position, pending)
            clips.append(clip)
            position += clip["duration"]
            pending = None
        elif isinstance(item, schema.Gap):
            position += _seconds(item.duration())
            pending = None  # a transition into a gap has no StoryCore equivalent
        else:
            raise ValueError(
                f"track {track.name!r}: nested {type(item).__name__} items are not supported"
            )
    return {
        "volume": 1.0,
        **meta,
        "id": str(meta.get("id") or uuid.uuid4()),
        "kind": kind,
        "name": track.name,
        "order": meta["order"] if isinstance(meta.get("order"), int) else index,
        "muted": bool(meta["muted"]) if "muted" in meta else not track.enabled,
        "clips": clips,
    }


def from_otio(data: str) -> dict[str, Any]:
    """An ``otio_json`` string back to the timeline dict; ValueError when it is not one."""
    try:
        document = otio.adapters.read_from_string(data, "otio_json")
    except Exception as exc:  # the JSON reader raises ValueError, schema errors vary
        raise ValueError(f"not OpenTimelineIO JSON: {exc}") from exc
    if not isinstance(document, schema.Timeline):
        raise ValueError(
            f"the OpenTimelineIO document is a {type(document).__name__}, not a Timeline"
        )
    meta = _ours(document)
    tracks = []
    for index, track in enumerate(document.tracks):
        if not isinstance(track, schema.Track):
            raise ValueError(f"item {index} of the timeline's stack is not a track")
        tracks.append(_track_from_otio(track, index))
    return {
        "width": None,
        "height": None,
        **meta,
        "id": str(meta.get("id") or uuid.uuid4()),
        "name": document.name,
        "fps": _rate(document, meta),
        "tracks": tracks,
    }
