"""The event bus is not open: the suite's NATS, attacked from the same host.

The stack's embedded NATS requires a user; each service's user may publish only its own
subjects, read only the streams it consumes, and manage no stream; consumers dead-letter an
event whose ``source`` is not its subject's owner, and refuse links that are neither https nor
a path of this suite. Connections made here to attack are named ``attacker``, so the server's
log tells them apart from the services (which must never be refused anything).
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import nats
import pytest
from nats.aio.client import Client as NATS

from storycore_devstack.stack import Stack
from storycore_shared.db import asyncpg_dsn
from storycore_shared.events.bus import BUS, PROVISIONER, inbox_prefix
from storycore_shared.events.contracts.projects import ProjectUpdated
from storycore_shared.events.contracts.sequences import SequenceGenerated
from storycore_shared.events.envelope import CloudEvent
from storycore_testkit.polling import settle

ATTACKER = "attacker"
SERVICES = [identity.user for identity in BUS if not identity.admin]


def _port(stack: Stack) -> int:
    port = urlsplit(stack.nats_server_url).port
    assert port is not None
    return port


async def _handshake(port: int, lines: list[str], credentials: dict[str, str]) -> str:
    """The server's first answer to CONNECT (with ``credentials``) and ``lines``, raw."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        assert (await reader.readline()).startswith(b"INFO ")
        connect = {"verbose": False, "pedantic": False, "name": ATTACKER, **credentials}
        payload = "".join(f"{line}\r\n" for line in lines)
        writer.write(f"CONNECT {json.dumps(connect)}\r\n{payload}PING\r\n".encode())
        await writer.drain()
        return (await asyncio.wait_for(reader.readline(), 5)).decode()
    finally:
        writer.close()
        await writer.wait_closed()


async def _connect(stack: Stack, user: str, errors: list[str]) -> NATS:
    async def on_error(exc: Exception) -> None:
        errors.append(str(exc))

    return await nats.connect(
        stack.nats_url_for(user),
        name=ATTACKER,
        inbox_prefix=inbox_prefix(user),
        error_cb=on_error,
        allow_reconnect=False,
    )


def refused(stack: Stack, user: str, action: Callable[[NATS], Awaitable[Any]]) -> str:
    """Run ``action`` with ``user``'s credentials; the server's permissions violation."""

    async def attempt() -> str:
        errors: list[str] = []
        nc = await _connect(stack, user, errors)
        try:
            await action(nc)
            await nc.flush()
            for _ in range(60):
                if errors:
                    break
                await asyncio.sleep(0.05)
        finally:
            await nc.close()
        assert errors, f"{user} was allowed"
        assert "permissions violation" in errors[0].lower(), errors
        return errors[0]

    return asyncio.run(attempt())


def publish(subject: str) -> Callable[[NATS], Awaitable[None]]:
    return lambda nc: nc.publish(subject, b"{}")


def subscribe(subject: str) -> Callable[[NATS], Awaitable[Any]]:
    return lambda nc: nc.subscribe(subject)


async def _streams(stack: Stack) -> dict[str, int]:
    """Every stream and its last sequence, as the provisioner sees them."""
    nc = await nats.connect(stack.nats_url, name="test-admin")
    try:
        return {i.config.name or "": i.state.last_seq for i in await nc.jetstream().streams_info()}
    finally:
        await nc.close()


def project(api: httpx.Client, user: Any) -> dict[str, Any]:
    answer = api.post("/api/projects", json={"name": "Victim film"}, headers=user.headers)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def shot(api: httpx.Client, user: Any, project_id: str) -> dict[str, Any]:
    body = {"project_id": project_id, "name": "Opening", "prompt": "A city at dawn"}
    answer = api.post("/api/shots", json=body, headers=user.headers)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


class DeadLetters:
    """Reads (and in the end removes) the dead letters of one event in the services' schemas,
    so suite tests that expect none elsewhere are not disturbed."""

    def __init__(self, stack: Stack, event_id: str, services: list[str]) -> None:
        self.stack = stack
        self.event_id = event_id
        self.services = services

    async def _each(self, sql: str) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for service in self.services:
            conn = await asyncpg.connect(asyncpg_dsn(self.stack.database_url(service)))
            try:
                rows = await conn.fetch(sql.format(schema=service), self.event_id)
                found[service] = [row["error"] for row in rows]
            finally:
                await conn.close()
        return found

    def errors(self) -> dict[str, list[str]]:
        return asyncio.run(
            self._each('select error from "{schema}".dead_letter where event_id = $1')
        )

    def remove(self) -> None:
        asyncio.run(
            self._each('delete from "{schema}".dead_letter where event_id = $1 returning error')
        )


@pytest.fixture
def dead_letters(stack: Stack) -> Iterator[Callable[[str, list[str]], DeadLetters]]:
    made: list[DeadLetters] = []

    def make(event_id: str, services: list[str]) -> DeadLetters:
        made.append(DeadLetters(stack, event_id, services))
        return made[-1]

    yield make
    for letters in made:
        letters.remove()


async def _publish_as(stack: Stack, user: str, event: CloudEvent) -> None:
    errors: list[str] = []
    nc = await _connect(stack, user, errors)
    try:
        ack = await nc.jetstream().publish(
            event.type, event.to_bytes(), headers={"Nats-Msg-Id": event.id}
        )
        assert ack.seq > 0
    finally:
        await nc.close()
    assert errors == []


# -- no way in without a user ---------------------------------------------------------------


def test_an_unauthenticated_client_reaches_no_stream(stack: Stack):
    assert stack.nats is not None, "the suite's stack runs its own, authenticated NATS"
    port = _port(stack)
    streams = [spec.name for spec in BUS.streams]
    assert {"AUTH", "PROJECTS", "SHOTS", "LOCATIONS", "SEQUENCES", "LLM"} <= set(streams)
    for name in streams:
        for credentials in ({}, {"user": "projects", "pass": "guessed"}):
            answer = asyncio.run(
                _handshake(port, [f"PUB $JS.API.STREAM.INFO.{name} 0", ""], credentials)
            )
            assert "Authorization Violation" in answer, (name, credentials, answer)
    for subject in ("user.>", "project.>", f"$O.{BUS.buckets()[0]}.>"):
        answer = asyncio.run(_handshake(port, [f"SUB {subject} 1"], {}))
        assert "Authorization Violation" in answer, subject
    state = json.loads((stack.data_dir / "stack.json").read_text())
    assert "@" not in state["nats_url"], "no credentials in the state file"


# -- each service its own subjects ----------------------------------------------------------


def test_a_service_cannot_publish_another_services_subjects(stack: Stack):
    before = asyncio.run(_streams(stack))
    refused(stack, "shots", publish("project.updated"))
    refused(stack, "shots", publish("project.deleted"))
    refused(stack, "locations", publish("project.deleted"))
    refused(stack, "llm", publish("sequence.generated"))
    refused(stack, "projects", publish("user.registered"))
    # The workers' events go through the service's outbox: their user cannot publish them.
    refused(stack, "sequences-worker", publish("sequence.generated"))
    # Production commands carry an owner id that their consumers act for: projects alone
    # (the saga's owner) may publish them.
    refused(stack, "llm", publish("production.storyboard.requested"))
    refused(stack, "audio", publish("production.film.requested"))
    refused(stack, "video-editor", publish("production.audio.requested"))
    refused(stack, "audio-worker", publish("production.mix.requested"))
    after = asyncio.run(_streams(stack))
    for name in ("PROJECTS", "AUTH", "PRODUCTIONS"):
        assert after[name] == before[name], f"a refused publish reached {name}"


def test_a_service_reads_only_what_it_consumes(stack: Stack):
    for user in SERVICES:
        violation = refused(stack, user, subscribe("user.>"))  # nobody consumes user events
        assert "user.>" in violation
    refused(stack, "locations", subscribe("sequence.>"))
    refused(stack, "shots", subscribe("_INBOX.projects.>"))  # another identity's replies
    refused(stack, "shots", subscribe(">"))
    refused(stack, "locations", publish("$JS.API.CONSUMER.CREATE.AUTH"))
    refused(stack, "shots", publish("$JS.API.CONSUMER.DURABLE.CREATE.AUTH.spy"))
    refused(stack, "shots", publish("$JS.API.CONSUMER.MSG.NEXT.PROJECTS.locations-projects"))
    bucket = BUS.buckets()[0]
    for user in ("shots", "projects", "locations", "llm", "auth"):  # the keyframes
        refused(stack, user, publish(f"$JS.API.DIRECT.GET.OBJ_{bucket}"))
        refused(stack, user, publish(f"$JS.API.STREAM.MSG.GET.OBJ_{bucket}"))
        refused(stack, user, subscribe(f"$O.{bucket}.>"))


def test_no_service_can_create_change_or_delete_a_stream(stack: Stack):
    before = asyncio.run(_streams(stack))
    for user in SERVICES:
        refused(stack, user, publish("$JS.API.STREAM.CREATE.EVIL"))
        refused(stack, user, publish("$JS.API.STREAM.UPDATE.PROJECTS"))
        refused(stack, user, publish("$JS.API.STREAM.DELETE.PROJECTS"))
        refused(stack, user, publish("$JS.API.STREAM.PURGE.AUTH"))
        refused(stack, user, publish(f"$JS.API.STREAM.DELETE.OBJ_{BUS.buckets()[0]}"))
    after = asyncio.run(_streams(stack))
    assert "EVIL" not in after
    assert set(after) == set(before)
    for name in before:  # nothing deleted or purged
        assert after[name] >= before[name], name


# -- forged events change nothing -----------------------------------------------------------


def test_a_forged_project_update_is_dead_lettered_and_changes_nothing(
    stack: Stack, api: httpx.Client, make_user: Any, dead_letters: Any
):
    victim, attacker = make_user(), make_user()
    owned = project(api, victim)
    pid = owned["id"]
    first = shot(api, victim, pid)
    # Everything projects would say to hand the project over, but from the wrong source.
    forged = CloudEvent.wrap(
        ProjectUpdated(
            id=uuid.UUID(pid),
            project_id=uuid.UUID(pid),
            owner_id=uuid.UUID(attacker.id),
            name="mine now",
            is_public=False,
            status="draft",
            version=owned["version"] + 1,
        ),
        source=ATTACKER,
    )
    consumers = ["shots", "locations", "sequences"]  # every consumer of PROJECTS
    letters = dead_letters(forged.id, consumers)
    # Published with projects' own credentials: the only identity allowed on project.>.
    asyncio.run(_publish_as(stack, "projects", forged))
    settle(
        lambda: all(letters.errors()[s] for s in consumers),
        within=15,
        what="the forged event dead-lettered by every consumer",
    )
    for service, errors in letters.errors().items():
        assert len(errors) == 1, service
        assert "'attacker' is not 'projects'" in errors[0], errors
    listed = api.get(f"/api/projects/{pid}/shots", headers=victim.headers)
    assert listed.status_code == 200, listed.text
    assert [s["id"] for s in listed.json()["shots"]] == [first["id"]]
    assert api.get(f"/api/shots/{first['id']}", headers=victim.headers).status_code == 200
    assert api.get(f"/api/projects/{pid}/shots", headers=attacker.headers).status_code == 404
    assert api.get(f"/api/shots/{first['id']}", headers=attacker.headers).status_code == 404
    answer = api.get(f"/api/projects/{pid}", headers=victim.headers).json()
    assert (answer["owner_id"], answer["name"]) == (victim.id, "Victim film")


def test_a_generated_sequence_with_script_links_is_refused(
    stack: Stack, api: httpx.Client, make_user: Any, dead_letters: Any
):
    victim = make_user()
    pid = project(api, victim)["id"]
    first = shot(api, victim, pid)
    job = uuid.uuid4()
    planted = uuid.uuid5(job, "0")
    shot_data = {
        "id": str(planted),
        "order_index": 0,
        "name": "Planted",
        "prompt": "p",
        "shot_type": "action",
        "framing": "wide",
        "duration_seconds": 2.0,
        "keyframe_url": "javascript:alert(1)",
    }
    # Built by hand: the contract itself refuses to make this event.
    forged = CloudEvent(
        source="sequences",
        type=SequenceGenerated.event_type,
        subject=str(job),
        data={
            "id": str(job),
            "project_id": pid,
            "job_id": str(job),
            "owner_id": victim.id,
            "shots": [shot_data],
            "image_backend": "builtin",
        },
    )
    letters = dead_letters(forged.id, ["shots", "projects"])  # sequence.generated's consumers
    asyncio.run(_publish_as(stack, "sequences", forged))
    settle(
        lambda: all(letters.errors().values()), within=15, what="dead-lettered by both consumers"
    )
    for errors in letters.errors().values():
        assert "keyframe_url" in errors[0], errors
    listed = api.get(f"/api/projects/{pid}/shots", headers=victim.headers).json()["shots"]
    assert [s["id"] for s in listed] == [first["id"]]
    assert all("javascript" not in json.dumps(s) for s in listed)
    assert api.get(f"/api/shots/{planted}", headers=victim.headers).status_code == 404


# -- and the services need nothing more than their grants -----------------------------------


def test_the_services_run_on_their_own_grants_and_are_never_refused(stack: Stack):
    identities = {urlsplit(stack.nats_url_for(user)).username for user in SERVICES}
    assert identities == set(SERVICES)
    assert urlsplit(stack.nats_url).username == PROVISIONER
    for name, replicas in stack.replicas.items():
        for replica in replicas:
            if replica.service.is_fallback:  # no NATS
                continue
            url = replica.url + replica.service.health_path

            def ready(url: str = url) -> bool:
                checks = httpx.get(url, timeout=5).json()["checks"]
                return bool(checks["nats"]["ok"] and checks["consumers"]["ok"])

            settle(ready, within=15, what=f"{name} bound to NATS with its consumers")
    refused(stack, "llm", publish("project.created"))  # one refusal the log must tell apart

    def logged() -> list[str]:
        log = (stack.log_dir / "nats.log").read_text(errors="replace")
        return [line for line in log.splitlines() if "Violation" in line]

    settle(lambda: any("project.created" in line for line in logged()), within=5, what="logged")
    by_services = [line for line in logged() if not re.search(rf':{ATTACKER}"', line)]
    assert by_services == [], by_services[:5]
