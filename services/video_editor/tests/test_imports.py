"""The API process stays light: what only the worker or a first upload needs is not imported
with it (PyAV, numpy, Pillow, OpenTimelineIO, and smart_open's boto3 through
streaming-form-data), and a deferred module still works once it is used."""

from __future__ import annotations

import json
import os

from storycore_testkit.subprocess_report import python_report

HEAVY = ("av", "numpy", "PIL", "opentimelineio", "boto3", "botocore", "requests", "smart_open")

PROGRAM = """
import json, sys
from video_editor.main import create_app
create_app()
loaded = sorted({m.split(".")[0] for m in sys.modules} & set(json.loads(sys.argv[1])))
real = sys.modules["smart_open"].__class__.__name__
from streaming_form_data import targets
opened = callable(targets.smart_open.open)  # the first use imports the real module
after = type(sys.modules["smart_open"]).__name__, "boto3" in sys.modules
print(json.dumps({"loaded": loaded, "before": real, "opened": opened, "after": after}))
"""


def test_the_api_imports_no_media_library_and_defers_smart_open() -> None:
    env = {
        **os.environ,
        "VIDEO_EDITOR_DATABASE_URL": "postgresql://x:y@127.0.0.1:9/db",
        "VIDEO_EDITOR_NATS_URL": "nats://127.0.0.1:9",
        "STORYCORE_JWKS_URL": "http://127.0.0.1:9/jwks",
        "STORYCORE_MEDIA_SIGNING_KEY": "a key for this test only",
        "STORYCORE_ENVIRONMENT": "test",
        "STORYCORE_PROJECTS_URL": "http://127.0.0.1:9",
        "STORYCORE_SEQUENCES_URL": "http://127.0.0.1:9",
        "STORYCORE_AUDIO_URL": "http://127.0.0.1:9",
    }
    report = python_report(PROGRAM, json.dumps(HEAVY), env=env)
    assert report["loaded"] == ["smart_open"], report  # only the stand-in
    assert report["before"] == "_Deferred"
    assert report["opened"] is True
    assert report["after"] == ["module", True]
