"""The kit keeps every service process light: importing it and building job routes loads no
optional extra (aiohttp, rich, pygments), no pydantic v1 and no SSE library until a stream is
answered; httpx and nats-py still work, and pydantic v1 fails loudly if something asks for it."""

from __future__ import annotations

from storycore_testkit.subprocess_report import python_report

PROGRAM = """
import json, sys
import storycore_shared
from fastapi import FastAPI
from storycore_shared.jobs.routes import job_router

app = FastAPI()
app.include_router(job_router(lambda: None, prefix="/api/things/jobs", tags=["things"]))
heavy = ("aiohttp", "rich", "pygments", "sse_starlette")
loaded = sorted({m.split(".")[0] for m in sys.modules if sys.modules[m] is not None} & set(heavy))
try:
    from pydantic import v1  # noqa: F401
    v1_error = None
except ImportError as exc:
    v1_error = type(exc).__name__
import httpx, nats
print(json.dumps({
    "loaded": loaded,
    "v1": v1_error,
    "routes": sorted(app.openapi()["paths"]),
    "clients": [callable(httpx.AsyncClient), callable(nats.connect)],
}))
"""


def test_the_kit_loads_no_optional_extra_and_no_pydantic_v1() -> None:
    report = python_report(PROGRAM)
    assert report["loaded"] == [], report
    assert report["v1"] == "ModuleNotFoundError"
    assert "/api/things/jobs/{job_id}/stream" in report["routes"]
    assert report["clients"] == [True, True]
