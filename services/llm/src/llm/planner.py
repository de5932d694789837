"""The shot planner: a prompt becomes ``shot_count`` planned shots.

With a real provider the model answers in JSON mode and the answer is validated against the
contract; an invalid answer is retried once, then the call fails with 502. With mock the plan
is derived deterministically from the prompt's sentences.
"""

from __future__ import annotations

import json
import re

from pydantic import ValidationError

from llm.errors import InvalidPlan
from llm.providers import Message, Prompt, Provider
from storycore_shared.contracts.planning import Plan, PlannedShot, PlanRequest
from storycore_shared.contracts.vocabulary import FRAMINGS, SHOT_TYPES

SYSTEM = (
    "You are StoryCore's shot planner. Break the user's idea into a "
    "storyboard. Answer with one JSON object: "
    '{{"shots": [{{"name": str, "prompt": str, "shot_type": one of {types}, '
    '"framing": one of {framings}, "duration_seconds": number 0.5..300}}]}} '
    "with exactly {count} shots, in story order."
)

_SENTENCES = re.compile(r"(?<=[.!?])\s+")
_MOCK_FRAMINGS = ["wide", "medium", "close-up", "over-the-shoulder", "extreme-wide"]


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCES.split(text.strip()) if s.strip()]


def mock_plan(request: PlanRequest) -> list[PlannedShot]:
    """Deterministic: one shot per sentence, cycling when there are fewer sentences."""
    sentences = _sentences(request.prompt) or [request.prompt.strip()]
    extras = ", ".join(x for x in (request.style, request.mood) if x)
    shots = []
    for i in range(request.shot_count):
        sentence = sentences[i % len(sentences)]
        words = re.findall(r"[\w'-]+", sentence)
        name = " ".join(words[:4]).capitalize() or f"Shot {i + 1}"
        shot_type = "establishing" if i == 0 else ("reaction" if i % 4 == 3 else "action")
        prompt = sentence if not extras else f"{sentence} ({extras})"
        shots.append(
            PlannedShot(
                name=name,
                prompt=prompt[:2000],
                shot_type=shot_type,
                framing=_MOCK_FRAMINGS[i % len(_MOCK_FRAMINGS)],
                duration_seconds=round(min(max(len(words) * 0.4, 2.0), 12.0), 1),
            )
        )
    return shots


def _validate(text: str, count: int) -> list[PlannedShot]:
    data = json.loads(text)
    shots = [PlannedShot.model_validate(s) for s in data["shots"]]
    if len(shots) != count:
        raise ValueError(f"expected {count} shots, got {len(shots)}")
    return shots


async def plan_shots(provider: Provider, request: PlanRequest) -> Plan:
    if provider.mock:
        return Plan(
            shots=mock_plan(request),
            provider=provider.name,
            model=provider.default_model,
            mock=True,
        )
    system = SYSTEM.format(
        types=list(SHOT_TYPES), framings=list(FRAMINGS), count=request.shot_count
    )
    details = "".join(
        f"\n{k}: {v}" for k, v in (("Style", request.style), ("Mood", request.mood)) if v
    )
    prompt = Prompt(
        messages=[
            Message("system", system),
            Message(
                "user", f"Plan exactly {request.shot_count} shots for: {request.prompt}{details}"
            ),
        ],
        model=provider.default_model,
        temperature=0.2,
        json_mode=True,
    )
    errors: list[str] = []
    for _ in range(2):
        completion = await provider.complete(prompt)
        try:
            shots = _validate(completion.text, request.shot_count)
        except (ValueError, KeyError, TypeError, ValidationError) as exc:
            errors.append(str(exc)[:300])
            continue
        return Plan(shots=shots, provider=provider.name, model=completion.model)
    raise InvalidPlan(f"{provider.name} gave no valid plan in two tries: {errors[-1]}")
