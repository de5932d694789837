"""What the shots service builds at start-up, and the dependency that hands it to routes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends

from shots.service import Shots
from storycore_shared.app import state_dependency
from storycore_shared.media import MediaSigner


@dataclass(frozen=True)
class ShotsState:
    shots: Shots
    signer: MediaSigner


async def get_shots(
    state: Annotated[ShotsState, Depends(state_dependency(ShotsState))],
) -> Shots:
    return state.shots


async def get_signer(
    state: Annotated[ShotsState, Depends(state_dependency(ShotsState))],
) -> MediaSigner:
    return state.signer


ShotsDep = Annotated[Shots, Depends(get_shots)]
SignerDep = Annotated[MediaSigner, Depends(get_signer)]
