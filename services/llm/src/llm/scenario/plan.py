"""A production's plan: a scenario document becomes sequences of scenes of shots (pure).

The production saga (projects) turns each planned sequence into a storyboard, each scene's
narration into a voice track laid under that scene's shots, and the meta's tone into a music
bed. :func:`plan_production` is deterministic, so a redelivered command plans the same film.

Rules, with ``k`` shots per scene:

- Sequences: one per scenario sequence, in the document's order, holding the scenes whose
  ``sequence_id`` is that sequence's id, by ``numero``. Scenes attached to no listed sequence
  follow, by ``numero``, in groups of up to 3 titled "Scenes a-b". A sequence without scenes
  is skipped; a sequence of more than ``50 // k`` scenes is split into parts titled
  "<title> (i/n)", so no storyboard passes the 50 shots a storyboard request allows. No scene
  at all: :class:`UnplannableScenario` ("the scenario has no scenes").
- A sequence's title is its ``titre`` (else "Scenes a-b"); its prompt its ``resume`` (else its
  detailed description, its objective, or its scenes' descriptions), 10..4000 characters,
  prefixed by the title when shorter; its tension the scenario's (``moyenne`` by default).
- Every scene gets exactly ``k`` shots. Shot ``i`` follows the scene's ``i``-th action (by
  ``ordre``) when there is one: its camera plan (else angle) gives the framing when it names
  one ("gros plan", "wide", "pov"...), and an action with dialogue is a ``dialogue`` shot.
  Otherwise the first shot is an establishing wide shot, the next ones alternate an action in
  medium and a reaction in close-up. The prompt (at most 2000 characters) is the heading
  (INT/EXT, the place, the time of day), the scene's visual description (else its
  description), the ``i``-th action when it adds to that, the characters present (named by
  the scene's actions or in its text) and the place's atmosphere when the document describes
  that place. The name is "<sequence title> - scene <numero>, shot <i>".
- The narration is the scene's description (else its visual description, the sequence's
  summary, the sequence's title), cut at a sentence or word boundary to at most 280
  characters, and never empty.
- Durations: espeak-ng reads about 14 characters a second, so a narration lasts an estimated
  ``len / 14 + 0.75`` seconds, and the scene must last at least that: each of its shots lasts
  ``max(2.0, estimate / k)`` rounded up to a quarter second. A shot lasts at most 8 s, so the
  narration is first cut to what ``k`` shots of 8 s can hold (101 characters for one shot,
  213 for two, 280 from three on): the scene always outlasts its narration.
- The film's title is the meta's ``titre`` ("Sans titre" when empty), its genre the meta's
  ``ton`` (else its ``theme``, else "dramatique"), as given: the saga maps it to a music genre.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

from llm.scenario.document import Action, Camera, Lieu, ScenarioDocument, Scene, Sequence
from storycore_shared.contracts.planning import PlannedShot
from storycore_shared.contracts.vocabulary import Framing, ShotType, as_framing
from storycore_shared.events.contracts.llm import PlannedScene, PlannedSequence

NARRATION_MAX = 280
READING_CHARS_PER_SECOND = 14.0
READING_LEAD_SECONDS = 0.75
SHOT_MIN_SECONDS = 2.0
SHOT_MAX_SECONDS = 8.0
STORYBOARD_MAX_SHOTS = 50  # StoryboardRequested.shots allows no more
EXTRA_GROUP_SIZE = 3
PROMPT_MAX = 2000
SEQUENCE_PROMPT_MIN, SEQUENCE_PROMPT_MAX = 10, 4000

# The first shot establishes the place; the next ones alternate action and reaction.
ESTABLISHING: tuple[ShotType, Framing] = ("establishing", "wide")
FOLLOWING: tuple[tuple[ShotType, Framing], ...] = (("action", "medium"), ("reaction", "close-up"))

# How writers (and models) name a framing in French or English, most specific first; matched
# on whole words of the lower-cased, unaccented camera plan or angle.
FRAMING_WORDS: tuple[tuple[str, Framing], ...] = (
    ("tres gros plan", "extreme-close-up"),
    ("extreme close", "extreme-close-up"),
    ("insert", "extreme-close-up"),
    ("detail", "extreme-close-up"),
    ("gros plan", "close-up"),
    ("close", "close-up"),
    ("plan d'ensemble", "extreme-wide"),
    ("plan general", "extreme-wide"),
    ("extreme wide", "extreme-wide"),
    ("very wide", "extreme-wide"),
    ("panoramique", "extreme-wide"),
    ("plan large", "wide"),
    ("wide", "wide"),
    ("long shot", "wide"),
    ("plan moyen", "medium"),
    ("plan americain", "medium"),
    ("plan taille", "medium"),
    ("plan rapproche", "medium"),
    ("medium", "medium"),
    ("mid shot", "medium"),
    ("epaule", "over-the-shoulder"),
    ("amorce", "over-the-shoulder"),
    ("over the shoulder", "over-the-shoulder"),
    ("subjecti", "pov"),
    ("point de vue", "pov"),
    ("point of view", "pov"),
    ("pov", "pov"),
)
HEADINGS = {"INT": "INT.", "EXT": "EXT.", "MIX": "INT./EXT."}
MOMENTS = {"JOUR": "day", "NUIT": "night", "AUBE": "dawn", "CREPUSCULE": "dusk"}
DEFAULT_TITLE = "Sans titre"
DEFAULT_GENRE = "dramatique"

_SPACES = re.compile(r"\s+")
_SENTENCE_END = re.compile(r"[.!?…](?=\s|$)")


class UnplannableScenario(ValueError):
    """The document cannot make a film (no scene at all)."""


@dataclass(frozen=True)
class _Group:
    """Scenes that make one planned sequence, with the scenario sequence they came from."""

    title: str
    text: str
    tension: str
    scenes: list[Scene]
    sequence: Sequence | None


def plan_production(
    document: ScenarioDocument, shots_per_scene: int
) -> tuple[str, str, list[PlannedSequence]]:
    """The film's title, its genre label and its sequences (see the module's rules)."""
    if shots_per_scene < 1:
        raise ValueError("shots_per_scene must be at least 1")
    groups = [
        part
        for group in _groups(document)
        for part in _parts(group, STORYBOARD_MAX_SHOTS // shots_per_scene)
    ]
    if not groups:
        raise UnplannableScenario("the scenario has no scenes")
    title = _clean(document.meta.titre) or DEFAULT_TITLE
    genre = _clean(document.meta.ton) or _clean(document.meta.theme) or DEFAULT_GENRE
    return title, genre, [_plan_group(document, group, shots_per_scene) for group in groups]


# -- sequences -------------------------------------------------------------------------------


def _by_numero(scenes: Iterable[Scene]) -> list[Scene]:
    return sorted(scenes, key=lambda scene: scene.numero)


def _span_title(scenes: list[Scene]) -> str:
    first, last = scenes[0].numero, scenes[-1].numero
    return f"Scene {first}" if first == last else f"Scenes {first}-{last}"


def _groups(document: ScenarioDocument) -> list[_Group]:
    groups: list[_Group] = []
    placed: set[int] = set()  # positions in document.scenes: a model's ids may repeat
    for sequence in document.sequences:
        mine = [
            i
            for i, scene in enumerate(document.scenes)
            if i not in placed and sequence.id and scene.sequence_id == sequence.id
        ]
        placed.update(mine)
        scenes = _by_numero(document.scenes[i] for i in mine)
        if scenes:
            text = sequence.resume or sequence.description_detaillee or sequence.objectif
            title = _clean(sequence.titre) or _span_title(scenes)
            groups.append(_Group(title, text, sequence.tension, scenes, sequence))
    loose = _by_numero(scene for i, scene in enumerate(document.scenes) if i not in placed)
    for start in range(0, len(loose), EXTRA_GROUP_SIZE):
        scenes = loose[start : start + EXTRA_GROUP_SIZE]
        text = " ".join(scene.description or scene.description_visuelle for scene in scenes)
        groups.append(_Group(_span_title(scenes), text, "moyenne", scenes, None))
    return groups


def _parts(group: _Group, most: int) -> list[_Group]:
    """The group, split in parts of at most ``most`` scenes when it has more."""
    if len(group.scenes) <= most:
        return [group]
    chunks = [group.scenes[i : i + most] for i in range(0, len(group.scenes), most)]
    return [
        _Group(
            f"{group.title} ({n}/{len(chunks)})", group.text, group.tension, chunk, group.sequence
        )
        for n, chunk in enumerate(chunks, 1)
    ]


def _sequence_prompt(title: str, text: str) -> str:
    text = _clean(text)
    if len(text) < SEQUENCE_PROMPT_MIN:
        text = f"{title}. {text}" if text else title
    return _cut_words(text.ljust(SEQUENCE_PROMPT_MIN, "."), SEQUENCE_PROMPT_MAX)


def _plan_group(document: ScenarioDocument, group: _Group, k: int) -> PlannedSequence:
    return PlannedSequence(
        title=group.title,
        prompt=_sequence_prompt(group.title, group.text),
        tension=group.tension,
        scenes=[_plan_scene(document, group, scene, k) for scene in group.scenes],
    )


# -- scenes and shots ------------------------------------------------------------------------


def _plan_scene(document: ScenarioDocument, group: _Group, scene: Scene, k: int) -> PlannedScene:
    narration = scene_narration(scene, group.sequence, group.title, k)
    seconds = shot_seconds(narration, k)
    actions = sorted(scene.actions, key=lambda action: action.ordre)
    prompt = _scene_prompt(document, scene)
    shots = []
    for i in range(k):
        action = actions[i] if i < len(actions) else None
        shot_type, framing = _shot_kind(i, action)
        shots.append(
            PlannedShot(
                name=f"{group.title[:200]} - scene {scene.numero}, shot {i + 1}",
                prompt=prompt.with_action(action),
                shot_type=shot_type,
                framing=framing,
                duration_seconds=seconds,
            )
        )
    return PlannedScene(
        scene_id=scene.id or f"scene_{scene.numero}", narration=narration, shots=shots
    )


def scene_narration(scene: Scene, sequence: Sequence | None, title: str, k: int) -> str:
    """What the narrator reads over the scene: never empty, and short enough for ``k`` shots."""
    text = (
        _clean(scene.description)
        or _clean(scene.description_visuelle)
        or _clean(sequence.resume if sequence else "")
        or _clean(title)
        or f"Scene {scene.numero}"
    )
    fits = math.floor((SHOT_MAX_SECONDS * k - READING_LEAD_SECONDS) * READING_CHARS_PER_SECOND)
    return _cut_sentences(text, min(NARRATION_MAX, fits))


def narration_seconds(narration: str) -> float:
    """How long espeak-ng takes to read ``narration`` at speed 1, estimated."""
    return len(narration) / READING_CHARS_PER_SECOND + READING_LEAD_SECONDS


def shot_seconds(narration: str, k: int) -> float:
    """Each of the scene's ``k`` shots' duration: together they outlast the narration."""
    share = max(SHOT_MIN_SECONDS, narration_seconds(narration) / k)
    quarters = math.ceil(round(share * 4, 6))  # rounding first: 2.0000000001 is 2.0
    return min(SHOT_MAX_SECONDS, quarters / 4)


def _shot_kind(i: int, action: Action | None) -> tuple[ShotType, Framing]:
    default = ESTABLISHING if i == 0 else FOLLOWING[(i - 1) % len(FOLLOWING)]
    if action is None:
        return default
    framing = camera_framing(action.camera) or default[1]
    shot_type: ShotType = default[0]
    if action.dialogues:
        shot_type = "dialogue"
    elif framing == "extreme-close-up" and i > 0:
        shot_type = "insert"
    return shot_type, framing


def camera_framing(camera: Camera) -> Framing | None:
    """The framing the camera's plan (else angle) names, if it names one."""
    for value in (camera.plan, camera.angle):
        if not value.strip():
            continue
        exact = as_framing(value)
        if exact is not None:
            return cast(Framing, exact)  # as_framing answers one of FRAMINGS
        words = " " + _unaccented(value).replace("-", " ").replace("_", " ") + " "
        for phrase, framing in FRAMING_WORDS:
            if re.search(rf"\b{re.escape(phrase)}", words):
                return framing
    return None


@dataclass(frozen=True)
class _ScenePrompt:
    """What every shot prompt of a scene says; each shot adds its own action."""

    heading: str
    visual: str
    context: list[str]

    def with_action(self, action: Action | None) -> str:
        described = _clean(action.description) if action else ""
        adds = described if described.lower() not in self.visual.lower() else ""
        parts = [self.heading, self.visual, _cut_words(adds, 500), *self.context]
        return _cut_words(" ".join(_as_sentence(part) for part in parts if part), PROMPT_MAX)


def _scene_prompt(document: ScenarioDocument, scene: Scene) -> _ScenePrompt:
    lieu = _lieu(document, scene)
    place = _clean(scene.lieu) or (lieu.nom if lieu else "")
    where = " - ".join(x for x in (place, MOMENTS.get(scene.moment, "")) if x)
    context = []
    if names := characters_present(document, scene):
        context.append("Characters: " + ", ".join(names))
    if lieu and _clean(lieu.atmosphere):
        context.append("Atmosphere: " + _cut_words(_clean(lieu.atmosphere), 300))
    return _ScenePrompt(
        heading=f"{HEADINGS[scene.type]} {where}".strip(),
        visual=_cut_words(_clean(scene.description_visuelle or scene.description), 1000),
        context=context,
    )


def _lieu(document: ScenarioDocument, scene: Scene) -> Lieu | None:
    name = _clean(scene.lieu).lower()
    for lieu in document.lieux:
        if (scene.lieu_id and lieu.id == scene.lieu_id) or (name and lieu.nom.lower() == name):
            return lieu
    return None


def characters_present(document: ScenarioDocument, scene: Scene) -> list[str]:
    """Who is in the scene: those its actions name (by name or id), then the document's
    characters named in its text, in the document's order."""
    by_id = {p.id: p.nom for p in document.personnages if p.id}
    named = [by_id.get(n, n) for action in scene.actions for n in action.personnages]
    text = " ".join(
        [scene.description, scene.description_visuelle, *(a.description for a in scene.actions)]
    )
    mentioned = [
        p.nom
        for p in document.personnages
        if p.nom.strip() and re.search(rf"\b{re.escape(p.nom.strip())}\b", text)
    ]
    ordered = [p.nom for p in document.personnages if p.nom in {*named, *mentioned}]
    extra = [n for n in named if n not in ordered]
    return list(dict.fromkeys(_clean(n) for n in [*ordered, *extra] if _clean(n)))


# -- text ------------------------------------------------------------------------------------


def _clean(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


def _unaccented(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _as_sentence(text: str) -> str:
    return text if text[-1] in ".!?…" else f"{text}."


def _cut_words(text: str, limit: int) -> str:
    """``text``, or its longest run of whole words that fits ``limit`` with an ellipsis."""
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    if " " in head:
        head = head.rsplit(" ", 1)[0]
    return head.rstrip(" ,;:-") + "…"


def _cut_sentences(text: str, limit: int) -> str:
    """``text`` cut at its last sentence end within ``limit`` when that keeps at least a third
    of it, else at a word boundary."""
    if len(text) <= limit:
        return text
    ends = [m.end() for m in _SENTENCE_END.finditer(text) if m.end() <= limit]
    if ends and ends[-1] >= limit // 3:
        return text[: ends[-1]]
    return _cut_words(text, limit)
