from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response, status

from sequences.rigging.schemas import RigCreate, RigPublic, SheetPublic
from sequences.state import RigRateLimitedPrincipal, RigsDep, get_rig_jobs
from storycore_shared.assets.http import file_route
from storycore_shared.auth import PrincipalDep
from storycore_shared.db import SessionDep
from storycore_shared.jobs.routes import job_router
from storycore_shared.media import MediaPrincipalDep

router = APIRouter(prefix="/api/rigging", tags=["rigging"])
# The rig's job (its id is the rig's): status, cancel, stream ticket and stream.
router.include_router(job_router(get_rig_jobs, prefix="/jobs", tags=["rigging"], status_suffix=""))

SHEET_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "image/png": {"schema": {"type": "string", "format": "binary"}},
            "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


@router.post("/convert", status_code=status.HTTP_202_ACCEPTED)
async def convert_sheet(
    data: RigCreate,
    session: SessionDep,
    principal: RigRateLimitedPrincipal,
    rigs: RigsDep,
    response: Response,
) -> RigPublic:
    """Queue the conversion of a character sheet (keyframe, uploaded image or keypoints)."""
    rig = await rigs.convert(session, principal=principal, data=data)
    response.headers["Location"] = f"/api/rigging/{rig.id}"
    return rig


@router.post("/sheets", status_code=status.HTTP_201_CREATED, openapi_extra=SHEET_BODY)
async def upload_sheet(
    project_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    principal: PrincipalDep,
    rigs: RigsDep,
) -> SheetPublic:
    """Upload a character sheet (the raw PNG or JPEG body) for ``sheet.asset_id``."""
    return await rigs.upload_sheet(
        session,
        principal=principal,
        project_id=project_id,
        content_type=request.headers.get("content-type"),
        chunks=request.stream(),
    )


@router.get("/{rig_id}")
async def get_rig(
    rig_id: uuid.UUID, session: SessionDep, principal: PrincipalDep, rigs: RigsDep
) -> RigPublic:
    """One rig: its status, keypoints (given and inferred) and file."""
    return await rigs.get(session, principal=principal, rig_id=rig_id)


@file_route(
    router,
    "/{rig_id}/download",
    responses={200: {"content": {"model/gltf-binary": {}}}},
)
async def download_rig(
    rig_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    principal: MediaPrincipalDep,
    rigs: RigsDep,
) -> Response:
    """The rig as glTF binary (bearer or signed URL; Range, ETag); 409 until built."""
    return await rigs.download(request, session, principal=principal, rig_id=rig_id)


@router.delete("/{rig_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_rig(
    rig_id: uuid.UUID, session: SessionDep, principal: PrincipalDep, rigs: RigsDep
) -> None:
    """Delete a rig and its file (a job still running is cancelled); its job stays."""
    await rigs.delete(session, principal=principal, rig_id=rig_id)
