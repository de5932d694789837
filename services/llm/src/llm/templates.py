"""Prompt templates. Rendering substitutes ``{name}``; a missing variable is a 422 naming it.

Literal braces in a template (the JSON examples) are doubled, as ``str.format`` wants.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

from llm.errors import TemplateNotFound
from storycore_shared.errors import Unprocessable


@dataclass(frozen=True)
class Template:
    name: str
    description: str
    text: str

    @property
    def variables(self) -> list[str]:
        seen: list[str] = []
        for _, field, _, _ in string.Formatter().parse(self.text):
            if field and field not in seen:
                seen.append(field)
        return seen

    def render(self, values: dict[str, str]) -> str:
        missing = [v for v in self.variables if v not in values]
        if missing:
            raise Unprocessable(
                f"Template {self.name!r} needs: {', '.join(missing)}.",
                extra={"missing_variables": missing},
            )
        return self.text.format_map({k: str(v) for k, v in values.items()})


_JSON_ONLY = "Reply with a single JSON object and nothing else."

TEMPLATES = {
    t.name: t
    for t in [
        Template(
            "story_generation",
            "Draft a short story from a genre, theme and cast.",
            "Write a {length} {genre} story about {theme}. It takes place in {setting} and "
            "follows {characters}. Give it a clear beginning, a turn, and an ending that pays "
            "off the theme.",
        ),
        Template(
            "shot_description",
            "Describe one shot for a storyboard artist.",
            "Describe a single film shot for a storyboard. Scene: {scene_description}. Camera: "
            "{camera_angle}. Light: {lighting}. What happens: {action}. It lasts {duration} "
            "seconds. Name what is in frame, where the eye goes, and how it moves.",
        ),
        Template(
            "character_dialogue",
            "Write an exchange between characters.",
            "Write dialogue between {characters}. Situation: {context}. The dominant emotion is "
            "{emotion}. By the last line the exchange must achieve this: {dialogue_goal}. Keep "
            "each line short and in character.",
        ),
        Template(
            "world_building",
            "Sketch a setting's rules and texture.",
            "Sketch a world set in {time_period}. Technology: {technology}. Society: "
            "{social_structure}. Land: {geography}. Customs: {culture}. Name three tensions "
            "this world produces that a story could use.",
        ),
        Template(
            "location_function",
            "Location loop, step 1: what the place is for.",
            "A {genre} story with a {tone} tone has a place called {location_name}: "
            "{description}. What is this place for, first in the world and then in the story? "
            + _JSON_ONLY
            + ' Shape: {{"function": "...", "sub_function": "...", '
            '"story_role": "..."}}',
        ),
        Template(
            "location_constraints",
            "Location loop, step 2: what limits the place.",
            "The place serves this function: {function} ({sub_function}). Description: "
            "{description}. Genre: {genre}. List the physical, social and practical limits that "
            "follow from it. " + _JSON_ONLY + ' Shape: {{"physical": [], "social": [], '
            '"practical": []}}',
        ),
        Template(
            "location_culture",
            "Location loop, step 3: the habits that grow there.",
            "Given the function {function} and these limits: {constraints}, describe the habits, "
            "rules and rituals of the people who use this place. "
            + _JSON_ONLY
            + ' Shape: {{"customs": [], "unwritten_rules": [], "rituals": []}}',
        ),
        Template(
            "location_reputation",
            "Location loop, step 4: what outsiders say.",
            "{location_name} has the function {function}, the limits {constraints} and the "
            "culture {culture}. How is it seen from outside, by whom, and is that fair? "
            + _JSON_ONLY
            + ' Shape: {{"reputation": "...", "rumours": [], "truth": "..."}}',
        ),
        Template(
            "location_emergent_details",
            "Location loop, step 5: details that follow.",
            "For {location_name} ({genre}): function {function} / {sub_function}, limits "
            "{constraints}, culture {culture}, reputation {reputation}. Invent the concrete "
            "details a visitor would notice that follow from all of this. "
            + _JSON_ONLY
            + ' Shape: {{"sights": [], "sounds": [], "smells": [], "objects": []}}',
        ),
        Template(
            "location_story_hooks",
            "Location loop, step 6: trouble the place invites.",
            "Function {function}, limits {constraints}, culture {culture}, reputation "
            "{reputation}, details {emergent_details}. Propose story hooks this place invites. "
            + _JSON_ONLY
            + ' Shape: {{"hooks": [{{"title": "...", "premise": "..."}}]}}',
        ),
        Template(
            "location_full_generation",
            "The whole location loop in one request.",
            "Build the place {location_name} for a {genre} story with a {tone} tone. Start from "
            "{description}. Context: {context}. Work through its function, limits, culture, "
            "reputation, details and story hooks, each following from the one before. "
            + _JSON_ONLY
            + ' Shape: {{"function": {{}}, "constraints": {{}}, "culture": {{}}, '
            '"reputation": {{}}, "emergent_details": {{}}, "story_hooks": []}}',
        ),
    ]
}


def get_template(name: str) -> Template:
    template = TEMPLATES.get(name)
    if template is None:
        raise TemplateNotFound(f"No template {name!r}; see GET /api/llm/templates.")
    return template
