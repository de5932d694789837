"""The deterministic extractor used with the mock provider.

It reads the story itself, so the number of sequences and scenes follows the story: one
sequence per paragraph (or per four sentences of a single paragraph), one scene per two
sentences. Characters are recurring capitalised names, places come from place words, tension
and time of day from the vocabulary of each passage. English and French words are known.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime

from llm.scenario.document import (
    Acte,
    Action,
    Lieu,
    Meta,
    Objet,
    Personnage,
    ScenarioDocument,
    Scene,
    Sequence,
    Structure,
)

_SENTENCE = re.compile(r"(?<=[.!?…])\s+")


def _vocab(text: str) -> frozenset[str]:
    return frozenset(text.split())


_WORD = re.compile(r"[A-Za-zÀ-ÖØ-öø-ÿ'-]+")

NOT_NAMES = _vocab("""
the a an he she they it we i you his her their its our my your but and then when as in
on at after before this that there these those one two so if or of to from by with while
until once yes no not le la les un une des il elle ils elles et mais puis quand dans sur
ce cette ces on nous vous je tu son sa ses leur leurs au aux du de en avec pour sans
alors chapter chapitre
""")
INTERIOR = _vocab("""
house lighthouse room kitchen bedroom office hall bar cafe café church apartment library cellar
attic corridor shop restaurant hospital school castle lab laboratory museum prison
warehouse cabin hotel maison phare chambre cuisine bureau salle église appartement
bibliothèque cave grenier couloir magasin hôpital école château musée entrepôt cabane
hôtel
""")
EXTERIOR = _vocab("""
forest street beach harbour harbor port sea river field mountain city village garden
road desert park square bridge lake roof rooftop alley dock shore cliff island valley
forêt rue plage mer rivière champ montagne ville jardin route désert parc place pont lac
toit ruelle quai falaise île vallée
""")
MIXED = _vocab("""
station ship train boat market gare navire bateau marché
""")
TENSION = {
    "critique": _vocab("""
dies die death dead kill killed murder explodes explosion bomb meurt mort tue tué
explose bombe
"""),
    "elevee": _vocab("""
fight chase gun scream fear attack run runs flee danger threat storm fire blood combat
fuite attaque peur danger menace tempête feu sang cri court fuit
"""),
    "basse": _vocab("""
calm quiet peaceful sleep smile laugh rest calme paisible dort sourit rit repos
"""),
}
MOMENTS = {
    "NUIT": {"night", "midnight", "nuit", "minuit"},
    "AUBE": {"dawn", "sunrise", "aube"},
    "CREPUSCULE": {"dusk", "sunset", "twilight", "crépuscule", "soir", "evening"},
}
THING_MARKERS = {"a", "an", "the", "his", "her", "their", "un", "une", "le", "la", "son", "sa"}
STOP_COMMON = NOT_NAMES | _vocab("""
was were had has have been would could will said says into out over under about than
very more some any what who which where were est était sont avait dit qui que quoi où
plus très
""")


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text.strip()) if s.strip()]


def _segments(story: str) -> list[list[str]]:
    paragraphs = [p for p in re.split(r"\n\s*\n", story.strip()) if p.strip()]
    if len(paragraphs) > 1:
        return [_sentences(p) for p in paragraphs]
    sentences = _sentences(story)
    return [sentences[i : i + 4] for i in range(0, len(sentences), 4)] or [[story.strip()]]


def _words(text: str) -> list[str]:
    return _WORD.findall(text)


def _characters(story: str) -> list[tuple[str, int]]:
    counts: Counter[str] = Counter()
    mid_sentence: set[str] = set()
    for sentence in _sentences(story):
        for i, word in enumerate(_words(sentence)):
            if word[:1].isupper() and word.lower() not in NOT_NAMES and len(word) > 1:
                counts[word] += 1
                if i > 0:
                    mid_sentence.add(word)
    place_words = INTERIOR | EXTERIOR | MIXED
    return [
        (name, n)
        for name, n in counts.most_common()
        if name in mid_sentence and name.lower() not in place_words
    ][:12]


def _places(story: str) -> list[tuple[str, str]]:
    seen: dict[str, str] = {}
    for word in (w.lower() for w in _words(story)):
        kind = (
            "interieur"
            if word in INTERIOR
            else "exterieur"
            if word in EXTERIOR
            else "mixte"
            if word in MIXED
            else None
        )
        if kind and word not in seen:
            seen[word] = kind
    return list(seen.items())[:15]


def _objects(story: str, taken: set[str]) -> list[str]:
    words = [w.lower() for w in _words(story)]
    counts: Counter[str] = Counter(
        words[i + 1]
        for i in range(len(words) - 1)
        if words[i] in THING_MARKERS
        and len(words[i + 1]) > 3
        and words[i + 1] not in STOP_COMMON
        and words[i + 1] not in taken
    )
    return [w for w, n in counts.most_common(10) if n >= 2]


def _tension(text: str) -> str:
    words = {w.lower() for w in _words(text)}
    for level in ("critique", "elevee", "basse"):
        if words & TENSION[level]:
            return level
    return "moyenne"


def _moment(text: str) -> str:
    words = {w.lower() for w in _words(text)}
    return next((m for m, hints in MOMENTS.items() if words & hints), "JOUR")


def extract_scenario(story: str, title: str | None) -> ScenarioDocument:
    sentences = _sentences(story) or [story.strip()]
    characters = _characters(story)
    names = [name for name, _ in characters]
    places = _places(story)
    lower_names = {n.lower() for n in names} | {p for p, _ in places}
    theme_counts = Counter(
        w.lower()
        for w in _words(story)
        if len(w) >= 5 and w.lower() not in STOP_COMMON and w.lower() not in lower_names
    )
    themes = [w for w, _ in theme_counts.most_common(4)]
    overall = _tension(story)

    doc = ScenarioDocument(
        meta=Meta(
            titre=title or " ".join(_words(sentences[0])[:6]) or "Sans titre",
            pitch=sentences[0][:300],
            theme=themes[0] if themes else "",
            sous_themes=themes[1:],
            ton={"critique": "sombre", "elevee": "tendu", "basse": "léger"}.get(
                overall, "dramatique"
            ),
            enjeux=[s[:200] for s in sentences if _tension(s) in ("critique", "elevee")][:3],
            created_at=datetime.now(UTC).isoformat(),
        ),
        personnages=[
            Personnage(
                nom=name,
                role=(
                    "protagoniste"
                    if i == 0
                    else "antagoniste"
                    if i == 1 and len(characters) > 2
                    else "allie"
                    if count > 1
                    else "figurant"
                ),
                description=next((s[:300] for s in sentences if name in s), ""),
            )
            for i, (name, count) in enumerate(characters)
        ],
        lieux=[
            Lieu(
                nom=place.capitalize(),
                type=kind,
                description=next((s[:300] for s in sentences if place in s.lower()), ""),
            )
            for place, kind in places
        ],
        objets=[
            Objet(
                nom=thing, description=next((s[:300] for s in sentences if thing in s.lower()), "")
            )
            for thing in _objects(story, lower_names)
        ],
    ).link()
    place_ids = {lieu.nom.lower(): lieu.id for lieu in doc.lieux}

    segments = _segments(story)
    for s_index, segment in enumerate(segments):
        text = " ".join(segment)
        position = s_index / max(len(segments), 1)
        act = 1 if position < 0.25 else 3 if position >= 0.75 else 2
        where = next((p for p, _ in _places(text)), "")
        sequence = Sequence(
            id=f"seq_{s_index + 1}",
            titre=" ".join(_words(segment[0])[:5]),
            acte=act,
            lieu_principal=where.capitalize(),
            lieu_id=place_ids.get(where, ""),
            moment_journee=_moment(text).lower(),
            personnages=[n for n in names if n in text],
            resume=segment[0][:300],
            description_detaillee=text[:2000],
            actions_cles=[s[:200] for s in segment[:3]],
            tension=_tension(text),
        )
        doc.sequences.append(sequence)
        for c_index in range(0, len(segment), 2):
            part = segment[c_index : c_index + 2]
            scene_text = " ".join(part)
            place, kind = next(iter(_places(scene_text)), (where, ""))
            doc.scenes.append(
                Scene(
                    sequence_id=sequence.id,
                    type={"interieur": "INT", "exterieur": "EXT"}.get(
                        kind or dict(places).get(place, ""), "MIX"
                    ),
                    lieu=place.capitalize(),
                    lieu_id=place_ids.get(place, ""),
                    moment=_moment(scene_text),
                    description=scene_text[:1000],
                    description_visuelle=part[0][:500],
                    actions=[
                        Action(
                            ordre=i + 1,
                            description=s[:500],
                            personnages=[n for n in names if n in s],
                        )
                        for i, s in enumerate(part)
                    ],
                )
            )
    thirds = [[s for s in doc.sequences if s.acte == a] for a in (1, 2, 3)]
    doc.structure = Structure(
        acte_1=Acte(titre="Exposition", description=thirds[0][0].resume if thirds[0] else ""),
        acte_2=Acte(titre="Confrontation", description=thirds[1][0].resume if thirds[1] else ""),
        acte_3=Acte(titre="Résolution", description=thirds[2][0].resume if thirds[2] else ""),
        themes_principaux=themes[:1],
        themes_secondaires=themes[1:],
    )
    return doc.link()
