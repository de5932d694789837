"""The production saga's scenario step: ``production.scenario.requested`` becomes a scenario
and its plan (``scenario.planned``), or the reason it cannot (``scenario.plan_failed``).

The command names the owner (verified by projects) and the scenario's id. With a story, the
scenario is built by the default provider and stored under that id for the owner, as
``POST /api/scenario/transform`` would (with its ``scenario.created``); without one, the owner's
scenario of that id is read. Either way it is planned by :func:`llm.scenario.plan.plan_production`.

Applying the same command twice creates nothing twice: a scenario already stored under that id
for the owner is reused (no model call, no second ``scenario.created``), and an answer whose
deterministic id is already in the outbox is not added again. The envelope's id is random on
every ``add_event``, so a command re-issued by the saga is a new event to the inbox: the
handler itself is what makes it harmless.

Failures are told, not retried: a missing or foreign scenario, an invalid story, a provider
that answers badly, times out or is not configured, a scenario without scenes all publish
``scenario.plan_failed`` and return. The one transient case, a provider that cannot be reached
(a model server restarting), is tried again inside the handler after short pauses, then failed
too: raising would leave the retries to the consumer, whose fifth failure dead-letters the
command and leaves the saga without an answer. Database trouble still raises (the consumer
retries it, without a limit).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from llm import repository
from llm.config import Settings
from llm.errors import InvalidScenario, ProviderBadAnswer, ProviderTimeout, ProviderUnavailable
from llm.models import event_tables
from llm.providers import Provider
from llm.providers.registry import Providers
from llm.scenario import service as scenarios
from llm.scenario.document import ScenarioDocument
from llm.scenario.plan import UnplannableScenario, plan_production
from llm.scenario.schemas import TransformRequest
from storycore_shared.auth import Principal
from storycore_shared.errors import ServiceError
from storycore_shared.events.contracts.llm import ScenarioPlanFailed, ScenarioPlanned
from storycore_shared.events.contracts.productions import ScenarioRequested
from storycore_shared.events.outbox import add_event

logger = logging.getLogger(__name__)

PLANNED_STEP = "scenario.planned"
FAILED_STEP = "scenario.plan_failed"
# Pauses before the second and third call to a provider that could not be reached.
UNREACHABLE_RETRY_DELAYS: tuple[float, ...] = (1.0, 3.0)


class StepRefused(Exception):
    """A permanent reason the step cannot be done; the saga reads it in ``scenario.plan_failed``."""


async def on_scenario_requested(
    session: AsyncSession,
    data: ScenarioRequested,
    *,
    providers: Providers,
    retry_delays: Sequence[float] = UNREACHABLE_RETRY_DELAYS,
) -> None:
    """Create (or read) the owner's scenario ``data.scenario_id`` and publish its plan."""
    provider: Provider | None = None
    try:
        document = await _stored_document(session, data)
        if document is None:
            provider, document = await _built_document(data, providers, retry_delays)
        title, genre, sequences = plan_production(document, data.shots_per_scene)
    except (StepRefused, UnplannableScenario) as exc:
        logger.info(
            "llm.production.plan_failed",
            extra={"production_id": str(data.production_id), "error": str(exc)},
        )
        failed = ScenarioPlanFailed(
            id=uuid.uuid5(data.production_id, FAILED_STEP),
            production_id=data.production_id,
            project_id=data.project_id,
            owner_id=data.owner_id,
            error=str(exc),
        )
        await _add_once(session, failed, data.owner_id)
        return
    if provider is not None:
        assert data.story is not None  # a document is built from the story only
        await scenarios.transform(
            session,
            principal=Principal(user_id=data.owner_id),
            provider=provider,
            story=data.story,
            document=document,
            scenario_id=data.scenario_id,
        )
    planned = ScenarioPlanned(
        id=uuid.uuid5(data.production_id, PLANNED_STEP),
        production_id=data.production_id,
        project_id=data.project_id,
        owner_id=data.owner_id,
        scenario_id=data.scenario_id,
        title=title,
        genre=genre,
        sequences=sequences,
    )
    await _add_once(session, planned, data.owner_id)


async def _stored_document(
    session: AsyncSession, data: ScenarioRequested
) -> ScenarioDocument | None:
    """The owner's scenario of that id; None when there is none yet and the story makes it."""
    scenario = await repository.find_scenario(session, data.scenario_id)
    if scenario is None or scenario.user_id != data.owner_id:
        if data.story is None:
            raise StepRefused(f"no scenario {data.scenario_id} for this user")
        if scenario is not None:
            raise StepRefused(f"the scenario id {data.scenario_id} is taken")
        return None
    try:
        return ScenarioDocument.model_validate(scenario.document)
    except ValidationError as exc:
        raise StepRefused(f"scenario {data.scenario_id} is not a valid document") from exc


async def _built_document(
    data: ScenarioRequested, providers: Providers, retry_delays: Sequence[float]
) -> tuple[Provider, ScenarioDocument]:
    """The scenario document of the command's story, by the service's default provider."""
    try:
        request = TransformRequest.model_validate({"story": data.story, "title": data.title})
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"])
        raise StepRefused(f"invalid {field}: {error['msg']}") from exc
    try:
        provider = providers.select(None)
    except ServiceError as exc:  # the default provider is not configured
        raise StepRefused(exc.detail) from exc
    for pause in retry_delays:
        try:
            return provider, await _build(provider, request)
        except ProviderUnavailable:
            logger.warning("llm.production.provider_unreachable", extra={"retry_in": pause})
            await asyncio.sleep(pause)
    try:
        return provider, await _build(provider, request)
    except ProviderUnavailable as exc:
        raise StepRefused(exc.detail) from exc


async def _build(provider: Provider, request: TransformRequest) -> ScenarioDocument:
    """One try; only an unreachable provider is worth another."""
    try:
        return await scenarios.build_document(provider, request.story, request.title)
    except (ProviderTimeout, ProviderBadAnswer, InvalidScenario) as exc:
        raise StepRefused(exc.detail) from exc


def handler_seconds(settings: Settings) -> float:
    """How long one command can take at worst: two model calls (a second one after an invalid
    answer), each up to the slowest provider's timeout, the pauses, and a margin."""
    slowest = max(
        settings.OLLAMA_TIMEOUT_SECONDS,
        settings.OPENAI_TIMEOUT_SECONDS,
        settings.ANTHROPIC_TIMEOUT_SECONDS,
    )
    return 2 * slowest + sum(UNREACHABLE_RETRY_DELAYS) + 15.0


async def _add_once(
    session: AsyncSession, data: ScenarioPlanned | ScenarioPlanFailed, owner_id: uuid.UUID
) -> None:
    """Add the answer unless the outbox holds it already (the same command applied again)."""
    if await repository.event_added(session, data.event_type, data.id):
        return
    await add_event(session, event_tables, data, source="llm", actor=owner_id)
