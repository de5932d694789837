"""Who may do what on the event bus: the one declaration (ARCHITECTURE §6, "the bus is not open").

Every NATS identity of the suite is declared here once: the streams it publishes to (its own,
through its outbox relay), the core NATS subjects it publishes or listens to (job progress),
the durable consumers it reads through (and so the streams it consumes), and the object-store
buckets it uses. Everything else follows from it:

- each user's nats-server permissions (:meth:`Identity.permissions`): the dev stack writes them
  into its generated config, ``deploy/nats/nats.conf`` carries the same (a test parses both);
- what the provisioning step creates (:mod:`storycore_shared.events.provision`): every stream
  and bucket. Only the provisioning identity may create, change or delete streams and buckets;
  services look them up and bind;
- which service owns a subject (:func:`owner_of_subject`), so a consumer refuses an event whose
  CloudEvents ``source`` is not the owner of the subject it arrived on.

Durable consumers are created by the services themselves, each allowed exactly its own durable
names on the streams it consumes (``$JS.API.CONSUMER.DURABLE.CREATE.<STREAM>.<durable>``, and
``DELETE`` of the same name, which the consumer uses to apply a changed configuration). The
consumer's configuration (filter subjects, ack wait) is the code's, so nothing can drift between
a provisioning step and the service that reads. A service cannot name another's durable, read
a stream it does not consume, or fetch from another's consumer.

Replies (JetStream API answers, publish acks, fetched messages) come back on inboxes under
``_INBOX.<user>.``: the broker sets that prefix from the connection's user, and each user may
subscribe only below its own, so nobody reads another identity's replies. The exact subjects
are those nats.py uses (``nats/js/manager.py``, ``client.py``, ``object_store.py``)::

    from storycore_shared.events.bus import BUS, owner_of_subject
    BUS["shots"].permissions()     # {"publish": [...], "subscribe": [...]}
    owner_of_subject("project.updated")   # "projects"
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TypedDict

from storycore_shared.events.contracts import StreamSpec
from storycore_shared.events.contracts import audio as audio_events
from storycore_shared.events.contracts import auth as auth_events
from storycore_shared.events.contracts import llm as llm_events
from storycore_shared.events.contracts import locations as location_events
from storycore_shared.events.contracts import productions as production_commands
from storycore_shared.events.contracts import projects as project_events
from storycore_shared.events.contracts import sequences as sequence_events
from storycore_shared.events.contracts import shots as shot_events
from storycore_shared.events.contracts import video as video_events

JS_API = "$JS.API"
INBOX = "_INBOX"
PROVISIONER = "provisioner"
_USER_RE = re.compile(r"^[A-Za-z0-9_-]+$")


class Permissions(TypedDict):
    publish: list[str]
    subscribe: list[str]


@dataclass(frozen=True)
class Consumes:
    """A durable consumer an identity reads a stream through."""

    stream: StreamSpec
    durable: str


@dataclass(frozen=True)
class Bucket:
    """An object-store bucket; ``setting`` is the environment variable that may rename it."""

    name: str
    setting: str | None = None

    def resolve(self, env: Mapping[str, str]) -> str:
        return (env.get(self.setting) if self.setting else None) or self.name


@dataclass(frozen=True)
class Identity:
    """One NATS user. ``source`` is the service it acts for (the CloudEvents ``source``)."""

    user: str
    source: str
    streams: tuple[StreamSpec, ...] = ()  # published through the outbox relay
    publish: tuple[str, ...] = ()  # core NATS subjects outside its streams' (progress wakes)
    subscribe: tuple[str, ...] = ()  # core NATS subjects it listens to
    consumes: tuple[Consumes, ...] = ()
    buckets: tuple[Bucket, ...] = ()
    admin: bool = False  # the provisioning identity: the bus's administrator

    @property
    def inbox(self) -> str:
        return inbox_prefix(self.user)

    def bucket_names(self, env: Mapping[str, str] | None = None) -> list[str]:
        return [bucket.resolve(env or {}) for bucket in self.buckets]

    def permissions(self, env: Mapping[str, str] | None = None) -> Permissions:
        """The nats-server ``permissions`` of this user (allow lists; the rest is denied).

        ``env`` renames buckets (``SEQUENCES_KEYFRAME_BUCKET``) as the services will.
        """
        if self.admin:
            return {"publish": [">"], "subscribe": [">"]}
        publish: list[str] = []
        for stream in self.streams:
            publish += stream.subjects
        publish += self.publish
        for stream in self.streams:  # the relay looks its stream up (never creates it)
            publish.append(f"{JS_API}.STREAM.INFO.{stream.name}")
        for grant in self.consumes:
            name, durable = grant.stream.name, grant.durable
            publish += [
                f"{JS_API}.STREAM.INFO.{name}",
                f"{JS_API}.CONSUMER.DURABLE.CREATE.{name}.{durable}",
                f"{JS_API}.CONSUMER.DELETE.{name}.{durable}",
                f"{JS_API}.CONSUMER.MSG.NEXT.{name}.{durable}",
                f"$JS.ACK.{name}.{durable}.>",
            ]
        for bucket in self.bucket_names(env):
            objects = f"OBJ_{bucket}"
            publish += [
                f"$O.{bucket}.C.>",  # chunks
                f"$O.{bucket}.M.>",  # metadata (a rollup per object)
                f"{JS_API}.STREAM.INFO.{objects}",
                f"{JS_API}.STREAM.MSG.GET.{objects}",
                f"{JS_API}.DIRECT.GET.{objects}",
                f"{JS_API}.STREAM.PURGE.{objects}",  # an object's chunks, on replace and delete
            ]
        subscribe = [f"{self.inbox}.>", *self.subscribe]
        return {"publish": _unique(publish), "subscribe": _unique(subscribe)}


class Bus:
    """The declaration: identities by user name."""

    def __init__(self, *identities: Identity) -> None:
        self.identities = {identity.user: identity for identity in identities}
        if len(self.identities) != len(identities):
            raise ValueError("a user is declared twice")

    def __getitem__(self, user: str) -> Identity:
        return self.identities[user]

    def __iter__(self) -> Iterator[Identity]:
        return iter(self.identities.values())

    def __contains__(self, user: object) -> bool:
        return user in self.identities

    @property
    def streams(self) -> list[StreamSpec]:
        """Every stream, once, in declaration order (what provisioning creates)."""
        seen: dict[str, StreamSpec] = {}
        for identity in self:
            for spec in (*identity.streams, *(grant.stream for grant in identity.consumes)):
                seen.setdefault(spec.name, spec)
        return list(seen.values())

    def buckets(self, env: Mapping[str, str] | None = None) -> list[str]:
        """Every object-store bucket, once (what provisioning creates)."""
        return _unique([name for identity in self for name in identity.bucket_names(env)])

    def owner_of_stream(self, stream: str) -> str | None:
        """The service whose events the stream holds (its only publisher), or None."""
        for identity in self:
            if not identity.admin and any(spec.name == stream for spec in identity.streams):
                return identity.source
        return None

    def owner_of_subject(self, subject: str) -> str | None:
        """The service that may publish ``subject`` on a stream, or None when none may."""
        for identity in self:
            if identity.admin:
                continue
            for spec in identity.streams:
                if any(subject_matches(pattern, subject) for pattern in spec.subjects):
                    return identity.source
        return None


# Durable consumer names: they are the services' own (see each service's main.py / worker.py).
BUS = Bus(
    Identity("auth", "auth", streams=(auth_events.STREAM,)),
    # Projects also owns productions (the story -> film saga): it alone publishes their
    # commands (production.*) and advances on the answers of llm, sequences, audio and video.
    Identity(
        "projects",
        "projects",
        streams=(project_events.STREAM, production_commands.STREAM),
        consumes=(
            Consumes(shot_events.STREAM, "projects-shots"),
            Consumes(sequence_events.STREAM, "projects-sequences"),
            Consumes(llm_events.STREAM, "projects-llm"),
            Consumes(audio_events.STREAM, "projects-audio"),
            Consumes(video_events.STREAM, "projects-video"),
        ),
    ),
    Identity(
        "shots",
        "shots",
        streams=(shot_events.STREAM,),
        consumes=(
            Consumes(project_events.STREAM, "shots-projects"),
            Consumes(sequence_events.STREAM, "shots-sequences"),
        ),
    ),
    Identity(
        "locations",
        "locations",
        streams=(location_events.STREAM,),
        consumes=(Consumes(project_events.STREAM, "locations-projects"),),
    ),
    Identity(
        "llm",
        "llm",
        streams=(llm_events.STREAM,),
        consumes=(Consumes(production_commands.STREAM, "llm-productions"),),
    ),
    # The API: its outbox (sequence.*, rig.*), the job streams' progress wakes, the keyframe
    # bucket (downloads, and deletes when a project goes).
    Identity(
        "sequences",
        "sequences",
        streams=(sequence_events.STREAM,),
        subscribe=("sequence.progress.*", "rig.progress.*"),
        consumes=(
            Consumes(project_events.STREAM, "sequences-projects"),
            Consumes(production_commands.STREAM, "sequences-productions"),
        ),
        buckets=(Bucket("sequences-keyframes", "SEQUENCES_KEYFRAME_BUCKET"),),
    ),
    # The workers: their work queues and progress wakes, the bucket. Their events (e.g.
    # sequence.generated) go through the service's outbox, so they publish no stream subject.
    Identity(
        "sequences-worker",
        "sequences",
        publish=("sequence.progress.*", "rig.progress.*"),
        consumes=(
            Consumes(sequence_events.STREAM, "sequences-worker"),
            Consumes(sequence_events.STREAM, "sequences-rigging"),
        ),
        buckets=(Bucket("sequences-keyframes", "SEQUENCES_KEYFRAME_BUCKET"),),
    ),
    # Audio: the API (its outbox, progress wakes, the bucket for downloads, waveforms and
    # project deletes) and its workers (the work queue; they store the rendered files).
    Identity(
        "audio",
        "audio",
        streams=(audio_events.STREAM,),
        subscribe=("audio.progress.*",),
        consumes=(
            Consumes(project_events.STREAM, "audio-projects"),
            Consumes(production_commands.STREAM, "audio-productions"),
        ),
        buckets=(Bucket("audio-files", "AUDIO_BUCKET"),),
    ),
    Identity(
        "audio-worker",
        "audio",
        publish=("audio.progress.*",),
        consumes=(Consumes(audio_events.STREAM, "audio-worker"),),
        buckets=(Bucket("audio-files", "AUDIO_BUCKET"),),
    ),
    # The video editor: its outbox, export progress wakes, the bucket (uploads, thumbnails,
    # exports); it keeps a project replica, records storyboards (sequence.generated) and marks
    # clips whose audio was deleted (audio.deleted).
    Identity(
        "video-editor",
        "video-editor",
        streams=(video_events.STREAM,),
        subscribe=("video.progress.*",),
        consumes=(
            Consumes(project_events.STREAM, "video-editor-projects"),
            Consumes(sequence_events.STREAM, "video-editor-sequences"),
            Consumes(audio_events.STREAM, "video-editor-audio"),
            Consumes(production_commands.STREAM, "video-editor-productions"),
        ),
        buckets=(Bucket("video-editor-files", "VIDEO_EDITOR_BUCKET"),),
    ),
    Identity(
        "video-editor-worker",
        "video-editor",
        publish=("video.progress.*",),
        consumes=(Consumes(video_events.STREAM, "video-editor-worker"),),
        buckets=(Bucket("video-editor-files", "VIDEO_EDITOR_BUCKET"),),
    ),
    # Creates streams and buckets before the services start; operator tools (republish a
    # time range, tests) use it too. No service process is given it.
    Identity(PROVISIONER, PROVISIONER, admin=True),
)


@functools.lru_cache(maxsize=1024)
def owner_of_subject(subject: str) -> str | None:
    """Cached: every event a consumer decodes asks it (the bus is fixed at import)."""
    return BUS.owner_of_subject(subject)


def owner_of_stream(stream: str) -> str | None:
    return BUS.owner_of_stream(stream)


def inbox_prefix(user: str | None) -> str:
    """Where a user's replies arrive: ``_INBOX.<user>`` (plain ``_INBOX`` without a user)."""
    if user and _USER_RE.match(user):
        return f"{INBOX}.{user}"
    return INBOX


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS wildcard matching: ``*`` is one token, a final ``>`` one or more."""
    want, have = pattern.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(have) > i
        if i >= len(have) or (token != "*" and token != have[i]):
            return False
    return len(have) == len(want)


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))
