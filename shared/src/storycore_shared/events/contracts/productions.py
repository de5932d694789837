"""Commands of the production saga (story -> film). Only the projects service publishes them.

A production is a saga owned by the projects service (ARCHITECTURE §6). It issues its requests
as commands on the ``PRODUCTIONS`` stream, through its outbox, and advances on the events the
other services publish. Every command carries the verified owner id of the request that started
the production: no user token outlives that request, and a service acts on a command only for
the owner it names (its artefacts are that owner's, and the ids it is asked to use are checked
against that owner).

Which service may publish which command, and who acts on it:

- ``production.scenario.requested``: projects -> llm (``llm-productions``); answered by
  ``scenario.planned`` or ``scenario.plan_failed``;
- ``production.storyboard.requested``: projects -> sequences (``sequences-productions``);
  answered by ``sequence.generated`` or ``sequence.failed``;
- ``production.audio.requested`` and ``production.mix.requested``: projects -> audio
  (``audio-productions``); answered by ``audio.generated`` / ``audio.mixed`` or ``audio.failed``;
- ``production.film.requested``: projects -> video editor (``video-editor-productions``);
  answered by ``video.exported`` or ``video.export.failed``;
- ``production.cancelled``: projects -> sequences, audio and the video editor, which cancel the
  named jobs that are theirs and the owner's.

Ids are deterministic (``uuid5(production_id, step)``) and chosen by the saga, which issues
each command once, in the transaction that records its step. The outbox relay may publish that
envelope again (same CloudEvents id: JetStream's duplicate window and the consumers' inboxes
drop it), and every consumer also treats an artefact id it already holds as done, so a command
applied twice creates nothing twice.
"""

from __future__ import annotations

import uuid
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from storycore_shared.contracts.planning import PlannedShot
from storycore_shared.events.contracts import EventData, StreamSpec

STREAM = StreamSpec(name="PRODUCTIONS", subjects=["production.>"])

Tension = Literal["basse", "moyenne", "elevee", "critique"]


class ProductionCommand(EventData):
    """What every command names: the production, its project and the verified owner."""

    production_id: uuid.UUID
    project_id: uuid.UUID
    owner_id: uuid.UUID


class ScenarioRequested(ProductionCommand):
    """To llm: create the scenario ``scenario_id`` from ``story`` (or, without a story, read the
    owner's existing scenario ``scenario_id``), then plan it into sequences, scenes and shots."""

    event_type: ClassVar[str] = "production.scenario.requested"
    scenario_id: uuid.UUID
    story: str | None = None
    title: str | None = None
    shots_per_scene: int = Field(ge=1, le=8)


class StoryboardRequested(ProductionCommand):
    """To sequences: generate the storyboard ``job_id`` from these planned shots (no planning
    step: the prompts come from the scenario's scenes, characters and locations)."""

    event_type: ClassVar[str] = "production.storyboard.requested"
    job_id: uuid.UUID
    title: str
    prompt: str
    shots: list[PlannedShot] = Field(min_length=1, max_length=50)
    width: int
    height: int
    style: str | None = None


class VoiceChoice(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    language: str = "fr-FR"
    gender: Literal["female", "male", "narrator"] = "narrator"


class MusicChoice(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    genre: str = "drama"
    intensity: str = "medium"


class AudioRequested(ProductionCommand):
    """To audio: render the record ``audio_id`` (its job has the same id): a narration
    (``voice``, reading ``text``) or a music bed (``music``, ``duration_seconds`` long)."""

    event_type: ClassVar[str] = "production.audio.requested"
    audio_id: uuid.UUID
    audio_type: Literal["voice", "music"]
    text: str | None = None
    voice: VoiceChoice | None = None
    music: MusicChoice | None = None
    duration_seconds: float | None = None


class MixTrack(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    audio_id: uuid.UUID
    category: Literal["dialogue", "music"]
    start_time_seconds: float = Field(ge=0)
    # A linear gain (the mix's 0..2): a film lays its music bed well under the narration.
    volume: float = Field(default=1.0, ge=0, le=2)
    # A narration never runs into the next scene: it is cut (with a short fade) at its end.
    trim_end_seconds: float | None = None


class MixRequested(ProductionCommand):
    """To audio: mix ``tracks`` (each the owner's, in the project) into the record ``audio_id``,
    ``duration_seconds`` long, ducking the music under the dialogue, normalised."""

    event_type: ClassVar[str] = "production.mix.requested"
    audio_id: uuid.UUID
    tracks: list[MixTrack] = Field(min_length=1)
    duration_seconds: float = Field(gt=0)


class StoryboardShot(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    index: int
    duration_seconds: float


class StoryboardPart(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    sequence_job_id: uuid.UUID
    shots: list[StoryboardShot]


class FilmRequested(ProductionCommand):
    """To the video editor: build the timeline ``timeline_id`` from the storyboards, in order
    (one video track, each keyframe for its planned duration), with the mix ``audio_id`` on an
    audio track, then queue the export ``export_id``."""

    event_type: ClassVar[str] = "production.film.requested"
    timeline_id: uuid.UUID
    export_id: uuid.UUID
    name: str
    storyboards: list[StoryboardPart] = Field(min_length=1)
    audio_id: uuid.UUID | None = None
    preset: str = "youtube_1080p"
    quality: Literal["draft", "standard", "high"] = "draft"
    width: int | None = None
    height: int | None = None
    fps: int | None = None


class ProductionCancelled(ProductionCommand):
    """To every worker service: the production is cancelled; cancel those of ``jobs`` that are
    yours and the owner's (a job already finished stays as it is)."""

    event_type: ClassVar[str] = "production.cancelled"
    jobs: list[uuid.UUID]


STREAM.register(
    ScenarioRequested,
    StoryboardRequested,
    AudioRequested,
    MixRequested,
    FilmRequested,
    ProductionCancelled,
)
