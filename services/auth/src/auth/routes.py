from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response, status

from auth import service
from auth.schemas import LoginRequest, RefreshRequest, TokenPair, UserCreate, UserPublic
from auth.service import AuthState, TokenSettings
from storycore_shared.app import state_dependency
from storycore_shared.auth import PrincipalDep
from storycore_shared.db import SessionDep

router = APIRouter(prefix="/api/auth", tags=["auth"])


AuthStateDep = Annotated[AuthState, Depends(state_dependency(AuthState))]


async def get_tokens(state: AuthStateDep) -> TokenSettings:
    return state.tokens


TokensDep = Annotated[TokenSettings, Depends(get_tokens)]
# Token answers are credentials: no cache (browser, proxy) may keep them.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@router.post("/register", status_code=status.HTTP_201_CREATED)
async def register_user(data: UserCreate, session: SessionDep) -> UserPublic:
    """Create an account."""
    user = await service.register_user(session, data=data)
    return UserPublic.model_validate(user)


@router.post("/login")
async def login(
    data: LoginRequest,
    request: Request,
    session: SessionDep,
    state: AuthStateDep,
    response: Response,
) -> TokenPair:
    """Exchange email and password for an access and a refresh token (throttled)."""
    response.headers.update(NO_STORE)
    client = request.client.host if request.client else None
    return await service.login(
        session, data=data, tokens=state.tokens, throttle=state.throttle, client=client
    )


@router.post("/refresh")
async def refresh_tokens(
    data: RefreshRequest, session: SessionDep, tokens: TokensDep, response: Response
) -> TokenPair:
    """Rotate a refresh token; the old one dies, and its reuse revokes the family."""
    response.headers.update(NO_STORE)
    return await service.refresh(session, token=data.refresh_token, tokens=tokens)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(data: RefreshRequest, session: SessionDep) -> Response:
    """Revoke the refresh token's whole family."""
    await service.logout(session, token=data.refresh_token)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/me")
async def get_me(session: SessionDep, principal: PrincipalDep) -> UserPublic:
    """The caller's account."""
    return UserPublic.model_validate(await service.get_me(session, principal=principal))


@router.get("/.well-known/jwks.json")
async def get_jwks(tokens: TokensDep, response: Response) -> dict[str, Any]:
    """The public keys that verify access tokens."""
    response.headers["Cache-Control"] = "public, max-age=300"
    return tokens.keyring.jwks()
