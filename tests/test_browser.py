"""A real browser page on http://localhost:5173 uses the generated TypeScript client,
EventSource and a plain <img> against the running suite (headless Chromium, Debian's package;
the test command installs it when it can).

The page (tests/browser/) registers, logs in, creates a project, generates a storyboard,
reads two frames of its stream, drops the connection and reconnects with the same ticket where
it stopped, follows the job to its end with the client's `streamJob`, then shows a keyframe by
its signed URL. The test reads the page's report over the DevTools protocol.
"""

from __future__ import annotations

import asyncio
import functools
import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
import websockets

from storycore_devstack.routes import REPO_ROOT
from storycore_devstack.stack import Stack

PAGE = Path(__file__).with_name("browser")
CLIENT = REPO_ROOT / "clients" / "typescript"
ORIGIN_PORT = 5173  # the frontend's dev-server origin, allowed by the suite's CORS in tests


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no headless Chromium here (the test command installs Debian's when root)")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The page, the client compiled to JavaScript and openapi-fetch, served on :5173."""
    tsc = CLIENT / "node_modules" / ".bin" / "tsc"
    fetch_js = CLIENT / "node_modules" / "openapi-fetch" / "dist" / "index.mjs"
    if shutil.which("node") is None or not tsc.exists() or not fetch_js.exists():
        pytest.skip("node or the client's npm packages are missing (the test command installs)")
    root = tmp_path_factory.mktemp("site")
    compiled = subprocess.run(
        [str(tsc), "--noEmit", "false", "--outDir", str(root / "client")],
        cwd=CLIENT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    (root / "vendor").mkdir()
    shutil.copy(fetch_js, root / "vendor" / "openapi-fetch.js")
    for name in ("index.html", "app.js"):
        shutil.copy(PAGE / name, root / name)
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", ORIGIN_PORT)) == 0:
            pytest.skip(f"port {ORIGIN_PORT} is taken here")
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", ORIGIN_PORT), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://localhost:{ORIGIN_PORT}"
    server.shutdown()
    server.server_close()


class _QuietHandler(SimpleHTTPRequestHandler):
    # Module scripts must be served as JavaScript.
    extensions_map: ClassVar[dict[str, str]] = {
        **SimpleHTTPRequestHandler.extensions_map,
        ".js": "text/javascript",
    }

    def log_message(self, *_: Any) -> None:
        pass


async def _page_report(debug_port: int, within: float) -> dict[str, Any]:
    deadline = time.monotonic() + within
    targets: list[dict[str, Any]] = []
    async with httpx.AsyncClient() as http:
        while not targets:
            assert time.monotonic() < deadline, "Chromium never opened the page"
            try:
                listed = (await http.get(f"http://127.0.0.1:{debug_port}/json/list")).json()
                targets = [t for t in listed if t.get("type") == "page"]
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    async with websockets.connect(targets[0]["webSocketDebuggerUrl"], max_size=None) as cdp:
        ask = json.dumps(
            {
                "id": 1,
                "method": "Runtime.evaluate",
                "params": {"expression": "JSON.stringify(window.__result ?? null)"},
            }
        )
        while time.monotonic() < deadline:
            await cdp.send(ask)
            answer = json.loads(await cdp.recv())
            value = answer.get("result", {}).get("result", {}).get("value")
            if value and value != "null":
                report: dict[str, Any] = json.loads(value)
                return report
            await asyncio.sleep(0.25)
    raise AssertionError("the page never reported")


async def test_a_browser_page_uses_the_client_streams_and_media_urls(
    stack: Stack, site: str, tmp_path: Path
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        debug_port = probe.getsockname()[1]
    browser = subprocess.Popen(  # noqa: ASYNC220 - started once, then only awaited over CDP
        [
            _chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--remote-debugging-port={debug_port}",
            # The gateway as the frontend sees it: same site as the page (localhost), so the
            # gateway's Cross-Origin-Resource-Policy: same-site lets <img> load media.
            f"{site}/index.html?gw={stack.gateway_url.replace('127.0.0.1', 'localhost')}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        report = await _page_report(debug_port, within=120)
    finally:
        browser.terminate()
        try:
            browser.wait(timeout=10)
        except subprocess.TimeoutExpired:
            browser.kill()
    assert report["ok"], report
    assert (report["registered"], report["logged_in"], report["project"]) == (201, 200, 201)
    assert report["generated"] == 202
    ids = report["reconnect_ids"]
    assert ids == list(range(1, len(ids) + 1)), ids  # nothing missed, nothing repeated
    assert report["helper_final"] == "completed"
    assert report["keyframe_width"] == 320  # a plain <img> loaded the signed keyframe URL
