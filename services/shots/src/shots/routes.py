from __future__ import annotations

import uuid

from fastapi import APIRouter, Response, status

from shots.models import Shot
from shots.schemas import (
    RegenerateRequest,
    ShotCreate,
    ShotOrder,
    ShotPublic,
    ShotsPublic,
    ShotStatus,
    ShotUpdate,
)
from shots.state import ShotsDep, SignerDep
from storycore_shared.auth import Principal, PrincipalDep
from storycore_shared.db import DriverConnectionDep, SessionDep
from storycore_shared.http import (
    IfMatch,
    IfNoneMatch,
    Page,
    PageSize,
    etag,
    expected_version,
    not_modified,
)
from storycore_shared.media import MediaSigner

router = APIRouter(tags=["shots"])


def _public(
    response: Response, shot: Shot, signer: MediaSigner, principal: Principal
) -> ShotPublic:
    public = ShotPublic.of(shot, signer=signer, user_id=principal.user_id)
    response.headers["ETag"] = etag(public.version)
    return public


@router.post("/api/shots", status_code=status.HTTP_201_CREATED)
async def create_shot(
    data: ShotCreate,
    connection: DriverConnectionDep,
    principal: PrincipalDep,
    shots: ShotsDep,
    signer: SignerDep,
    response: Response,
) -> ShotPublic:
    """Add a shot to one of the caller's projects."""
    shot = await shots.create_shot(connection, principal=principal, data=data)
    response.headers["Location"] = f"/api/shots/{shot.id}"
    response.headers["ETag"] = etag(shot.version)
    return shot.signed(signer, user_id=principal.user_id)


@router.get("/api/shots/{shot_id}", response_model=ShotPublic)
async def get_shot(
    shot_id: uuid.UUID,
    session: SessionDep,
    principal: PrincipalDep,
    shots: ShotsDep,
    signer: SignerDep,
    response: Response,
    if_none_match: IfNoneMatch = None,
) -> ShotPublic | Response:
    """One shot of a project the caller can read (304 for a current ETag)."""
    shot = await shots.get_shot(session, principal=principal, shot_id=shot_id)
    if cached := not_modified(if_none_match, shot.version):
        return cached
    return _public(response, shot, signer, principal)


@router.put("/api/shots/{shot_id}")
async def update_shot(
    shot_id: uuid.UUID,
    data: ShotUpdate,
    session: SessionDep,
    principal: PrincipalDep,
    shots: ShotsDep,
    signer: SignerDep,
    response: Response,
    if_match: IfMatch = None,
) -> ShotPublic:
    """Change some fields (null leaves a field as it is); a stale version answers 409."""
    shot = await shots.update_shot(
        session,
        principal=principal,
        shot_id=shot_id,
        data=data,
        expected_version=expected_version(data.version, if_match),
    )
    return _public(response, shot, signer, principal)


@router.delete("/api/shots/{shot_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_shot(
    shot_id: uuid.UUID,
    session: SessionDep,
    principal: PrincipalDep,
    shots: ShotsDep,
    if_match: IfMatch = None,
) -> Response:
    """Delete a shot."""
    await shots.delete_shot(
        session,
        principal=principal,
        shot_id=shot_id,
        expected_version=expected_version(None, if_match),
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/api/shots/{shot_id}/regenerate", status_code=status.HTTP_202_ACCEPTED)
async def regenerate_shot(
    shot_id: uuid.UUID,
    data: RegenerateRequest,
    session: SessionDep,
    principal: PrincipalDep,
    shots: ShotsDep,
    signer: SignerDep,
    response: Response,
) -> ShotPublic:
    """Send a shot back to pending; the sequences worker re-renders its keyframe."""
    shot = await shots.regenerate_shot(
        session,
        principal=principal,
        shot_id=shot_id,
        prompt=data.prompt,
    )
    return _public(response, shot, signer, principal)


@router.get("/api/projects/{project_id}/shots")
async def list_project_shots(
    project_id: uuid.UUID,
    session: SessionDep,
    principal: PrincipalDep,
    shots: ShotsDep,
    signer: SignerDep,
    status: ShotStatus | None = None,
    page: Page = 1,
    page_size: PageSize = 20,
) -> ShotsPublic:
    """A project's shots in order."""
    items, total = await shots.list_shots(
        session,
        principal=principal,
        project_id=project_id,
        status=status,
        page=page,
        page_size=page_size,
    )
    return ShotsPublic(
        shots=[ShotPublic.of(s, signer=signer, user_id=principal.user_id) for s in items],
        total=total,
        page=page,
        page_size=page_size,
    )


@router.put("/api/projects/{project_id}/shots/order")
async def reorder_project_shots(
    project_id: uuid.UUID,
    data: ShotOrder,
    session: SessionDep,
    principal: PrincipalDep,
    shots: ShotsDep,
    signer: SignerDep,
) -> ShotsPublic:
    """Renumber all of a project's shots at once, in the order given."""
    items = await shots.reorder_shots(
        session,
        principal=principal,
        project_id=project_id,
        shot_ids=data.shot_ids,
    )
    return ShotsPublic(
        shots=[ShotPublic.of(s, signer=signer, user_id=principal.user_id) for s in items],
        total=len(items),
        page=1,
        page_size=max(len(items), 1),
    )
