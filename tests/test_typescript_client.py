"""The TypeScript client (clients/typescript): generated from the committed spec, type-checked,
and its stream and media helpers behave.

Runs where node is installed; the test command installs the pinned npm packages (see
storycore_devstack.check). Skipped, saying why, where they are not.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import get_args

import pytest

from storycore_devstack.routes import REPO_ROOT
from storycore_shared.contracts.vocabulary import CameraAngle, Framing, ShotType

CLIENT = REPO_ROOT / "clients" / "typescript"
BIN = CLIENT / "node_modules" / ".bin"
SCHEMA = CLIENT / "src" / "schema.d.ts"

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not (BIN / "tsc").exists(),
    reason="node or the client's npm packages are missing (the test command installs them)",
)


def _run(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv], cwd=CLIENT, capture_output=True, text=True, timeout=180
    )


def test_the_pinned_versions_are_exact():
    manifest = json.loads((CLIENT / "package.json").read_text())
    pins = {**manifest["dependencies"], **manifest["devDependencies"]}
    assert {"openapi-fetch", "openapi-typescript", "typescript"} <= set(pins)
    assert all(re.fullmatch(r"\d+\.\d+\.\d+", version) for version in pins.values()), pins
    assert not (CLIENT / "package-lock.json").exists()


def test_the_committed_types_are_generated_from_the_committed_spec(tmp_path: Path):
    fresh = tmp_path / "schema.d.ts"
    script = json.loads((CLIENT / "package.json").read_text())["scripts"]["generate"].split()
    assert script[0] == "openapi-typescript"
    assert script[-2] == "--output"
    result = _run(BIN / "openapi-typescript", *script[1:-1], fresh)
    assert result.returncode == 0, result.stderr
    assert SCHEMA.read_text() == fresh.read_text(), (
        "clients/typescript/src/schema.d.ts is stale: run `npm run generate` in clients/typescript"
    )


def test_the_client_type_checks():
    result = _run(BIN / "tsc", "--noEmit")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_shot_vocabulary_is_exported_from_the_spec():
    schema = SCHEMA.read_text()
    for name, kind in (("ShotType", ShotType), ("Framing", Framing), ("CameraAngle", CameraAngle)):
        union = " | ".join(f'"{value}"' for value in get_args(kind))
        assert f"{name}: {union};" in schema, name
        assert f'export type {name} = Schemas["{name}"];' in (CLIENT / "src/index.ts").read_text()


def test_stream_and_media_helpers_renew_tickets_and_resolve_urls():
    built = CLIENT / "node_modules" / ".cache" / "storycore-test"
    shutil.rmtree(built, ignore_errors=True)
    compiled = _run(BIN / "tsc", "--noEmit", "false", "--outDir", built)
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    result = _run("node", CLIENT / "test" / "stream.test.mjs", built)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok" in result.stdout
