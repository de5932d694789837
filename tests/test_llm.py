"""The llm service through the gateway, against fake providers speaking their wire formats."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from storycore_devstack.stack import Stack
from storycore_testkit.fake_llm import FakeLLMServer
from storycore_testkit.problems import assert_problem

PROVIDERS = ["ollama", "openai", "anthropic"]


def generate(api: httpx.Client, user: Any, prompt: str, **fields: Any) -> httpx.Response:
    return api.post("/api/llm/generate", json={"prompt": prompt, **fields}, headers=user.headers)


def sse_frames(api: httpx.Client, user: Any, body: dict[str, Any]) -> list[tuple[float, dict]]:
    """POST a streaming generate and collect (arrival time, frame) pairs."""
    frames = []
    headers = {**user.headers, "Accept": "text/event-stream"}
    with api.stream("POST", "/api/llm/streaming-generate", json=body, headers=headers) as answer:
        assert answer.status_code == 200, answer.read()
        assert answer.headers["content-type"].startswith("text/event-stream")
        assert "content-encoding" not in answer.headers  # never compressed
        for line in answer.iter_lines():
            if line.startswith("data:"):
                frames.append((time.monotonic(), json.loads(line[5:].strip())))
    return frames


@pytest.mark.parametrize("provider", PROVIDERS)
def test_generate_chat_and_stream_speak_each_wire_format(
    api: httpx.Client, make_user: Any, fake_llms: dict[str, FakeLLMServer], provider: str
):
    user = make_user()
    answer = generate(
        api, user, "Describe a lighthouse", provider=provider, temperature=0, max_tokens=64
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["text"] == f"{provider} says: Describe a lighthouse"
    assert body["provider"] == provider
    assert body["cached"] is False
    assert body["mock"] is False
    assert body["usage"]["prompt_tokens"] == 3
    assert (
        body["usage"]["total_tokens"]
        == body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]
    )
    sent = fake_llms[provider].requests[-1]
    temperature = sent["options"]["temperature"] if provider == "ollama" else sent["temperature"]
    assert temperature == 0  # a temperature of 0 is a temperature

    chat = api.post(
        "/api/llm/chat",
        headers=user.headers,
        json={
            "provider": provider,
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hello there"},
            ],
        },
    )
    assert chat.status_code == 200, chat.text
    assert chat.json()["choices"][0]["message"] == {
        "role": "assistant",
        "content": f"{provider} says: Hello there",
    }
    assert chat.json()["choices"][0]["finish_reason"]

    frames = [f for _, f in sse_frames(api, user, {"prompt": "Tell a tale", "provider": provider})]
    kinds = [f["type"] for f in frames]
    assert kinds[0] == "start"
    assert kinds[-2:] == ["usage", "done"]
    assert set(kinds[1:-2]) == {"chunk"}
    assert "".join(f["text"] for f in frames if f["type"] == "chunk") == (
        f"{provider} says: Tell a tale"
    )
    assert frames[-2]["total_tokens"] > 0

    broken = [
        f
        for _, f in sse_frames(
            api, user, {"prompt": "[[stream-error]] go on now", "provider": provider}
        )
    ]
    assert [f["type"] for f in broken][:1] == ["start"]
    assert broken[-1]["type"] == "error"
    assert broken[-1]["error"]["status"] == 502
    assert any(f["type"] == "chunk" for f in broken)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_provider_failures_are_honest_502_503_504(
    api: httpx.Client, make_user: Any, fake_llms: dict[str, FakeLLMServer], provider: str
):
    user = make_user()
    slow = generate(api, user, "[[slow]] take your time", provider=provider, use_cache=False)
    assert_problem(slow, 504, "provider_timeout")
    assert_problem(
        generate(api, user, "[[bad]] answer", provider=provider), 502, "provider_bad_answer"
    )
    assert_problem(generate(api, user, "[[http500]] answer", provider=provider), 502)
    stream_slow = api.post(
        "/api/llm/streaming-generate",
        json={"prompt": "[[slow]] stream", "provider": provider},
        headers={**user.headers, "Accept": "text/event-stream"},
    )
    assert_problem(stream_slow, 504, "provider_timeout")
    fake_llms[provider].stop()
    try:
        assert_problem(
            generate(api, user, "anyone there?", provider=provider), 503, "provider_unavailable"
        )
        chat = api.post(
            "/api/llm/chat",
            headers=user.headers,
            json={"provider": provider, "messages": [{"role": "user", "content": "hi"}]},
        )
        assert_problem(chat, 503, "provider_unavailable")
        streamed = api.post(
            "/api/llm/streaming-generate",
            json={"prompt": "anyone?", "provider": provider},
            headers={**user.headers, "Accept": "text/event-stream"},
        )
        assert_problem(streamed, 503)
        models = api.get("/api/llm/models", headers=user.headers).json()
        assert provider in models["unavailable"]
    finally:
        fake_llms[provider].start()
    assert generate(api, user, "back again", provider=provider).status_code == 200


def test_the_first_chunk_arrives_before_the_provider_finishes(api: httpx.Client, make_user: Any):
    user = make_user()
    frames = sse_frames(
        api, user, {"prompt": "[[drip]] one two three four five", "provider": "openai"}
    )
    chunks = [t for t, f in frames if f["type"] == "chunk"]
    done = next(t for t, f in frames if f["type"] == "done")
    assert len(chunks) == 5
    assert done - chunks[0] >= 1.2  # the provider dripped 5 chunks 0.4 s apart


def test_the_cache_is_per_user_and_clearing_it_clears_only_mine(api: httpx.Client, make_user: Any):
    alice, bob = make_user(), make_user()
    prompt = {"prompt": "A secret recipe", "provider": "openai", "temperature": 0.3}
    assert generate(api, alice, **prompt).json()["cached"] is False
    assert generate(api, alice, **prompt).json()["cached"] is True
    assert generate(api, bob, **prompt).json()["cached"] is False  # never Alice's answer
    assert generate(api, alice, **{**prompt, "temperature": 0.4}).json()["cached"] is False
    assert generate(api, alice, **{**prompt, "max_tokens": 9}).json()["cached"] is False
    assert generate(api, alice, **prompt, use_cache=False).json()["cached"] is False
    cleared = api.delete("/api/llm/cache", headers=bob.headers)
    assert cleared.status_code == 200
    assert cleared.json()["deleted"] == 1
    assert generate(api, alice, **prompt).json()["cached"] is True
    assert api.delete("/api/llm/cache", headers=alice.headers).json()["deleted"] == 3
    assert generate(api, alice, **prompt).json()["cached"] is False


def test_usage_totals_match_the_requests_made(api: httpx.Client, make_user: Any):
    user = make_user()
    spent = 0
    for prompt, provider in [
        ("one", "ollama"),
        ("two", "openai"),
        ("one", "ollama"),
        ("three", "mock"),
    ]:
        spent += generate(api, user, prompt, provider=provider).json()["usage"]["total_tokens"]
    chat = api.post(
        "/api/llm/chat",
        headers=user.headers,
        json={"provider": "anthropic", "messages": [{"role": "user", "content": "count me"}]},
    )
    spent += chat.json()["usage"]["total_tokens"]
    frames = [f for _, f in sse_frames(api, user, {"prompt": "stream me", "provider": "openai"})]
    spent += next(f for f in frames if f["type"] == "usage")["total_tokens"]
    usage = api.get("/api/llm/usage", headers=user.headers).json()
    assert usage["requests"] == 6
    assert usage["cached_requests"] == 1
    assert usage["total_tokens"] == spent > 0
    assert {(m["provider"], m["requests"]) for m in usage["by_model"]} >= {("ollama", 2)}
    other = api.get("/api/llm/usage", headers=make_user().headers).json()
    assert other["requests"] == 0


def test_models_and_templates(api: httpx.Client, make_user: Any):
    user = make_user()
    models = api.get("/api/llm/models", headers=user.headers).json()
    names = {(m["provider"], m["name"]) for m in models["models"]}
    assert {
        ("ollama", "fake-llama:latest"),
        ("openai", "fake-gpt"),
        ("anthropic", "fake-claude"),
        ("mock", "mock-1"),
    } <= names
    assert models["default_provider"] == "mock"
    templates = {
        t["name"]: t
        for t in api.get("/api/llm/templates", headers=user.headers).json()["templates"]
    }
    assert len(templates) == 11
    assert templates["shot_description"]["variables"] == [
        "scene_description",
        "camera_angle",
        "lighting",
        "action",
        "duration",
    ]
    assert templates["location_reputation"]["variables"] == [
        "location_name",
        "function",
        "constraints",
        "culture",
    ]
    rendered = api.post(
        "/api/llm/render-template",
        headers=user.headers,
        json={
            "name": "location_function",
            "variables": {
                "location_name": "The Drowned Bell",
                "genre": "noir",
                "tone": "bleak",
                "description": "a bar below sea level",
            },
        },
    )
    assert rendered.status_code == 200
    assert "The Drowned Bell" in rendered.json()["prompt"]
    assert '{"function"' in rendered.json()["prompt"]  # literal JSON braces survive
    missing = api.post(
        "/api/llm/render-template",
        headers=user.headers,
        json={"name": "story_generation", "variables": {"genre": "noir"}},
    )
    problem = assert_problem(missing, 422)
    assert problem["missing_variables"] == ["length", "theme", "setting", "characters"]
    assert_problem(
        api.post("/api/llm/render-template", headers=user.headers, json={"name": "nope"}),
        404,
        "template_not_found",
    )


def test_planner_validates_retries_once_then_fails(
    api: httpx.Client, make_user: Any, fake_llms: dict[str, FakeLLMServer]
):
    user = make_user()
    fake = fake_llms["openai"]
    body = {"prompt": "A heist in a flooded museum.", "shot_count": 4, "provider": "openai"}
    plan = api.post("/api/llm/plan", json=body, headers=user.headers)
    assert plan.status_code == 200, plan.text
    assert len(plan.json()["shots"]) == 4
    assert plan.json()["mock"] is False
    before = len(fake.requests)
    retried = api.post(
        "/api/llm/plan",
        headers=user.headers,
        json={**body, "prompt": "[[plan-invalid-once]] a chase at night"},
    )
    assert retried.status_code == 200, retried.text
    assert len(fake.requests) - before == 2
    before = len(fake.requests)
    failed = api.post(
        "/api/llm/plan",
        headers=user.headers,
        json={**body, "prompt": "[[plan-invalid]] a duel at dawn"},
    )
    assert_problem(failed, 502, "invalid_plan")
    assert len(fake.requests) - before == 2


def test_mock_plan_is_deterministic_and_internal_route_needs_the_token(
    stack: Stack, api: httpx.Client, make_user: Any
):
    user = make_user()
    body = {
        "prompt": "A storm rolls in. The keeper climbs the stairs. The lamp fails.",
        "shot_count": 5,
        "style": "ink",
        "mood": "tense",
    }
    first = api.post("/api/llm/plan", json=body, headers=user.headers).json()
    second = api.post("/api/llm/plan", json=body, headers=user.headers).json()
    assert first == second
    assert first["mock"] is True
    assert [s["prompt"] for s in first["shots"]][:3] == [
        "A storm rolls in. (ink, tense)",
        "The keeper climbs the stairs. (ink, tense)",
        "The lamp fails. (ink, tense)",
    ]
    internal = f"{stack.replicas['llm'][0].url}/internal/llm/plan"
    assert httpx.post(internal, json=body, timeout=10).status_code == 401
    assert (
        httpx.post(
            internal, json=body, timeout=10, headers={"Authorization": "Bearer wrong"}
        ).status_code
        == 401
    )
    ok = httpx.post(
        internal, json=body, timeout=10, headers={"Authorization": f"Bearer {stack.internal_token}"}
    )
    assert ok.json() == first
    # Not reachable from outside: the gateway has no route for /internal.
    assert_problem(api.post("/internal/llm/plan", json=body), 404, "route_not_found")


def test_rate_limit_answers_429_with_retry_after(stack: Stack, api: httpx.Client, make_user: Any):
    limit = int(stack.config.extra_env["LLM_RATE_LIMIT_PER_MINUTE"])
    user, other = make_user(), make_user()
    limited = None
    for _ in range(2 * limit + 1):  # a fixed window may turn over once mid-test
        answer = generate(api, user, "quick", provider="mock")
        if answer.status_code == 429:
            limited = answer
            break
        assert answer.status_code == 200
    assert limited is not None, "no 429 within two windows' worth of requests"
    problem = assert_problem(limited, 429, "rate_limited")
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert "retry" in problem["detail"]
    assert generate(api, other, "quick", provider="mock").status_code == 200
