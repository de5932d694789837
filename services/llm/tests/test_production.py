"""The productions' scenario step: the plan's rules (pure), and the command's handler on the
real database (the scenario it stores, the answers it adds to the outbox, idempotence)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from llm.config import Settings
from llm.errors import ProviderUnavailable
from llm.models import Scenario, event_tables
from llm.providers import Completion, Prompt
from llm.providers.mock import MockProvider
from llm.providers.registry import Providers
from llm.scenario.document import (
    Action,
    Camera,
    Lieu,
    Meta,
    Personnage,
    ScenarioDocument,
    Scene,
    Sequence,
)
from llm.scenario.extract import extract_scenario
from llm.scenario.plan import (
    UnplannableScenario,
    camera_framing,
    narration_seconds,
    plan_production,
)
from llm.scenario.production import on_scenario_requested
from storycore_shared.contracts.vocabulary import FRAMINGS, SHOT_TYPES
from storycore_shared.events.contracts.llm import PlannedSequence
from storycore_shared.events.contracts.productions import ScenarioRequested

STORY = """At dawn Mara climbs the old lighthouse above the harbour. The great lamp is dead \
and the ships are coming home. Tom, the keeper's son, hands Mara a new wick and a box of matches.

A storm rolls in from the sea. Waves crash against the rocks and the wind screams. Tom runs \
along the harbour with a rope while Mara fights to light the lamp.

At night the lamp burns again. The fishing boats find the harbour one by one. Mara and Tom \
watch them from the gallery, exhausted and smiling."""

LONG = " ".join(
    f"Sentence {i} of a description that keeps going on about the storm and the sea."
    for i in range(30)
)


def _shots(sequences: list[PlannedSequence]) -> list[Any]:
    return [shot for s in sequences for scene in s.scenes for shot in scene.shots]


def _document() -> ScenarioDocument:
    """A model-like document: described places, loose scenes, an empty sequence, long text."""
    return ScenarioDocument(
        meta=Meta(titre="Le phare", theme="la lumière"),
        personnages=[Personnage(id="perso_1", nom="Mara"), Personnage(id="perso_2", nom="Tom")],
        lieux=[
            Lieu(id="lieu_1", nom="Phare", atmosphere="salt wind, the old lamp humming"),
            Lieu(id="lieu_2", nom="Port"),
        ],
        sequences=[
            Sequence(id="seq_a", titre="", resume="Court", tension="elevee"),
            Sequence(id="seq_empty", titre="Nothing here", resume="No scene is in it."),
            Sequence(id="seq_b", titre="Night", resume="The lamp burns again over the port."),
        ],
        scenes=[
            Scene(
                id="s2",
                sequence_id="seq_a",
                numero=2,
                type="EXT",
                lieu="Port",
                moment="NUIT",
                description=LONG,
                actions=[Action(ordre=1, description="Tom runs.", personnages=["perso_2"])],
            ),
            Scene(
                id="s1",
                sequence_id="seq_a",
                numero=1,
                type="INT",
                lieu_id="lieu_1",
                moment="AUBE",
                description_visuelle="Mara climbs the stairs of the lighthouse.",
                actions=[
                    Action(ordre=2, description="She looks out.", camera=Camera(plan="POV")),
                    Action(
                        ordre=1,
                        description="Mara lights the wick.",
                        camera=Camera(plan="Très gros plan"),
                    ),
                ],
            ),
            Scene(id="s3", sequence_id="seq_b", numero=3, lieu="Port", description="Calm."),
            *(
                Scene(id=f"x{n}", sequence_id="", numero=n, description=f"Loose scene {n}.")
                for n in (7, 4, 5, 6)
            ),
            Scene(id="s8", sequence_id="seq_missing", numero=8, description=""),
        ],
    )


# -- the plan ----------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 2, 3, 8])
def test_a_three_paragraph_story_gives_three_sequences_of_two_scenes_of_k_shots(k: int) -> None:
    title, genre, sequences = plan_production(extract_scenario(STORY, "The keeper"), k)
    assert (title, genre) == ("The keeper", "sombre")  # the mock's tone: "dead" is critical
    assert [len(s.scenes) for s in sequences] == [2, 2, 2]
    assert [s.tension for s in sequences] == ["critique", "elevee", "moyenne"]
    assert [scene.scene_id for s in sequences for scene in s.scenes] == [
        f"scene_{n}" for n in range(1, 7)
    ]
    assert all(len(scene.shots) == k for s in sequences for scene in s.scenes)
    assert len(_shots(sequences)) == 6 * k
    assert sequences[0].scenes[0].shots[0].name == "At dawn Mara climbs the - scene 1, shot 1"


@pytest.mark.parametrize("k", range(1, 9))
def test_shots_use_the_vocabulary_and_outlast_the_narration(k: int) -> None:
    for document in (extract_scenario(STORY, None), _document()):
        _, _, sequences = plan_production(document, k)
        for sequence in sequences:
            assert 10 <= len(sequence.prompt) <= 4000
            for scene in sequence.scenes:
                assert 0 < len(scene.narration.strip()) <= 280
                assert scene.narration == scene.narration.strip()
                seconds = [shot.duration_seconds for shot in scene.shots]
                assert all(2.0 <= s <= 8.0 and (s * 4).is_integer() for s in seconds)
                assert sum(seconds) >= narration_seconds(scene.narration)
                for shot in scene.shots:
                    assert shot.shot_type in SHOT_TYPES
                    assert shot.framing in FRAMINGS
                    assert 0 < len(shot.prompt) <= 2000
                    assert len(shot.name) <= 255


def test_durations_are_the_reading_estimate_rounded_up_to_quarter_seconds() -> None:
    _, _, sequences = plan_production(extract_scenario(STORY, None), 3)
    scene = sequences[0].scenes[0]
    # 111 characters: 111 / 14 + 0.75 = 8.68 s, 2.89 s a shot, rounded up to 3.0.
    assert len(scene.narration) == 111
    assert [shot.duration_seconds for shot in scene.shots] == [3.0, 3.0, 3.0]
    short = sequences[0].scenes[1]
    assert [shot.duration_seconds for shot in short.shots] == [2.0, 2.0, 2.0]  # the floor


def test_long_narrations_are_cut_at_a_sentence_to_what_the_shots_can_hold() -> None:
    for k, most in ((1, 101), (2, 213), (3, 280), (8, 280)):
        _, _, sequences = plan_production(_document(), k)
        narration = sequences[0].scenes[1].narration  # scene s2, LONG
        assert LONG.startswith(narration)
        assert most - 80 < len(narration) <= most
        assert narration.endswith(".")
        assert all(shot.duration_seconds <= 8.0 for shot in sequences[0].scenes[1].shots)


def test_sequences_group_scenes_by_numero_and_loose_scenes_by_three() -> None:
    title, genre, sequences = plan_production(_document(), 2)
    assert (title, genre) == ("Le phare", "la lumière")  # no ton: the theme
    assert [(s.title, [scene.scene_id for scene in s.scenes]) for s in sequences] == [
        ("Scenes 1-2", ["s1", "s2"]),
        ("Night", ["s3"]),
        ("Scenes 4-6", ["x4", "x5", "x6"]),
        ("Scenes 7-8", ["x7", "s8"]),
    ]
    assert [s.tension for s in sequences] == ["elevee", "moyenne", "moyenne", "moyenne"]
    # A summary under 10 characters is prefixed by the title; loose scenes tell their own.
    assert sequences[0].prompt == "Scenes 1-2. Court"
    assert sequences[2].prompt == "Loose scene 4. Loose scene 5. Loose scene 6."
    # s8 has no text at all: its group's title is read.
    assert sequences[3].scenes[1].narration == "Scenes 7-8"


def test_prompts_tell_place_time_visuals_action_characters_and_atmosphere() -> None:
    _, _, sequences = plan_production(_document(), 3)
    s1, s2 = sequences[0].scenes
    first, second, third = (shot.prompt for shot in s1.shots)
    assert first.startswith("INT. Phare - dawn. Mara climbs the stairs of the lighthouse.")
    assert "Mara lights the wick." in first  # the first action, by ordre
    assert "She looks out." in second
    assert "Mara lights the wick." not in third  # no third action
    for prompt in (first, second, third):
        assert "Characters: Mara." in prompt
        assert "Atmosphere: salt wind, the old lamp humming." in prompt
    assert s2.shots[0].prompt.startswith("EXT. Port - night.")
    assert "Characters: Tom." in s2.shots[0].prompt  # named by id in the action
    assert "Atmosphere" not in s2.shots[0].prompt  # the port has none


def test_framing_follows_the_camera_else_wide_medium_close_up() -> None:
    _, _, sequences = plan_production(_document(), 4)
    s1, s2 = sequences[0].scenes
    assert [(shot.shot_type, shot.framing) for shot in s1.shots] == [
        ("establishing", "extreme-close-up"),  # "Très gros plan"
        ("action", "pov"),  # "POV"
        ("reaction", "close-up"),
        ("action", "medium"),
    ]
    assert [(shot.shot_type, shot.framing) for shot in s2.shots] == [
        ("establishing", "wide"),  # an action without a camera
        ("action", "medium"),
        ("reaction", "close-up"),
        ("action", "medium"),
    ]


@pytest.mark.parametrize(
    ("plan", "angle", "framing"),
    [
        ("gros plan", "", "close-up"),
        ("Plan d'ensemble sur la baie", "", "extreme-wide"),
        ("plan américain", "", "medium"),
        ("close_up", "", "close-up"),
        ("", "vue subjective", "pov"),
        ("en amorce de l'épaule", "", "over-the-shoulder"),
        ("travelling", "dutch", None),
        ("", "", None),
    ],
)
def test_camera_plans_name_framings_in_french_or_english(
    plan: str, angle: str, framing: str | None
) -> None:
    assert camera_framing(Camera(plan=plan, angle=angle)) == framing


def test_a_dialogue_action_is_a_dialogue_shot() -> None:
    document = extract_scenario(STORY, None)
    document.scenes[0].actions[1].dialogues = ["Tom: It is dead."]
    _, _, sequences = plan_production(document, 2)
    assert [shot.shot_type for shot in sequences[0].scenes[0].shots] == ["establishing", "dialogue"]


def test_a_sequence_past_fifty_shots_is_split() -> None:
    document = ScenarioDocument(
        sequences=[Sequence(id="seq_1", titre="Long", resume="A very long sequence.")],
        scenes=[
            Scene(id=f"s{n}", sequence_id="seq_1", numero=n, description="A beat.")
            for n in range(1, 15)
        ],
    )
    _, _, sequences = plan_production(document, 8)  # 50 // 8 = 6 scenes a storyboard
    assert [(s.title, len(s.scenes)) for s in sequences] == [
        ("Long (1/3)", 6),
        ("Long (2/3)", 6),
        ("Long (3/3)", 2),
    ]
    assert all(len(_shots([s])) <= 50 for s in sequences)


def test_a_scenario_without_scenes_cannot_be_planned() -> None:
    document = ScenarioDocument(sequences=[Sequence(id="seq_1", titre="Empty")])
    with pytest.raises(UnplannableScenario, match="the scenario has no scenes"):
        plan_production(document, 3)
    title, genre, _ = plan_production(ScenarioDocument(scenes=[Scene(description="x")]), 1)
    assert (title, genre) == ("Sans titre", "dramatique")


# -- the handler -------------------------------------------------------------------------------

OWNER = uuid.uuid4()
STRANGER = uuid.uuid4()


class Unreachable(MockProvider):
    """A real provider's behaviour (no mock extractor) whose server cannot be reached."""

    name = "ollama"
    mock = False

    def __init__(self) -> None:
        self.prompts: list[Prompt] = []

    async def complete(self, prompt: Prompt) -> Completion:
        self.prompts.append(prompt)
        raise ProviderUnavailable("ollama is unreachable at http://model:11434.")


@pytest.fixture
def providers() -> Providers:
    return Providers(
        Settings(
            DATABASE_URL="postgresql://unused/unused",
            NATS_URL="nats://127.0.0.1:9",
            JWKS_URL="http://127.0.0.1:9/jwks",
            ENVIRONMENT="test",
        )
    )


def _command(owner: uuid.UUID = OWNER, **fields: Any) -> ScenarioRequested:
    production_id = fields.pop("production_id", uuid.uuid4())
    return ScenarioRequested.model_validate(
        {
            "id": uuid.uuid5(production_id, "scenario.requested"),
            "production_id": production_id,
            "project_id": uuid.uuid4(),
            "owner_id": owner,
            "scenario_id": uuid.uuid5(production_id, "scenario"),
            "story": STORY,
            "title": "The keeper",
            "shots_per_scene": 3,
            **fields,
        }
    )


async def _outbox(session: AsyncSession) -> list[tuple[str, dict[str, Any]]]:
    rows = await session.execute(
        select(event_tables.outbox.c.subject, event_tables.outbox.c.payload).order_by(
            event_tables.outbox.c.seq
        )
    )
    return [(subject, payload["data"]) for subject, payload in rows]


async def test_a_story_becomes_the_owners_scenario_and_its_plan(
    session: AsyncSession, providers: Providers
) -> None:
    command = _command()
    await on_scenario_requested(session, command, providers=providers)

    scenario = await session.get(Scenario, command.scenario_id)
    assert scenario is not None
    assert (scenario.user_id, scenario.title, scenario.provider) == (OWNER, "The keeper", "mock")
    assert scenario.story == STORY
    (created_subject, created), (planned_subject, planned) = await _outbox(session)
    assert (created_subject, planned_subject) == ("scenario.created", "scenario.planned")
    assert created == {
        "id": str(command.scenario_id),
        "owner_id": str(OWNER),
        "title": "The keeper",
        "sequences": 3,
        "scenes": 6,
    }
    assert planned["id"] == str(uuid.uuid5(command.production_id, "scenario.planned"))
    assert {k: planned[k] for k in ("production_id", "project_id", "owner_id", "scenario_id")} == {
        "production_id": str(command.production_id),
        "project_id": str(command.project_id),
        "owner_id": str(OWNER),
        "scenario_id": str(command.scenario_id),
    }
    assert (planned["title"], planned["genre"]) == ("The keeper", "sombre")
    assert [len(s["scenes"]) for s in planned["sequences"]] == [2, 2, 2]
    assert all(len(scene["shots"]) == 3 for s in planned["sequences"] for scene in s["scenes"])


async def test_the_same_command_twice_creates_and_answers_once(
    session: AsyncSession, providers: Providers
) -> None:
    command = _command()
    await on_scenario_requested(session, command, providers=providers)
    first = await _outbox(session)
    await on_scenario_requested(session, command, providers=providers)

    count = await session.scalar(select(func.count()).select_from(Scenario))
    assert count == 1
    assert await _outbox(session) == first
    assert [subject for subject, _ in first] == ["scenario.created", "scenario.planned"]


async def test_without_a_story_the_owners_scenario_is_read_and_planned(
    session: AsyncSession, providers: Providers
) -> None:
    made = _command()
    await on_scenario_requested(session, made, providers=providers)
    command = _command(story=None, scenario_id=made.scenario_id, shots_per_scene=1)
    await on_scenario_requested(session, command, providers=providers)

    subjects = [subject for subject, _ in await _outbox(session)]
    assert subjects == ["scenario.created", "scenario.planned", "scenario.planned"]
    _, planned = (await _outbox(session))[-1]
    assert planned["id"] == str(uuid.uuid5(command.production_id, "scenario.planned"))
    assert planned["scenario_id"] == str(made.scenario_id)
    assert sum(len(s["scenes"]) for s in planned["sequences"]) == 6


async def test_another_users_scenario_is_a_plan_failure(
    session: AsyncSession, providers: Providers
) -> None:
    theirs = _command(STRANGER)
    await on_scenario_requested(session, theirs, providers=providers)
    before = await _outbox(session)

    command = _command(story=None, scenario_id=theirs.scenario_id)
    await on_scenario_requested(session, command, providers=providers)
    await on_scenario_requested(session, command, providers=providers)  # answered once

    [(subject, failed)] = (await _outbox(session))[len(before) :]
    assert subject == "scenario.plan_failed"
    assert failed == {
        "id": str(uuid.uuid5(command.production_id, "scenario.plan_failed")),
        "production_id": str(command.production_id),
        "project_id": str(command.project_id),
        "owner_id": str(OWNER),
        "error": f"no scenario {theirs.scenario_id} for this user",
    }


async def test_a_story_under_another_users_scenario_id_creates_nothing(
    session: AsyncSession, providers: Providers
) -> None:
    theirs = _command(STRANGER)
    await on_scenario_requested(session, theirs, providers=providers)
    command = _command(scenario_id=theirs.scenario_id)
    await on_scenario_requested(session, command, providers=providers)

    scenario = await session.get(Scenario, theirs.scenario_id)
    assert scenario is not None
    assert scenario.user_id == STRANGER
    subject, failed = (await _outbox(session))[-1]
    assert (subject, failed["error"]) == (
        "scenario.plan_failed",
        f"the scenario id {theirs.scenario_id} is taken",
    )


async def test_a_missing_scenario_or_an_invalid_story_is_a_plan_failure(
    session: AsyncSession, providers: Providers
) -> None:
    missing = _command(story=None)
    await on_scenario_requested(session, missing, providers=providers)
    short = _command(story="Too short")
    await on_scenario_requested(session, short, providers=providers)

    assert await session.scalar(select(func.count()).select_from(Scenario)) == 0
    assert [(s, d["error"]) for s, d in await _outbox(session)] == [
        ("scenario.plan_failed", f"no scenario {missing.scenario_id} for this user"),
        ("scenario.plan_failed", "invalid story: String should have at least 10 characters"),
    ]


async def test_an_unreachable_provider_is_tried_three_times_then_failed(
    session: AsyncSession, providers: Providers
) -> None:
    down = Unreachable()
    providers.available["ollama"] = down
    providers.default = "ollama"
    command = _command()
    await on_scenario_requested(session, command, providers=providers, retry_delays=(0.0, 0.0))

    assert len(down.prompts) == 3
    assert STORY in down.prompts[0].messages[-1].content
    assert await session.get(Scenario, command.scenario_id) is None
    assert [(s, d["error"]) for s, d in await _outbox(session)] == [
        ("scenario.plan_failed", "ollama is unreachable at http://model:11434.")
    ]
