"""Exports of a scenario: json, txt, md and html. HTML escapes every piece of user text."""

from __future__ import annotations

import html
import json
from collections.abc import Iterator

from llm.scenario.document import ScenarioDocument

MEDIA_TYPES = {
    "json": "application/json",
    "txt": "text/plain; charset=utf-8",
    "md": "text/markdown; charset=utf-8",
    "html": "text/html; charset=utf-8",
}


def _outline(doc: ScenarioDocument) -> Iterator[tuple[int, str, list[str]]]:
    """(level, heading, lines) blocks shared by the text formats."""
    meta = doc.meta
    yield 1, meta.titre, [meta.pitch, f"Thème : {meta.theme}", f"Ton : {meta.ton}"]
    yield 2, "Personnages", [f"{p.nom} ({p.role}) : {p.description}" for p in doc.personnages]
    yield 2, "Lieux", [f"{lieu.nom} ({lieu.type}) : {lieu.description}" for lieu in doc.lieux]
    yield 2, "Objets", [f"{o.nom} : {o.description}" for o in doc.objets]
    for sequence in doc.sequences:
        yield (
            2,
            f"Séquence {sequence.id} — {sequence.titre} (acte {sequence.acte})",
            [sequence.resume, f"Tension : {sequence.tension}"],
        )
        for scene in doc.scenes:
            if scene.sequence_id == sequence.id:
                yield (
                    3,
                    f"Scène {scene.numero}. {scene.type}. {scene.lieu} — {scene.moment}",
                    [a.description for a in scene.actions],
                )


def export(doc: ScenarioDocument, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(doc.model_dump(mode="json"), ensure_ascii=False, indent=2)
    blocks = list(_outline(doc))
    if fmt == "txt":
        out = []
        for level, heading, lines in blocks:
            out += [heading.upper() if level < 3 else heading, *[f"  {x}" for x in lines if x], ""]
        return "\n".join(out)
    if fmt == "md":
        out = []
        for level, heading, lines in blocks:
            out += [f"{'#' * level} {heading}", "", *[f"- {x}" for x in lines if x], ""]
        return "\n".join(out)
    esc = html.escape
    body = []
    for level, heading, lines in blocks:
        body.append(f"<h{level}>{esc(heading)}</h{level}>")
        items = "".join(f"<li>{esc(x)}</li>" for x in lines if x)
        if items:
            body.append(f"<ul>{items}</ul>")
    return (
        '<!doctype html>\n<html lang="fr"><head><meta charset="utf-8">'
        f"<title>{esc(doc.meta.titre)}</title></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )
