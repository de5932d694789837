"""The scenario document. Every field has a default, so a model's partial answer and the
heuristic extractor both normalise to the same complete shape."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Part(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Meta(Part):
    titre: str = ""
    pitch: str = ""
    theme: str = ""
    sous_themes: list[str] = Field(default_factory=list)
    ton: str = ""
    ton_precisions: str = ""
    enjeux: list[str] = Field(default_factory=list)
    version: str = "1.0"
    created_at: str = ""


class Personnage(Part):
    id: str = ""
    nom: str
    age: str = ""
    role: Literal["protagoniste", "antagoniste", "allie", "figurant"] = "figurant"
    description: str = ""
    objectif: str = ""
    motivation: str = ""
    conflit_interne: str = ""
    conflit_externe: str = ""
    traits: list[str] = Field(default_factory=list)
    forces: list[str] = Field(default_factory=list)
    faiblesses: list[str] = Field(default_factory=list)
    secrets: str = ""
    relations: list[str] = Field(default_factory=list)
    arc_narratif: str = ""
    apparitions_scenes: list[str] = Field(default_factory=list)


class Lieu(Part):
    id: str = ""
    nom: str
    type: Literal["interieur", "exterieur", "mixte"] = "mixte"
    categorie: str = ""
    description: str = ""
    atmosphere: str = ""
    ambiance_sonore: list[str] = Field(default_factory=list)
    elements_visuels: list[str] = Field(default_factory=list)
    eclairage: str = ""
    historique: str = ""
    significance_narrative: str = ""
    props: list[str] = Field(default_factory=list)
    apparitions_scenes: list[str] = Field(default_factory=list)


class Objet(Part):
    id: str = ""
    nom: str
    type: str = ""
    description: str = ""
    pouvoir_capacite: str = ""
    proprietaire_actuel: str = ""
    proprietaire_precedent: str = ""
    significance: str = ""
    histoire: str = ""
    apparitions_scenes: list[str] = Field(default_factory=list)
    utilisation_narrative: str = ""


class Acte(Part):
    titre: str = ""
    description: str = ""
    duree: str = ""
    points_cles: list[str] = Field(default_factory=list)
    sequences_ids: list[str] = Field(default_factory=list)


class Structure(Part):
    acte_1: Acte = Field(default_factory=Acte)
    acte_2: Acte = Field(default_factory=Acte)
    acte_3: Acte = Field(default_factory=Acte)
    themes_principaux: list[str] = Field(default_factory=list)
    themes_secondaires: list[str] = Field(default_factory=list)


class Sequence(Part):
    id: str = ""
    titre: str = ""
    acte: int = 1
    objectif: str = ""
    lieu_principal: str = ""
    lieu_id: str = ""
    moment_journee: str = ""
    duree_approx: str = ""
    personnages: list[str] = Field(default_factory=list)
    resume: str = ""
    description_detaillee: str = ""
    actions_cles: list[str] = Field(default_factory=list)
    dialogues_cles: list[str] = Field(default_factory=list)
    tension: Literal["basse", "moyenne", "elevee", "critique"] = "moyenne"
    scenes_ids: list[str] = Field(default_factory=list)


class Camera(Part):
    mouvement: str = ""
    angle: str = ""
    plan: str = ""


class Action(Part):
    ordre: int = 1
    description: str = ""
    personnages: list[str] = Field(default_factory=list)
    camera: Camera = Field(default_factory=Camera)
    dialogues: list[str] = Field(default_factory=list)


class AmbianceSonore(Part):
    musique: str = ""
    bruitages: list[str] = Field(default_factory=list)
    silence: bool = False
    intensite: str = ""


class Progression(Part):
    etat: str = ""
    tension: str = ""
    emotion: str = ""
    information_revelee: str = ""


class Liens(Part):
    scene_precedente: str | None = None
    scene_suivante: str | None = None


class Scene(Part):
    id: str = ""
    sequence_id: str = ""
    numero: int = 1
    type: Literal["INT", "EXT", "MIX"] = "MIX"
    lieu: str = ""
    lieu_id: str = ""
    moment: Literal["JOUR", "NUIT", "AUBE", "CREPUSCULE"] = "JOUR"
    duree_estimee: str = ""
    description: str = ""
    description_visuelle: str = ""
    actions: list[Action] = Field(default_factory=list)
    ambiance_sonore: AmbianceSonore = Field(default_factory=AmbianceSonore)
    progression: Progression = Field(default_factory=Progression)
    liens: Liens = Field(default_factory=Liens)


class ScenarioDocument(Part):
    meta: Meta = Field(default_factory=Meta)
    personnages: list[Personnage] = Field(default_factory=list)
    lieux: list[Lieu] = Field(default_factory=list)
    objets: list[Objet] = Field(default_factory=list)
    structure: Structure = Field(default_factory=Structure)
    sequences: list[Sequence] = Field(default_factory=list)
    scenes: list[Scene] = Field(default_factory=list)

    def summary(self) -> dict[str, object]:
        return {
            "titre": self.meta.titre,
            "pitch": self.meta.pitch,
            "theme": self.meta.theme,
            "ton": self.meta.ton,
            "personnages": len(self.personnages),
            "lieux": len(self.lieux),
            "objets": len(self.objets),
            "sequences": len(self.sequences),
            "scenes": len(self.scenes),
        }

    def link(self) -> ScenarioDocument:
        """Give every entry an id and wire scenes to sequences and to their neighbours."""
        for i, p in enumerate(self.personnages, 1):
            p.id = p.id or f"perso_{i}"
        for i, lieu in enumerate(self.lieux, 1):
            lieu.id = lieu.id or f"lieu_{i}"
        for i, o in enumerate(self.objets, 1):
            o.id = o.id or f"objet_{i}"
        for i, s in enumerate(self.sequences, 1):
            s.id = s.id or f"seq_{i}"
        for i, scene in enumerate(self.scenes, 1):
            scene.id = scene.id or f"scene_{i}"
            scene.numero = i
        for i, scene in enumerate(self.scenes):
            scene.liens.scene_precedente = self.scenes[i - 1].id if i else None
            scene.liens.scene_suivante = self.scenes[i + 1].id if i + 1 < len(self.scenes) else None
        for sequence in self.sequences:
            sequence.scenes_ids = [s.id for s in self.scenes if s.sequence_id == sequence.id]
        acts = {1: self.structure.acte_1, 2: self.structure.acte_2, 3: self.structure.acte_3}
        for act_number, act in acts.items():
            act.sequences_ids = [s.id for s in self.sequences if s.acte == act_number]
        return self
