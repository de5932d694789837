"""Scenario use cases: transform a story, read, export, delete (each user sees only theirs)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from llm import repository
from llm.errors import InvalidScenario, ScenarioNotFound
from llm.models import Scenario, event_tables
from llm.providers import Message, Prompt, Provider
from llm.scenario.document import ScenarioDocument
from llm.scenario.export import MEDIA_TYPES, export
from llm.scenario.extract import extract_scenario
from llm.scenario.schemas import ExportFormat, ScenarioPublic, ScenariosPublic, TransformRequest
from storycore_shared.auth import Principal
from storycore_shared.db import transaction
from storycore_shared.events.contracts.llm import ScenarioCreated
from storycore_shared.events.outbox import add_event

SYSTEM = (
    "You turn a story into a film scenario document. Answer with one JSON "
    "object with the keys meta {titre, pitch, theme, sous_themes, ton, ton_precisions, "
    "enjeux}, personnages [{nom, age, role: protagoniste|antagoniste|allie|figurant, "
    "description, objectif, motivation, traits}], lieux [{nom, type: interieur|exterieur|mixte, "
    "description, atmosphere}], objets [{nom, type, description}], sequences [{id, titre, "
    "acte: 1|2|3, resume, tension: basse|moyenne|elevee|critique}], scenes [{sequence_id, "
    "type: INT|EXT|MIX, lieu, moment: JOUR|NUIT|AUBE|CREPUSCULE, description}]. Use as many "
    "sequences and scenes as the story needs. Keep the story's language."
)


async def extract_with_model(provider: Provider, story: str, title: str | None) -> ScenarioDocument:
    prompt = Prompt(
        messages=[
            Message("system", SYSTEM),
            Message("user", (f"Title: {title}\n\n" if title else "") + story),
        ],
        model=provider.default_model,
        temperature=0.2,
        json_mode=True,
    )
    error = ""
    for _ in range(2):
        completion = await provider.complete(prompt)
        try:
            document = ScenarioDocument.model_validate(json.loads(completion.text))
        except (ValueError, ValidationError) as exc:
            error = str(exc)[:300]
            continue
        if title:
            document.meta.titre = title
        return document.link()
    raise InvalidScenario(f"{provider.name} gave no valid scenario in two tries: {error}")


async def transform(
    session: AsyncSession,
    *,
    principal: Principal,
    provider: Provider,
    story: str,
    document: ScenarioDocument,
    scenario_id: uuid.UUID | None = None,
) -> Scenario:
    """Store ``document`` as the caller's new scenario (``scenario_id`` when a production names
    it, else a fresh id) and add its ``scenario.created`` event."""
    scenario = Scenario(
        id=scenario_id or uuid.uuid4(),
        user_id=principal.user_id,
        title=document.meta.titre[:255] or "Sans titre",
        provider=provider.name,
        story=story,
        document=document.model_dump(mode="json"),
        summary=document.summary(),
    )
    session.add(scenario)
    await session.flush()
    await add_event(
        session,
        event_tables,
        ScenarioCreated(
            id=scenario.id,
            owner_id=principal.user_id,
            title=scenario.title,
            sequences=len(document.sequences),
            scenes=len(document.scenes),
        ),
        source="llm",
        actor=principal.user_id,
    )
    return scenario


async def build_document(provider: Provider, story: str, title: str | None) -> ScenarioDocument:
    if provider.mock:
        return extract_scenario(story, title)
    return await extract_with_model(provider, story, title)


async def get_owned(
    session: AsyncSession, principal: Principal, scenario_id: uuid.UUID
) -> Scenario:
    scenario = await repository.get_scenario(session, scenario_id, principal.user_id)
    if scenario is None:
        raise ScenarioNotFound(f"No scenario {scenario_id}.")
    return scenario


async def transform_story(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    principal: Principal,
    provider: Provider,
    data: TransformRequest,
) -> Scenario:
    """Build the document first, then store it in a short transaction of its own, so a slow
    model never holds a database connection."""
    document = await build_document(provider, data.story, data.title)
    async with transaction(sessionmaker) as session:
        return await transform(
            session, principal=principal, provider=provider, story=data.story, document=document
        )


async def list_owned(
    session: AsyncSession, principal: Principal, *, page: int, page_size: int
) -> ScenariosPublic:
    items, total = await repository.list_scenarios(
        session, principal.user_id, offset=(page - 1) * page_size, limit=page_size
    )
    return ScenariosPublic(
        scenarios=[ScenarioPublic.of(s) for s in items], total=total, page=page, page_size=page_size
    )


async def get_document(
    session: AsyncSession, principal: Principal, scenario_id: uuid.UUID
) -> dict[str, Any]:
    scenario = await get_owned(session, principal, scenario_id)
    return {"id": str(scenario.id), "provider": scenario.provider, **scenario.document}


@dataclass(frozen=True)
class ScenarioFile:
    content: str
    media_type: str
    headers: dict[str, str]


async def export_owned(
    session: AsyncSession, principal: Principal, scenario_id: uuid.UUID, fmt: ExportFormat
) -> ScenarioFile:
    scenario = await get_owned(session, principal, scenario_id)
    document = ScenarioDocument.model_validate(scenario.document)
    return ScenarioFile(
        content=export(document, fmt),
        media_type=MEDIA_TYPES[fmt],
        headers={
            "Content-Disposition": f'attachment; filename="scenario-{scenario.id}.{fmt}"',
            "X-Content-Type-Options": "nosniff",
        },
    )


async def delete_owned(session: AsyncSession, principal: Principal, scenario_id: uuid.UUID) -> None:
    await session.delete(await get_owned(session, principal, scenario_id))
