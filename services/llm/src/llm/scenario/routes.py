from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Response, status

from llm.scenario import service as scenarios
from llm.scenario.schemas import (
    ExportFormat,
    ScenarioPublic,
    ScenariosPublic,
    TransformRequest,
    TransformResponse,
)
from llm.state import ProvidersDep, SessionmakerDep, rate_limited
from storycore_shared.auth import Principal, PrincipalDep
from storycore_shared.db import SessionDep
from storycore_shared.http import Page, PageSize

router = APIRouter(prefix="/api/scenario", tags=["llm", "scenario"])


@router.post("/transform", status_code=status.HTTP_201_CREATED)
async def transform_story(
    data: TransformRequest,
    providers: ProvidersDep,
    sessionmaker: SessionmakerDep,
    principal: Annotated[Principal, rate_limited("scenario.transform")],
) -> TransformResponse:
    """Turn a story into a scenario document."""
    scenario = await scenarios.transform_story(
        sessionmaker, principal=principal, provider=providers.select(data.provider), data=data
    )
    return TransformResponse(
        scenario_id=scenario.id, status=scenario.status, summary=scenario.summary
    )


@router.get("")
async def list_scenarios(
    session: SessionDep, principal: PrincipalDep, page: Page = 1, page_size: PageSize = 20
) -> ScenariosPublic:
    """The caller's scenarios, newest first."""
    return await scenarios.list_owned(session, principal, page=page, page_size=page_size)


@router.get("/{scenario_id}")
async def get_scenario(
    scenario_id: uuid.UUID, session: SessionDep, principal: PrincipalDep
) -> ScenarioPublic:
    """One scenario's summary."""
    return ScenarioPublic.of(await scenarios.get_owned(session, principal, scenario_id))


@router.get("/{scenario_id}/full")
async def get_scenario_document(
    scenario_id: uuid.UUID, session: SessionDep, principal: PrincipalDep
) -> dict[str, Any]:
    """The whole scenario document."""
    return await scenarios.get_document(session, principal, scenario_id)


@router.get("/{scenario_id}/export")
async def export_scenario(
    scenario_id: uuid.UUID,
    session: SessionDep,
    principal: PrincipalDep,
    format: ExportFormat = "json",
) -> Response:
    """The scenario as a json, txt, md or html file."""
    file = await scenarios.export_owned(session, principal, scenario_id, format)
    return Response(file.content, media_type=file.media_type, headers=file.headers)


@router.delete("/{scenario_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_scenario(
    scenario_id: uuid.UUID, session: SessionDep, principal: PrincipalDep
) -> Response:
    """Delete a scenario."""
    await scenarios.delete_owned(session, principal, scenario_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
