from __future__ import annotations

from storycore_shared.errors import NotFound, ServiceUnavailable, UpstreamError, UpstreamTimeout


class ProviderNotConfigured(ServiceUnavailable):
    code = "provider_not_configured"
    title = "Provider not configured"


class ProviderUnavailable(ServiceUnavailable):
    code = "provider_unavailable"
    title = "Provider unreachable"


class ProviderTimeout(UpstreamTimeout):
    code = "provider_timeout"
    title = "Provider timed out"


class ProviderBadAnswer(UpstreamError):
    code = "provider_bad_answer"
    title = "Provider gave a bad answer"


class InvalidPlan(UpstreamError):
    code = "invalid_plan"
    title = "The model's plan was invalid twice"


class InvalidScenario(UpstreamError):
    code = "invalid_scenario"
    title = "The model's scenario was invalid twice"


class TemplateNotFound(NotFound):
    code = "template_not_found"
    title = "Template not found"


class ScenarioNotFound(NotFound):
    code = "scenario_not_found"
    title = "Scenario not found"
