"""llm rules that need no server: provider choice, templates, the mock planner, exports."""

from __future__ import annotations

import pytest

from llm.config import Settings
from llm.errors import ProviderNotConfigured
from llm.planner import mock_plan
from llm.providers.registry import Providers
from llm.scenario.export import export
from llm.scenario.extract import extract_scenario
from llm.templates import TEMPLATES
from storycore_shared.contracts.planning import PlanRequest
from storycore_shared.errors import Unprocessable

BASE = {
    "DATABASE_URL": "postgresql://x@h/db",
    "NATS_URL": "nats://h:1",
    "JWKS_URL": "http://h/jwks",
}


def test_an_unconfigured_provider_is_503_not_a_silent_fallback():
    providers = Providers(Settings(**BASE))  # type: ignore[arg-type]
    assert set(providers.available) == {"mock"}
    assert providers.select(None).name == "mock"
    with pytest.raises(ProviderNotConfigured) as caught:
        providers.select("openai")
    assert caught.value.status == 503
    keyless = Providers(Settings(**BASE, ANTHROPIC_URL="http://h"))  # type: ignore[arg-type]
    assert "anthropic" not in keyless.available


def test_every_template_renders_with_its_variables_and_names_the_missing():
    for template in TEMPLATES.values():
        values = {v: f"<{v}>" for v in template.variables}
        text = template.render(values)
        assert all(f"<{v}>" in text for v in template.variables)
        if template.variables:
            with pytest.raises(Unprocessable, match=template.variables[-1]):
                template.render(dict.fromkeys(template.variables[:-1], "x"))


def test_mock_plan_cycles_sentences_and_respects_the_count():
    request = PlanRequest(prompt="One thing happens. Then another.", shot_count=5)
    shots = mock_plan(request)
    assert len(shots) == 5
    assert [s.prompt for s in shots] == [
        "One thing happens.",
        "Then another.",
        "One thing happens.",
        "Then another.",
        "One thing happens.",
    ]
    assert shots[0].shot_type == "establishing"
    assert mock_plan(request) == shots


def test_exports_escape_html_and_keep_unicode():
    doc = extract_scenario(
        "Élodie entre dans la maison. Élodie voit <b>Paul</b>. Paul sourit à Élodie.",
        "Été & <hiver>",
    )
    html = export(doc, "html")
    assert "<b>" not in html
    assert "Été &amp; &lt;hiver&gt;" in html
    assert "Été & <hiver>" in export(doc, "json")
