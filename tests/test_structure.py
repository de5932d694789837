"""The service shape holds: what belongs to the kit is not written again in a service."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SERVICE_SOURCES = sorted((ROOT / "services").glob("*/src/*/**/*.py"))

# Each of these lives once, in storycore_shared; a service that writes it again copies the kit.
FORBIDDEN = {
    "project error class": re.compile(r"^class Project(NotFound|ReadOnly)\b", re.M),
    "project guard": re.compile(r"\.(readable_by|writable_by)\("),
    "consumer loop": re.compile(r"pull_subscribe|\.fetch\(\s*\d|ConsumerConfig\("),
    "job state machine": re.compile(r"^class (Superseded|JobFailure|StreamSlots)\b", re.M),
    "raw Authorization header": re.compile(r"RawAuthorization|authorization: str"),
    "test tooling in a service": re.compile(r"storycore_testkit"),
}


@pytest.mark.parametrize("what", sorted(FORBIDDEN))
def test_no_service_copies_the_kit(what: str) -> None:
    assert SERVICE_SOURCES, "no service sources found"
    offenders = [
        str(path.relative_to(ROOT))
        for path in SERVICE_SOURCES
        if "migrations" not in path.parts and FORBIDDEN[what].search(path.read_text())
    ]
    assert offenders == [], f"{what} written again in: {offenders}"


def test_every_service_has_its_own_tests() -> None:
    services = sorted(p.name for p in (ROOT / "services").iterdir() if p.is_dir())
    without = [s for s in services if not list((ROOT / "services" / s / "tests").glob("test_*.py"))]
    assert without == []
