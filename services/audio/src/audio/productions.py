"""The audio side of the production saga: the ``audio-productions`` consumer.

The projects service (the saga) commands a production's narrations and music bed, then their
mix, and cancels a production's jobs. Every command names the owner the projects service
verified: the records are theirs, created with the id the saga chose (the record's job has the
same id), so a redelivered or re-issued command finds the job and creates nothing twice. These
jobs flow through ``audio.requested`` like the API's; the worker answers ``audio.generated``,
``audio.mixed`` or ``audio.failed`` with their ``job_id``. The kit's consumer runs each handler
in one transaction with its inbox row.

A command that can never succeed (another owner's or a deleted project, a voice without text,
a language no voice speaks, a track that is not the owner's or not rendered) is answered with
``audio.failed`` in the same transaction, so the saga learns why; only transient trouble (the
database) raises, and the consumer retries.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from audio import profiles
from audio.errors import AudioNotFound, AudioNotReady, LanguageNotAvailable
from audio.models import event_tables, job_tables
from audio.profiles import Vocabulary
from audio.schemas import (
    MAX_MIX_SECONDS,
    MAX_RENDER_SECONDS,
    MIN_RENDER_SECONDS,
    GenerateRequest,
    MixTrackIn,
)
from audio.service import SAMPLE_RATE, SOURCE, Audio, MixOutput, voice_language
from storycore_shared.auth import Principal
from storycore_shared.events.contracts import EventData
from storycore_shared.events.contracts.audio import AudioFailed
from storycore_shared.events.contracts.productions import (
    AudioRequested,
    MixRequested,
    MixTrack,
    MusicChoice,
    ProductionCancelled,
    VoiceChoice,
)
from storycore_shared.events.outbox import add_event
from storycore_shared.jobs import repository as jobs_repository
from storycore_shared.jobs.errors import JobNotCancellable, JobNotFound

Handler = Callable[[AsyncSession, Any], Awaitable[None]]

# A narration cut at its scene's end fades out over this long rather than clicking.
CUT_FADE_SECONDS = 0.3
# The saga's track categories as the mix's: dialogue keys the ducking; music is what a music
# record without an action is categorised as (to a mix, only "dialogue or not" matters).
CATEGORIES = {"dialogue": "dialogue", "music": "music_tension"}


class Refused(Exception):
    """The command can never succeed; its message is the ``audio.failed`` event's error."""


def _reason(exc: ValidationError) -> str:
    """A validation error on one line: each problem, with where it is."""
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or 'request'}: {error['msg']}"
        for error in exc.errors()
    )


def _label(vocabulary: Vocabulary, label: str, fallback: str) -> str:
    """``label`` normalised (French and synonyms too), ``fallback`` for an unknown one: a
    production does not fail over the colour of its music."""
    try:
        return vocabulary.normalise(label)
    except ValueError:
        return fallback


def generate_request(command: AudioRequested) -> GenerateRequest:
    """The API's request for ``command``: a raw narration at normal speed, or a music bed
    (an unknown genre is drama, an unknown intensity medium; its length clamped to what a
    render may be). ``Refused`` when it cannot be made valid."""
    values: dict[str, Any]
    if command.audio_type == "voice":
        voice = command.voice or VoiceChoice()
        try:
            language = voice_language(voice.language)
        except LanguageNotAvailable as exc:
            raise Refused(exc.detail) from exc
        values = {
            "text": command.text,
            "voice": {"language": language, "gender": voice.gender, "type": "raw", "speed": 1.0},
        }
    else:
        music = command.music or MusicChoice()
        seconds = command.duration_seconds
        values = {
            "music": {
                "genre": _label(profiles.GENRES, music.genre, "drama"),
                "intensity": _label(profiles.INTENSITIES, music.intensity, "medium"),
            },
            "duration_seconds": None
            if seconds is None
            else min(max(seconds, MIN_RENDER_SECONDS), MAX_RENDER_SECONDS),
        }
    try:
        return GenerateRequest.model_validate(
            {"project_id": command.project_id, "audio_type": command.audio_type, **values}
        )
    except ValidationError as exc:
        raise Refused(_reason(exc)) from exc


def mix_track(track: MixTrack) -> MixTrackIn:
    """The API's mix track for ``track``: at its volume, centred, from its start time; a
    narration cut at ``trim_end_seconds`` fades out. ``Refused`` naming the track when it
    cannot be made valid."""
    try:
        return MixTrackIn.model_validate(
            {
                "audio_id": track.audio_id,
                "volume": track.volume,
                "pan": 0.0,
                "start_time_seconds": track.start_time_seconds,
                "trim_end_seconds": track.trim_end_seconds,
                "fade_out_seconds": 0.0 if track.trim_end_seconds is None else CUT_FADE_SECONDS,
                "category": CATEGORIES[track.category],
            }
        )
    except ValidationError as exc:
        raise Refused(f"track {track.audio_id}: {_reason(exc)}") from exc


class Productions:
    """Narrations, music beds and mixes commanded by the saga, through :class:`Audio`'s own
    use cases (with the saga's ids, and without the API's rate limit: the saga paces itself)."""

    def __init__(self, audio: Audio) -> None:
        self.audio = audio

    def handlers(self) -> dict[type[EventData], Handler]:
        return {
            AudioRequested: self.on_audio_requested,
            MixRequested: self.on_mix_requested,
            ProductionCancelled: self.on_cancelled,
        }

    async def on_audio_requested(self, session: AsyncSession, command: AudioRequested) -> None:
        """Queue the record ``audio_id`` (a narration or a music bed) for the owner."""
        if await self._exists(session, command.audio_id):
            return
        try:
            await self._refuse_project(session, command.project_id, command.owner_id)
            data = generate_request(command)
        except Refused as refused:
            await self._failed(session, command, str(refused))
            return
        await self.audio.queue_generate(
            session,
            principal=Principal(user_id=command.owner_id),
            project_id=command.project_id,
            record_id=command.audio_id,
            data=data,
        )

    async def on_mix_requested(self, session: AsyncSession, command: MixRequested) -> None:
        """Queue the mix ``audio_id`` of ``tracks`` for the owner: every track one of the
        owner's completed records of the project, ``duration_seconds`` long, a 48 kHz stereo
        WAV normalised to -16 LUFS, the music ducked under the dialogue."""
        if await self._exists(session, command.audio_id):
            return
        principal = Principal(user_id=command.owner_id)
        try:
            await self._refuse_project(session, command.project_id, command.owner_id)
            if command.duration_seconds > MAX_MIX_SECONDS:
                raise Refused(f"a mix lasts at most {MAX_MIX_SECONDS} s")
            tracks = [mix_track(track) for track in command.tracks]
            output = MixOutput(
                format="wav",
                bit_depth=24,
                sample_rate=SAMPLE_RATE,
                channels=2,
                duration_seconds=command.duration_seconds,
                normalize_lufs=-16.0,
                ducking=True,
            )
            # The tracks are checked (the owner's, of the project, rendered) before anything
            # is written: a refusal leaves no record behind.
            await self.audio.queue_mix(
                session,
                principal=principal,
                project_id=command.project_id,
                record_id=command.audio_id,
                tracks=tracks,
                output=output,
            )
        except (Refused, AudioNotFound, AudioNotReady) as refused:
            await self._failed(session, command, str(refused))

    async def on_cancelled(self, session: AsyncSession, command: ProductionCancelled) -> None:
        """Cancel those of ``jobs`` that are the owner's audio jobs and still pending or
        processing (each records its cancel and publishes ``audio.cancelled``). Any other id
        (another service's job, another owner's) or a job already finished is left as it is."""
        principal = Principal(user_id=command.owner_id)
        for job_id in dict.fromkeys(command.jobs):
            with contextlib.suppress(JobNotFound, JobNotCancellable):
                await self.audio.jobs.cancel(session, principal=principal, job_id=job_id)

    # -- helpers ---------------------------------------------------------------------------

    @staticmethod
    async def _exists(session: AsyncSession, job_id: uuid.UUID) -> bool:
        """Whether the job was queued already (a redelivered or re-issued command). The job,
        not the record: a record its owner deleted leaves its job, whose id stays taken."""
        return await jobs_repository.get(session, job_tables, job_id) is not None

    async def _refuse_project(
        self, session: AsyncSession, project_id: uuid.UUID, owner_id: uuid.UUID
    ) -> None:
        refusal = await self.audio.directory.refusal(session, project_id, owner_id)
        if refusal is not None:
            raise Refused(refusal)

    @staticmethod
    async def _failed(
        session: AsyncSession, command: AudioRequested | MixRequested, error: str
    ) -> None:
        """Answer the saga: the record ``audio_id`` will never exist, and why."""
        await add_event(
            session,
            event_tables,
            AudioFailed(
                id=command.audio_id,
                project_id=command.project_id,
                job_id=command.audio_id,
                error=error,
            ),
            source=SOURCE,
            actor=command.owner_id,
        )
