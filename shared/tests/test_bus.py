"""The bus declaration, and a real nats-server enforcing it: every identity can do its own work
(provisioned streams and buckets, its durable consumers, its subjects) and nothing else.

The server here is started with the declaration's permissions (the kit's shared ``nats_url``
stays open for the other kit tests); the whole suite's authenticated bus is tested in
``tests/test_bus_security.py``.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import nats
import pytest
from nats.aio.client import Client as NATS
from nats.js.api import AckPolicy, ConsumerConfig
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import async_sessionmaker

from storycore_shared.assets.nats_store import NatsAssetStore
from storycore_shared.events.broker import Broker, StreamNotProvisioned, ensure_stream
from storycore_shared.events.bus import (
    BUS,
    PROVISIONER,
    Identity,
    inbox_prefix,
    owner_of_subject,
    subject_matches,
)
from storycore_shared.events.consumer import EventConsumer, _PoisonMessage
from storycore_shared.events.contracts import audio as audio_events
from storycore_shared.events.contracts import auth as auth_events
from storycore_shared.events.contracts import llm as llm_events
from storycore_shared.events.contracts import locations as location_events
from storycore_shared.events.contracts import productions as production_commands
from storycore_shared.events.contracts import projects as project_events
from storycore_shared.events.contracts import sequences as sequence_events
from storycore_shared.events.contracts import shots as shot_events
from storycore_shared.events.contracts import video as video_events
from storycore_shared.events.contracts.projects import ProjectUpdated
from storycore_shared.events.contracts.sequences import GeneratedShot
from storycore_shared.events.envelope import CloudEvent
from storycore_shared.events.provision import provision
from storycore_testkit.infra.servers import EmbeddedNats

ALL_STREAMS = [
    auth_events.STREAM,
    project_events.STREAM,
    shot_events.STREAM,
    location_events.STREAM,
    sequence_events.STREAM,
    llm_events.STREAM,
    audio_events.STREAM,
    video_events.STREAM,
    production_commands.STREAM,
]
BUCKET = "sequences-keyframes"

# -- the declaration ------------------------------------------------------------------------


def test_every_stream_has_exactly_one_publisher_its_owner():
    assert {s.name for s in BUS.streams} == {s.name for s in ALL_STREAMS}
    for spec in ALL_STREAMS:
        publishers = [i.user for i in BUS if not i.admin and spec in i.streams]
        assert len(publishers) == 1, (spec.name, publishers)
        for event_type in spec.events:
            assert owner_of_subject(event_type) == publishers[0], event_type
    assert owner_of_subject("project.updated") == "projects"
    assert owner_of_subject("user.registered") == "auth"
    # The saga's commands are the projects service's alone.
    assert owner_of_subject("production.film.requested") == "projects"
    assert owner_of_subject("sequence.progress.x") == "sequences"
    assert owner_of_subject("audio.mixed") == "audio"
    assert owner_of_subject("video.exported") == "video-editor"
    assert owner_of_subject("elsewhere.thing") is None


def test_only_the_provisioner_manages_streams_and_no_service_has_a_wildcard():
    for identity in BUS:
        permissions = identity.permissions()
        if identity.user == PROVISIONER:
            assert permissions == {"publish": [">"], "subscribe": [">"]}
            continue
        for subject in permissions["publish"]:
            assert subject not in (">", "*"), subject
            assert not subject.startswith(("$JS.API.STREAM.CREATE", "$JS.API.STREAM.DELETE"))
            assert not subject.startswith(("$JS.API.STREAM.UPDATE", "$JS.API.>", "_INBOX"))
            if ".CONSUMER." in subject:  # only its own durables, by name
                durable = subject.rsplit(".", 1)[1]
                assert durable in {grant.durable for grant in identity.consumes}, subject
        assert permissions["subscribe"][0] == f"_INBOX.{identity.user}.>"
        assert all(not s.startswith("_INBOX.") for s in permissions["subscribe"][1:])


def test_who_consumes_what():
    def consumed(user: str) -> set[str]:
        return {grant.stream.name for grant in BUS[user].consumes}

    assert consumed("shots") == {"PROJECTS", "SEQUENCES"}
    # Projects runs the production saga: it reads the answers of llm, audio and the video editor.
    assert consumed("projects") == {"SHOTS", "SEQUENCES", "LLM", "AUDIO", "VIDEO"}
    assert consumed("locations") == {"PROJECTS"}
    assert consumed("sequences") == {"PROJECTS", "PRODUCTIONS"}
    assert consumed("sequences-worker") == {"SEQUENCES"}
    assert consumed("audio") == {"PROJECTS", "PRODUCTIONS"}
    assert consumed("audio-worker") == {"AUDIO"}
    assert consumed("video-editor") == {"PROJECTS", "SEQUENCES", "AUDIO", "PRODUCTIONS"}
    assert consumed("video-editor-worker") == {"VIDEO"}
    assert consumed("llm") == {"PRODUCTIONS"}
    assert consumed("auth") == set()
    # Only the services that act on production commands read them; no worker does.
    readers = {i.user for i in BUS if not i.admin and "PRODUCTIONS" in consumed(i.user)}
    assert readers == {"llm", "sequences", "audio", "video-editor"}
    assert not any("AUTH" in consumed(i.user) for i in BUS if not i.admin), "nobody reads user.>"
    for worker in ("sequences-worker", "audio-worker", "video-editor-worker"):
        assert BUS[worker].streams == (), "worker events go through the outbox"
    assert BUS.buckets({"SEQUENCES_KEYFRAME_BUCKET": "frames"}) == [
        "frames",
        "audio-files",
        "video-editor-files",
    ]


def test_subject_matching_and_inboxes():
    assert subject_matches("project.>", "project.updated")
    assert not subject_matches("project.>", "project")
    assert subject_matches("sequence.progress.*", "sequence.progress.abc")
    assert not subject_matches("sequence.progress.*", "sequence.progress.a.b")
    assert inbox_prefix("shots") == "_INBOX.shots"
    assert inbox_prefix(None) == inbox_prefix("a.b") == "_INBOX"
    assert Broker("nats://shots:pw@127.0.0.1:4222", name="t").inbox_prefix == "_INBOX.shots"
    assert Broker("nats://127.0.0.1:4222", name="t").inbox_prefix == "_INBOX"


# -- contracts and the consumer's checks ----------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        " /api/x",
        "data:text/html,<script>alert(1)</script>",
        "http://cdn.example.com/k.png",
        "//evil.example.com/k.png",
        "/\\evil.example.com",
        "https://user@evil.example.com/",
        "https:///nohost",
        "/api/x\n",
        "",
    ],
)
def test_event_links_that_are_not_https_or_a_path_here_are_refused(url: str):
    with pytest.raises(ValidationError):
        _shot(url)


@pytest.mark.parametrize(
    "url", ["/api/sequences/1/keyframes/0", "https://cdn.example.com/k.png?v=1", "/keyframes/0.png"]
)
def test_event_links_over_https_or_on_this_site_are_kept(url: str):
    assert _shot(url).keyframe_url == url


def _shot(url: str) -> GeneratedShot:
    return GeneratedShot(
        id=uuid.uuid4(),
        order_index=0,
        name="n",
        prompt="p",
        shot_type="action",
        framing="wide",
        duration_seconds=1.0,
        keyframe_url=url,
    )


def _updated(source: str, subject: str = "project.updated") -> SimpleNamespace:
    project = uuid.uuid4()
    event = CloudEvent.wrap(
        ProjectUpdated(
            id=project,
            project_id=project,
            owner_id=uuid.uuid4(),
            name="n",
            is_public=False,
            status="draft",
            version=2,
        ),
        source=source,
    )
    return SimpleNamespace(data=event.to_bytes(), subject=subject, id=event.id)


def test_the_consumer_refuses_an_event_not_from_the_subjects_owner():
    async def handler(*_: Any) -> None:
        raise AssertionError("a refused event reaches no handler")

    consumer = EventConsumer(
        name="t-projects",
        stream=project_events.STREAM,
        handlers={ProjectUpdated: handler},
        sessionmaker=async_sessionmaker(),  # unbound: _decode touches no database
        tables=None,  # type: ignore[arg-type]
        broker=Broker("nats://x", name="t"),
    )
    event, _, _ = consumer._decode(_updated("projects"))  # type: ignore[arg-type]
    assert event.source == "projects"
    forged = _updated("attacker")
    with pytest.raises(_PoisonMessage, match="not 'projects'") as refused:
        consumer._decode(forged)  # type: ignore[arg-type]
    assert refused.value.event_id == forged.id
    with pytest.raises(_PoisonMessage, match="arrived on subject"):
        consumer._decode(_updated("projects", subject="project.deleted"))  # type: ignore[arg-type]


# -- a server enforcing the declaration -----------------------------------------------------


def _authorization(passwords: dict[str, str]) -> str:
    users = [
        {"user": i.user, "password": passwords[i.user], "permissions": i.permissions()} for i in BUS
    ]
    return f"authorization {{ users = {json.dumps(users)} }}"


@dataclass
class SecuredBus:
    server: EmbeddedNats
    passwords: dict[str, str]

    def url(self, user: str, password: str | None = None) -> str:
        return f"nats://{user}:{password or self.passwords[user]}@127.0.0.1:{self.server.port}"


def _secured(folder: Path) -> SecuredBus:
    passwords = {identity.user: secrets.token_urlsafe(16) for identity in BUS}
    server = EmbeddedNats(
        folder / "nats",
        sync_always=False,
        log_file=folder / "nats.log",
        authorization=_authorization(passwords),
    ).start()
    return SecuredBus(server, passwords)


@pytest.fixture(scope="module")
def bus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredBus]:
    secured = _secured(tmp_path_factory.mktemp("secured-bus"))
    yield secured
    secured.server.stop()


@pytest.fixture(scope="module")
async def provisioned(bus: SecuredBus) -> SecuredBus:
    done = await provision(bus.url(PROVISIONER), env={})
    assert f"bucket {BUCKET}" in done
    return bus


async def _connect(url: str, errors: list[str]) -> NATS:
    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    user = url.split("//")[1].split(":")[0]
    return await nats.connect(
        url, error_cb=on_error, inbox_prefix=inbox_prefix(user), allow_reconnect=False
    )


async def _refused(bus: SecuredBus, user: str, action: Callable[[NATS], Awaitable[Any]]) -> str:
    """The permissions violation the server answers ``action`` with."""
    errors: list[str] = []
    nc = await _connect(bus.url(user), errors)
    try:
        await action(nc)
        await nc.flush()
        for _ in range(40):
            if errors:
                break
            await asyncio.sleep(0.05)
        assert errors, f"{user} was allowed"
        assert "permissions violation" in errors[0].lower(), errors
        return errors[0]
    finally:
        await nc.close()


async def test_nobody_connects_without_a_user_or_with_a_wrong_password(bus: SecuredBus):
    assert "Authorization Violation" in await _handshake(bus.server.port, {})
    wrong = {"user": "shots", "pass": "wrong"}
    assert "Authorization Violation" in await _handshake(bus.server.port, wrong)
    right = {"user": "shots", "pass": bus.passwords["shots"]}
    assert (await _handshake(bus.server.port, right)).startswith("PONG")


async def _handshake(port: int, credentials: dict[str, str]) -> str:
    """The server's answer to CONNECT (with these credentials) and PING, on a raw socket."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        assert (await reader.readline()).startswith(b"INFO ")
        connect = {"verbose": False, "pedantic": False, "protocol": 1, **credentials}
        writer.write(f"CONNECT {json.dumps(connect)}\r\nPING\r\n".encode())
        await writer.drain()
        return (await asyncio.wait_for(reader.readline(), 5)).decode()
    finally:
        writer.close()
        await writer.wait_closed()


async def test_each_identity_binds_and_does_its_own_work(provisioned: SecuredBus):
    for identity in BUS:
        if identity.admin:
            continue
        errors: list[str] = []
        nc = await _connect(provisioned.url(identity.user), errors)
        try:
            await _own_work(nc, identity)
        finally:
            await nc.close()
        assert errors == [], (identity.user, errors)


async def _own_work(nc: NATS, identity: Identity) -> None:
    js = nc.jetstream(timeout=3)
    for spec in identity.streams:
        await ensure_stream(js, spec)  # a lookup: it exists
        subject = next(iter(spec.events))
        ack = await js.publish(subject, b"{}", headers={"Nats-Msg-Id": str(uuid.uuid4())})
        assert ack.stream == spec.name
    for grant in identity.consumes:
        await ensure_stream(js, grant.stream)
        config = ConsumerConfig(
            durable_name=grant.durable,
            ack_policy=AckPolicy.EXPLICIT,
            filter_subjects=sorted(grant.stream.events),
        )
        await js.add_consumer(grant.stream.name, config)
        await js.delete_consumer(grant.stream.name, grant.durable)
        await js.add_consumer(grant.stream.name, config)
        sub = await js.pull_subscribe_bind(durable=grant.durable, stream=grant.stream.name)
        try:
            for msg in await sub.fetch(1, timeout=1):
                await msg.ack_sync()
        except TimeoutError:
            pass  # nothing on its filter: the fetch itself was allowed
    for subject in identity.publish:
        await nc.publish(subject.replace("*", "x"), b"")
    for subject in identity.subscribe:
        await nc.subscribe(subject)
    await nc.flush()


async def test_the_keyframe_bucket_is_the_sequences_identities_only(provisioned: SecuredBus):
    async def store_of(user: str) -> AsyncIterator[NatsAssetStore]:
        broker = Broker(provisioned.url(user), name=user)
        await broker.start()
        try:
            yield NatsAssetStore(broker, BUCKET)
        finally:
            await broker.close()

    async def one(data: bytes) -> AsyncIterator[bytes]:
        yield data

    async for worker in store_of("sequences-worker"):
        await worker.put("k.png", one(b"png"), content_type="image/png")
    async for api in store_of("sequences"):
        assert b"".join([chunk async for chunk in api.read("k.png")]) == b"png"
        await api.delete("k.png")
        assert await api.stat("k.png") is None
    for user in ("shots", "projects", "auth"):
        refusal = await _refused(
            provisioned, user, lambda nc: nc.publish(f"$JS.API.STREAM.INFO.OBJ_{BUCKET}", b"")
        )
        assert f"obj_{BUCKET}" in refusal  # nats.py lowercases the server's error
        await _refused(
            provisioned, user, lambda nc: nc.publish(f"$JS.API.DIRECT.GET.OBJ_{BUCKET}", b"{}")
        )


async def test_an_identity_cannot_act_for_another(provisioned: SecuredBus):
    def publish(subject: str) -> Callable[[NATS], Awaitable[None]]:
        return lambda nc: nc.publish(subject, b"{}")

    def subscribe(subject: str) -> Callable[[NATS], Awaitable[Any]]:
        return lambda nc: nc.subscribe(subject)

    await _refused(provisioned, "shots", publish("project.updated"))
    await _refused(provisioned, "shots", publish("project.deleted"))
    await _refused(provisioned, "locations", publish("sequence.generated"))
    await _refused(provisioned, "sequences-worker", publish("sequence.generated"))
    await _refused(provisioned, "shots", subscribe("user.>"))
    await _refused(provisioned, "projects", subscribe("user.registered"))
    await _refused(provisioned, "shots", subscribe("_INBOX.projects.>"))
    await _refused(provisioned, "shots", subscribe(">"))
    # JetStream: no stream management, no other durable, no other service's consumer.
    for user in ("auth", "projects", "shots", "locations", "llm", "sequences"):
        await _refused(provisioned, user, publish("$JS.API.STREAM.CREATE.EVIL"))
        await _refused(provisioned, user, publish("$JS.API.STREAM.DELETE.PROJECTS"))
        await _refused(provisioned, user, publish("$JS.API.STREAM.PURGE.AUTH"))
    await _refused(provisioned, "shots", publish("$JS.API.CONSUMER.DURABLE.CREATE.AUTH.spy"))
    await _refused(provisioned, "shots", publish("$JS.API.CONSUMER.CREATE.PROJECTS"))
    await _refused(
        provisioned, "shots", publish("$JS.API.CONSUMER.MSG.NEXT.PROJECTS.locations-projects")
    )
    await _refused(provisioned, "locations", publish("$JS.API.CONSUMER.DELETE.SHOTS.x"))


async def test_before_provisioning_a_service_reports_it_and_creates_nothing(tmp_path: Path):
    fresh = _secured(tmp_path)
    try:
        errors: list[str] = []
        nc = await _connect(fresh.url("llm"), errors)
        try:
            with pytest.raises(StreamNotProvisioned, match="provision"):
                await ensure_stream(nc.jetstream(timeout=1), llm_events.STREAM)
        finally:
            await nc.close()
        assert any("stream.create.llm" in error for error in errors), errors
        admin = await nats.connect(fresh.url(PROVISIONER))
        try:
            assert [name async for name in _stream_names(admin)] == []
        finally:
            await admin.close()
    finally:
        fresh.server.stop()


async def _stream_names(nc: NATS) -> AsyncIterator[str]:
    for info in await nc.jetstream().streams_info():
        yield info.config.name or ""
