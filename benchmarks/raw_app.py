"""The ORM benchmark's baseline: the same query as GET /api/projects/{id}, on a bare asyncpg
pool behind a bare Starlette route (no token check, no ORM, no pydantic). Started by
orm_bench.py as `uvicorn raw_app:app` with RAW_DSN in the environment."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

QUERY = "select * from projects.project where id = $1"


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    app.state.pool = await asyncpg.create_pool(os.environ["RAW_DSN"], min_size=5, max_size=10)
    yield
    await app.state.pool.close()


async def get_project(request: Request) -> Response:
    async with request.app.state.pool.acquire() as conn:
        row = await conn.fetchrow(QUERY, request.path_params["project_id"])
    if row is None:
        return Response(status_code=404)
    return Response(json.dumps(dict(row), default=str), media_type="application/json")


app = Starlette(routes=[Route("/api/projects/{project_id:uuid}", get_project)], lifespan=lifespan)
