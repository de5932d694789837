"""The API docs work offline: /api/docs (the merged spec) and each service's /api/<svc>/docs
load Swagger UI from files the suite serves itself, never from a CDN.

The page is rendered in headless Chromium (Debian's `chromium`; the test command installs it
when it is missing and it can); a screenshot is kept in `.storycore/artefacts/`.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from storycore_devstack.openapi import SPEC_PATH
from storycore_devstack.routes import REPO_ROOT, load_route_table
from storycore_devstack.stack import Stack
from storycore_shared import fallback

ARTEFACTS = REPO_ROOT / ".storycore" / "artefacts"
SWAGGER_DIST = REPO_ROOT / "openapi" / "node_modules" / "swagger-ui-dist"
# Every script and stylesheet must come from the suite itself: a same-origin path.
OFF_SITE = re.compile(r'(?:src|href)="(?!/(?!/))')
needs_swagger = pytest.mark.skipif(
    not (SWAGGER_DIST / "swagger-ui-bundle.js").is_file(),
    reason="swagger-ui-dist is not installed (node/npm missing: the test command installs it)",
)


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no headless Chromium here (the test command installs Debian's when root)")


def _render(url: str, screenshot: Path | None = None) -> str:
    """The DOM of ``url`` after its scripts ran (a virtual-time budget lets Swagger UI fetch
    and render the spec); with ``screenshot``, a PNG of the page too."""
    base = [
        _chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--virtual-time-budget=15000",
        "--window-size=1280,2400",
    ]
    dom = subprocess.run(
        [*base, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=False
    )
    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [*base, f"--screenshot={screenshot}", url],
            capture_output=True,
            timeout=120,
            check=False,
        )
    return dom.stdout


@needs_swagger
async def test_the_fallback_serves_the_spec_the_page_and_swagger_uis_files():
    transport = httpx.ASGITransport(app=fallback.create_app(services=[]))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        spec = await client.get("/api/openapi.json")
        assert spec.status_code == 200
        assert spec.json() == json.loads(SPEC_PATH.read_text())
        page = await client.get("/api/docs")
        assert page.status_code == 200
        assert "text/html" in page.headers["content-type"]
        assert not OFF_SITE.search(page.text)
        for src in re.findall(r'(?:src|href)="([^"]+)"', page.text):
            assert (await client.get(src)).status_code == 200, src
        assert (await client.get("/api/docs/assets/package.json")).status_code == 404
        assert (await client.get("/api/docs/assets/%2e%2e%2fstorycore.json")).status_code == 404


@needs_swagger
def test_the_docs_page_renders_every_service_in_chromium(stack: Stack):
    screenshot = ARTEFACTS / "api-docs.png"
    dom = _render(f"{stack.gateway_url}/api/docs", screenshot)
    assert "swagger-ui" in dom, dom[:500]
    # Every operation is rendered: one block per operation, tags per service.
    spec = json.loads(SPEC_PATH.read_text())
    operations = sum(len(item) for item in spec["paths"].values())
    assert dom.count('class="opblock opblock-') >= operations, "not every operation rendered"
    for entry in load_route_table().domain_services:
        assert f'data-tag="{entry.name}"' in dom, entry.name
    assert "/api/projects/{project_id}" in dom
    assert screenshot.is_file()
    assert screenshot.stat().st_size > 10_000


@needs_swagger
def test_each_services_docs_page_loads_swagger_ui_from_the_suite(stack: Stack, api: httpx.Client):
    for entry in load_route_table().domain_services:
        page = api.get(f"/api/{entry.name}/docs")
        assert page.status_code == 200, entry.name
        assert not OFF_SITE.search(page.text), entry.name
        for src in re.findall(r'(?:src|href)="(/[^"]+)"', page.text):
            assert api.get(src).status_code == 200, (entry.name, src)
    dom = _render(f"{stack.gateway_url}/api/projects/docs")
    assert 'class="opblock opblock-post' in dom, dom[:500]
    assert "/api/projects" in dom
