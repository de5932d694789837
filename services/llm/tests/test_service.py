"""llm use cases on real Postgres with the built-in mock provider, each test rolled back.

Generation and the scenario transform open short transactions of their own from a
sessionmaker; here that sessionmaker is bound to the test's connection, so their commits become
savepoints of the test's outer transaction and are rolled back with it.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from llm import service
from llm.config import Settings
from llm.errors import ScenarioNotFound, TemplateNotFound
from llm.generation import Generation
from llm.models import ResponseCache, Scenario, UsageRecord, event_tables, rate_limits
from llm.providers.registry import Providers
from llm.scenario import service as scenarios
from llm.scenario.schemas import TransformRequest
from llm.schemas import ChatMessage, ChatRequest, GenerateRequest, RenderRequest
from storycore_shared.auth import Principal
from storycore_shared.errors import TooManyRequests, Unprocessable
from storycore_shared.ratelimit import RateLimiter

OWNER = Principal(user_id=uuid.uuid4())
STRANGER = Principal(user_id=uuid.uuid4())

STORY = """At dawn Mara climbs the lighthouse. The lamp is dead. Tom hands Mara a new wick.

A storm comes from the sea. Tom runs along the harbour with a rope.

At night the lamp burns again."""


@pytest.fixture
def providers() -> Providers:
    return Providers(
        Settings(
            DATABASE_URL="postgresql://unused/unused",
            NATS_URL="nats://127.0.0.1:9",
            JWKS_URL="http://127.0.0.1:9/jwks",
            ENVIRONMENT="test",
        )
    )


@pytest.fixture
def sessionmaker(session: AsyncSession) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(
        bind=session.bind, join_transaction_mode="create_savepoint", expire_on_commit=False
    )


@pytest.fixture
def generation(providers: Providers, sessionmaker: async_sessionmaker[AsyncSession]) -> Generation:
    return Generation(providers, sessionmaker, cache_ttl=3600)


def _request(**fields: Any) -> GenerateRequest:
    return GenerateRequest.model_validate({"prompt": "Describe the lighthouse at dawn", **fields})


async def _cache_rows(session: AsyncSession) -> list[tuple[uuid.UUID, str]]:
    rows = await session.execute(
        select(ResponseCache.user_id, ResponseCache.provider).order_by(
            col(ResponseCache.created_at)
        )
    )
    return [(user_id, provider) for user_id, provider in rows]


# -- generation and its cache ------------------------------------------------------------------


async def test_the_same_request_is_answered_from_the_cache(
    session: AsyncSession, generation: Generation
) -> None:
    first = await generation.generate(OWNER, _request())
    assert (first.cached, first.mock, first.provider, first.model) == (
        False,
        True,
        "mock",
        "mock-1",
    )
    assert first.text.startswith("[mock ")
    assert "Describe the lighthouse at dawn" in first.text
    assert first.usage.prompt_tokens == 5
    assert first.usage.completion_tokens == len(first.text.split())
    second = await generation.generate(OWNER, _request())
    assert (second.cached, second.text, second.model) == (True, first.text, "mock-1")
    assert (second.usage.prompt_tokens, second.usage.total_tokens) == (0, 0)
    assert await _cache_rows(session) == [(OWNER.user_id, "mock")]


@pytest.mark.parametrize(
    "change",
    [
        {"prompt": "Describe the lighthouse at dusk"},
        {"model": "mock-2"},
        {"temperature": 0.7},
        {"max_tokens": 64},
        {"context": [{"role": "system", "content": "Answer in French."}]},
    ],
)
async def test_any_parameter_change_misses_the_cache(
    session: AsyncSession, generation: Generation, change: dict[str, Any]
) -> None:
    base = await generation.generate(OWNER, _request())
    changed = await generation.generate(OWNER, _request(**change))
    assert changed.cached is False
    assert changed.text != base.text  # the mock's answer is a digest of every parameter
    assert (await generation.generate(OWNER, _request(**change))).cached is True
    assert (await generation.generate(OWNER, _request())).cached is True
    assert len(await _cache_rows(session)) == 2


async def test_one_users_cache_never_serves_another(
    session: AsyncSession, generation: Generation
) -> None:
    mine = await generation.generate(OWNER, _request())
    theirs = await generation.generate(STRANGER, _request())
    assert theirs.cached is False
    assert theirs.text == mine.text  # same deterministic answer, but computed, not served
    assert sorted(await _cache_rows(session)) == sorted(
        [(OWNER.user_id, "mock"), (STRANGER.user_id, "mock")]
    )
    # Clearing is per user too.
    cleared = await service.clear_cache(session, STRANGER)
    assert cleared.deleted == 1
    assert await _cache_rows(session) == [(OWNER.user_id, "mock")]
    assert (await generation.generate(OWNER, _request())).cached is True
    assert (await generation.generate(STRANGER, _request())).cached is False


async def test_use_cache_false_neither_reads_nor_writes_the_cache(
    session: AsyncSession, generation: Generation
) -> None:
    await generation.generate(OWNER, _request(use_cache=False))
    assert await _cache_rows(session) == []
    await generation.generate(OWNER, _request())
    assert (await generation.generate(OWNER, _request(use_cache=False))).cached is False
    assert len(await _cache_rows(session)) == 1


async def test_an_expired_answer_is_not_served(
    providers: Providers, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    generation = Generation(providers, sessionmaker, cache_ttl=0)
    await generation.generate(OWNER, _request())
    assert (await generation.generate(OWNER, _request())).cached is False


async def test_usage_totals_count_every_request_of_the_caller_only(
    session: AsyncSession, generation: Generation
) -> None:
    empty = await service.usage_summary(session, OWNER)
    assert (empty.requests, empty.total_tokens, empty.by_model, empty.since) == (0, 0, [], None)
    miss = await generation.generate(OWNER, _request())
    await generation.generate(OWNER, _request())  # a hit: counted, no tokens
    chat = await generation.chat(
        OWNER,
        ChatRequest(messages=[ChatMessage(role="user", content="Hello there keeper")]),
    )
    await generation.generate(STRANGER, _request(prompt="someone else entirely"))
    summary = await service.usage_summary(session, OWNER)
    prompt_tokens = miss.usage.prompt_tokens + chat.usage.prompt_tokens
    completion_tokens = miss.usage.completion_tokens + chat.usage.completion_tokens
    assert (summary.user_id, summary.requests, summary.cached_requests) == (OWNER.user_id, 3, 1)
    assert (summary.prompt_tokens, summary.completion_tokens) == (prompt_tokens, completion_tokens)
    assert summary.total_tokens == prompt_tokens + completion_tokens
    assert [m.model_dump() for m in summary.by_model] == [
        {
            "provider": "mock",
            "model": "mock-1",
            "requests": 3,
            "total_tokens": prompt_tokens + completion_tokens,
        }
    ]
    assert summary.since is not None
    endpoints = await session.scalars(
        select(UsageRecord.endpoint)
        .where(col(UsageRecord.user_id) == OWNER.user_id)
        .order_by(col(UsageRecord.created_at))
    )
    assert endpoints.all() == ["generate", "generate", "chat"]
    other = await service.usage_summary(session, STRANGER)
    assert (other.requests, other.cached_requests) == (1, 0)


async def test_a_stream_sends_start_chunks_usage_done_and_records_usage(
    session: AsyncSession, generation: Generation
) -> None:
    frames = await generation.stream(OWNER, _request(use_cache=False))
    events = [json.loads(frame["data"]) async for frame in frames]
    kinds = [e["type"] for e in events]
    assert kinds[0] == "start"
    assert kinds[-2:] == ["usage", "done"]
    assert set(kinds[1:-2]) == {"chunk"}
    assert events[0] == {"type": "start", "provider": "mock", "model": "mock-1", "mock": True}
    text = "".join(e["text"] for e in events if e["type"] == "chunk")
    assert text == (await generation.generate(OWNER, _request(use_cache=False))).text
    usage = events[-2]
    assert usage["completion_tokens"] == len(text.split())
    recorded = await session.execute(
        select(UsageRecord.endpoint, UsageRecord.completion_tokens).where(
            col(UsageRecord.user_id) == OWNER.user_id, col(UsageRecord.endpoint) == "stream"
        )
    )
    assert [tuple(r) for r in recorded] == [("stream", len(text.split()))]


async def test_the_rate_limit_counts_per_key_in_llms_table(
    session: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    limiter = RateLimiter(rate_limits, limit=2, window_seconds=86_400)
    mine, theirs = f"llm.generate:{OWNER.user_id}", f"llm.generate:{STRANGER.user_id}"
    assert [await limiter.hit(sessionmaker, mine) for _ in range(2)] == [1, 2]
    with pytest.raises(TooManyRequests) as caught:
        await limiter.hit(sessionmaker, mine)
    assert caught.value.status == 429
    assert int(caught.value.headers["Retry-After"]) >= 1
    assert await limiter.hit(sessionmaker, theirs) == 1
    counts = await session.execute(
        select(rate_limits.c.key, rate_limits.c.count).order_by(rate_limits.c.count)
    )
    assert [tuple(r) for r in counts] == [(theirs, 1), (mine, 3)]


# -- templates ---------------------------------------------------------------------------------


def test_a_template_renders_its_variables() -> None:
    variables = {
        "length": "short",
        "genre": "noir",
        "theme": "duty",
        "setting": "a lighthouse",
        "characters": "Mara and Tom",
    }
    rendered = service.render_template(RenderRequest(name="story_generation", variables=variables))
    assert rendered.name == "story_generation"
    assert rendered.prompt.startswith("Write a short noir story about duty. It takes place in a ")
    assert "follows Mara and Tom." in rendered.prompt


def test_literal_braces_of_a_template_survive_rendering() -> None:
    variables = dict.fromkeys(["genre", "tone", "location_name", "description"], "x")
    rendered = service.render_template(RenderRequest(name="location_function", variables=variables))
    assert rendered.prompt.endswith('"story_role": "..."}')
    assert "{{" not in rendered.prompt


def test_a_missing_variable_is_a_422_naming_it() -> None:
    with pytest.raises(Unprocessable) as caught:
        service.render_template(
            RenderRequest(
                name="story_generation",
                variables={"length": "short", "genre": "noir", "setting": "sea"},
            )
        )
    assert caught.value.status == 422
    assert "theme" in caught.value.detail
    assert "characters" in caught.value.detail
    assert caught.value.extra == {"missing_variables": ["theme", "characters"]}


def test_an_unknown_template_is_a_404() -> None:
    with pytest.raises(TemplateNotFound) as caught:
        service.render_template(RenderRequest(name="sonnet", variables={}))
    assert caught.value.status == 404
    names = {t.name for t in service.list_templates().templates}
    assert "story_generation" in names
    assert "sonnet" not in names


# -- scenarios ---------------------------------------------------------------------------------


async def _transform(
    sessionmaker: async_sessionmaker[AsyncSession],
    providers: Providers,
    principal: Principal = OWNER,
    **fields: Any,
) -> Scenario:
    data = TransformRequest.model_validate({"story": STORY, **fields})
    return await scenarios.transform_story(
        sessionmaker, principal=principal, provider=providers.select("mock"), data=data
    )


async def test_transform_with_the_mock_follows_the_story(
    session: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession], providers: Providers
) -> None:
    scenario = await _transform(sessionmaker, providers, title="The keeper")
    # Three paragraphs: three sequences; of 3, 2 and 1 sentences: 2 + 1 + 1 scenes.
    assert (scenario.title, scenario.provider, scenario.user_id) == (
        "The keeper",
        "mock",
        OWNER.user_id,
    )
    assert {k: scenario.summary[k] for k in ("titre", "sequences", "scenes", "personnages")} == {
        "titre": "The keeper",
        "sequences": 3,
        "scenes": 4,
        "personnages": 1,
    }
    document = await scenarios.get_document(session, OWNER, scenario.id)
    assert document["id"] == str(scenario.id)
    assert [s["id"] for s in document["sequences"]] == ["seq_1", "seq_2", "seq_3"]
    assert [s["scenes_ids"] for s in document["sequences"]] == [
        ["scene_1", "scene_2"],
        ["scene_3"],
        ["scene_4"],
    ]
    assert [(s["type"], s["moment"]) for s in document["scenes"]] == [
        ("INT", "AUBE"),
        ("INT", "JOUR"),
        ("EXT", "JOUR"),
        ("MIX", "NUIT"),
    ]
    assert [p["nom"] for p in document["personnages"]] == ["Mara"]
    assert {lieu["nom"] for lieu in document["lieux"]} == {"Lighthouse", "Sea", "Harbour"}
    [(subject, payload)] = (
        await session.execute(select(event_tables.outbox.c.subject, event_tables.outbox.c.payload))
    ).all()
    assert subject == "scenario.created"
    assert payload["data"] == {
        "id": str(scenario.id),
        "owner_id": str(OWNER.user_id),
        "title": "The keeper",
        "sequences": 3,
        "scenes": 4,
    }


async def test_a_longer_single_paragraph_gives_more_sequences(
    sessionmaker: async_sessionmaker[AsyncSession], providers: Providers
) -> None:
    story = " ".join(f"The keeper trims wick number {i}." for i in range(9))
    scenario = await _transform(sessionmaker, providers, story=story)
    # One paragraph: a sequence per four sentences (4, 4, 1), a scene per two (2, 2, 1).
    assert (scenario.summary["sequences"], scenario.summary["scenes"]) == (3, 5)
    assert scenario.title == "The keeper trims wick number"


async def test_list_get_export_and_delete_see_only_the_callers_scenarios(
    session: AsyncSession, sessionmaker: async_sessionmaker[AsyncSession], providers: Providers
) -> None:
    first = await _transform(sessionmaker, providers, title="First")
    second = await _transform(sessionmaker, providers, title="Second")
    theirs = await _transform(sessionmaker, providers, STRANGER, title="Theirs")

    listed = await scenarios.list_owned(session, OWNER, page=1, page_size=20)
    assert (listed.total, [s.id for s in listed.scenarios]) == (2, [second.id, first.id])
    assert all(s.mock for s in listed.scenarios)
    paged = await scenarios.list_owned(session, OWNER, page=2, page_size=1)
    assert (paged.total, [s.id for s in paged.scenarios]) == (2, [first.id])

    for call in (scenarios.get_owned, scenarios.get_document, scenarios.delete_owned):
        with pytest.raises(ScenarioNotFound):
            await call(session, OWNER, theirs.id)
        with pytest.raises(ScenarioNotFound):
            await call(session, STRANGER, first.id)
    with pytest.raises(ScenarioNotFound):
        await scenarios.export_owned(session, STRANGER, first.id, "md")

    exported = await scenarios.export_owned(session, OWNER, first.id, "md")
    assert exported.media_type.startswith("text/markdown")
    assert exported.content.startswith("# First")
    assert exported.headers["Content-Disposition"].endswith(f'scenario-{first.id}.md"')

    await scenarios.delete_owned(session, OWNER, first.id)
    with pytest.raises(ScenarioNotFound):
        await scenarios.get_owned(session, OWNER, first.id)
    remaining = await session.scalars(select(Scenario.title).order_by(col(Scenario.title)))
    assert remaining.all() == ["Second", "Theirs"]
    count = await session.scalar(select(func.count()).select_from(Scenario))
    assert count == 2
