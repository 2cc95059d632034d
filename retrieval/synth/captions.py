"""SynScenes caption grammar: attributes, counts, spatial and action-like relations.

A caption is a small logical form (`Caption`: clauses + a template) that can be both realised as
text and checked against any scene (`Caption.holds`).  Clauses:

* `Relation(subject, rel, object)` — "a small red cube is to the left of a blue sphere",
  "a red ball pushing a large cylinder" (relations from `scene.relation_holds`);
* `Pair(first, second)` — "a green cone and a purple block";
* `Count(n, descriptor)` — "there are three cubes", "a scene with five objects".

Word choices (synonyms, relation phrasing) are made once when a descriptor or clause is built and
travel with it, so a transformed caption (swapped colours or swapped subject/object, see hard.py)
uses exactly the same words in another order.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from typing import Sequence

import numpy as np

from retrieval.synth.scene import RELATIONS, Scene, SceneObject, relation_holds

SHAPE_WORDS = {"cube": ("cube", "block"), "sphere": ("sphere", "ball"), "cylinder": ("cylinder",), "cone": ("cone",)}
GENERIC_WORDS = ("object", "thing")
SIZE_WORDS = {"small": ("small", "tiny"), "large": ("large", "big")}
MATERIAL_WORDS = {"rubber": ("rubber", "matte"), "metal": ("metal", "metallic", "shiny")}
REL_FORMS = {  # (with copula, bare) phrasings
    "left": (("is to the left of", "to the left of"), ("is left of", "left of"), ("is on the left side of", "on the left side of")),
    "right": (("is to the right of", "to the right of"), ("is right of", "right of"), ("is on the right side of", "on the right side of")),
    "front": (("is in front of", "in front of"), ("stands in front of", "standing in front of")),
    "behind": (("is behind", "behind"), ("stands behind", "standing behind")),
    "pushing": (("is pushing", "pushing"), ("pushes", "pushing")),
    "hiding": (("is hiding behind", "hiding behind"), ("hides behind", "hiding behind")),
    "next_to": (("is next to", "next to"), ("sits beside", "beside")),
}
ACTION_RELATIONS = ("pushing", "hiding", "next_to")
NUMBERS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight")


@dataclasses.dataclass(frozen=True)
class Descriptor:
    """A noun phrase: attribute constraints (None = unconstrained) and the words chosen for them.

    `ref` is the index of the scene object the phrase was built from (-1 for generic phrases).
    """

    ref: int
    shape: str | None
    colour: str | None = None
    size: str | None = None
    material: str | None = None
    shape_word: str = "object"
    size_word: str = ""
    material_word: str = ""

    def matches(self, obj: SceneObject) -> bool:
        """True when every constrained attribute equals the object's."""
        return (
            (self.shape is None or self.shape == obj.shape)
            and (self.colour is None or self.colour == obj.colour)
            and (self.size is None or self.size == obj.size)
            and (self.material is None or self.material == obj.material)
        )

    def words(self, plural: bool = False) -> str:
        """Surface words in CLEVR order: size, colour, material, shape (pluralised on request)."""
        noun = self.shape_word + ("s" if plural else "")
        parts = [self.size_word if self.size else "", self.colour or "", self.material_word if self.material else "", noun]
        return " ".join(p for p in parts if p)


@dataclasses.dataclass(frozen=True)
class Relation:
    """`subject rel object`: true when two distinct objects match and `scene.relation_holds`."""

    subject: Descriptor
    rel: str
    object: Descriptor
    form: int

    def holds(self, scene: Scene) -> bool:
        objs = scene.objects
        subjects = [i for i, o in enumerate(objs) if self.subject.matches(o)]
        objects = [j for j, o in enumerate(objs) if self.object.matches(o)] if subjects else []
        return any(i != j and relation_holds(self.rel, objs[i], objs[j]) for i in subjects for j in objects)

    def text(self, copula: bool) -> str:
        phrase = REL_FORMS[self.rel][self.form][0 if copula else 1]
        return f"a {self.subject.words()} {phrase} a {self.object.words()}"


@dataclasses.dataclass(frozen=True)
class Pair:
    """`first and second`: true when two distinct objects match the two phrases."""

    first: Descriptor
    second: Descriptor

    def holds(self, scene: Scene) -> bool:
        objs = scene.objects
        firsts = [i for i, o in enumerate(objs) if self.first.matches(o)]
        seconds = [j for j, o in enumerate(objs) if self.second.matches(o)]
        return any(i != j for i in firsts for j in seconds)

    def text(self) -> str:
        return f"a {self.first.words()} and a {self.second.words()}"


@dataclasses.dataclass(frozen=True)
class Count:
    """`n things`: true when exactly n objects match the phrase."""

    n: int
    what: Descriptor

    def holds(self, scene: Scene) -> bool:
        return sum(self.what.matches(o) for o in scene.objects) == self.n

    def text(self) -> str:
        return f"{NUMBERS[self.n]} {self.what.words(plural=self.n != 1)}"

    def verb(self) -> str:
        """Copula agreeing with the count."""
        return "is" if self.n == 1 else "are"


Clause = Relation | Pair | Count

# Templates: name -> clause kinds it expects.
TEMPLATES = {
    "rel": ("rel",),
    "there_rel": ("rel",),
    "bare_rel": ("rel",),
    "rel_and_count": ("rel", "count"),
    "scene_with_rel": ("rel", "count"),
    "pair": ("pair",),
    "there_pair": ("pair",),
    "count": ("count",),
    "count_and_pair": ("count", "pair"),
}


@dataclasses.dataclass(frozen=True)
class Caption:
    """A template plus its clauses; `text` realises it, `holds` checks it against a scene."""

    template: str
    clauses: tuple[Clause, ...]

    def holds(self, scene: Scene) -> bool:
        return all(clause.holds(scene) for clause in self.clauses)

    def text(self) -> str:
        c = self.clauses
        t = self.template
        if t == "rel":
            s = c[0].text(copula=True)
        elif t == "there_rel":
            s = f"there is {c[0].text(copula=False)}"
        elif t == "bare_rel":
            s = c[0].text(copula=False)
        elif t == "rel_and_count":
            s = f"{c[0].text(copula=True)}, and there {c[1].verb()} {c[1].text()}"
        elif t == "scene_with_rel":
            s = f"a scene with {c[1].text()}, including {c[0].text(copula=False)}"
        elif t == "pair":
            s = c[0].text()
        elif t == "there_pair":
            s = f"there is {c[0].text()} on the floor"
        elif t == "count":
            s = f"there {c[0].verb()} {c[0].text()} in the picture"
        else:  # count_and_pair
            s = f"{c[0].text()}, among them {c[1].text()}"
        return s[0].upper() + s[1:] + "."


def tokens(text: str) -> list[str]:
    """Lower-case word tokens (Karpathy JSON `tokens` style: punctuation dropped)."""
    return re.findall(r"[a-z]+", text.lower())


def describe(obj: SceneObject, ref: int, rng: np.random.Generator, force_colour: bool = False) -> Descriptor:
    """A noun phrase for `obj`: shape always, colour (p .8), size (p .5), material (p .3)."""
    colour = force_colour or rng.random() < 0.8
    size = rng.random() < 0.5
    material = rng.random() < 0.3
    return Descriptor(
        ref=ref,
        shape=obj.shape,
        colour=obj.colour if colour else None,
        size=obj.size if size else None,
        material=obj.material if material else None,
        shape_word=_pick(rng, SHAPE_WORDS[obj.shape]),
        size_word=_pick(rng, SIZE_WORDS[obj.size]),
        material_word=_pick(rng, MATERIAL_WORDS[obj.material]),
    )


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(len(options)))]


def count_clause(scene: Scene, rng: np.random.Generator) -> Count:
    """An exact count: all objects, one shape, or one colour (chosen at random)."""
    kind = int(rng.integers(3))
    anchor = scene.objects[int(rng.integers(len(scene.objects)))]
    generic = _pick(rng, GENERIC_WORDS)
    if kind == 0:
        what = Descriptor(-1, None, shape_word=generic)
    elif kind == 1:
        what = Descriptor(-1, anchor.shape, shape_word=_pick(rng, SHAPE_WORDS[anchor.shape]))
    else:
        what = Descriptor(-1, None, colour=anchor.colour, shape_word=generic)
    return Count(sum(what.matches(o) for o in scene.objects), what)


def relation_clause(
    scene: Scene, i: int, j: int, rng: np.random.Generator, rels: Sequence[str] = RELATIONS, force_colour: bool = False
) -> Relation | None:
    """A true relation between objects i and j (None when no relation in `rels` holds)."""
    a, b = scene.objects[i], scene.objects[j]
    true_rels = [r for r in rels if relation_holds(r, a, b)]
    if not true_rels:
        return None
    rel = _pick(rng, true_rels)
    return Relation(describe(a, i, rng, force_colour), rel, describe(b, j, rng, force_colour), int(rng.integers(len(REL_FORMS[rel]))))


@functools.lru_cache(maxsize=64)
def action_pairs(scene: Scene) -> tuple[tuple[int, int], ...]:
    """Ordered object pairs for which an action-like relation holds (cached per scene)."""
    objs = scene.objects
    return tuple(
        (a, b) for a in range(len(objs)) for b in range(len(objs))
        if a != b and any(relation_holds(r, objs[a], objs[b]) for r in ACTION_RELATIONS)
    )


def random_caption(scene: Scene, rng: np.random.Generator) -> Caption:
    """One caption true of `scene`, drawn from the grammar with varied templates and phrasing."""
    n = len(scene.objects)
    template = _pick(rng, tuple(TEMPLATES))
    kinds = TEMPLATES[template]
    clauses: list[Clause] = []
    for kind in kinds:
        i, j = (int(v) for v in rng.choice(n, size=2, replace=False))
        if kind == "rel":
            actions = action_pairs(scene)
            if actions and rng.random() < 0.35:
                i, j = actions[int(rng.integers(len(actions)))]
                clause = relation_clause(scene, i, j, rng, ACTION_RELATIONS)
            else:
                clause = relation_clause(scene, i, j, rng)
            if clause is None:
                return random_caption(scene, rng)
        elif kind == "pair":
            clause = Pair(describe(scene.objects[i], i, rng), describe(scene.objects[j], j, rng))
        elif template in ("scene_with_rel", "count_and_pair"):
            clause = Count(n, Descriptor(-1, None, shape_word=_pick(rng, GENERIC_WORDS)))
        else:
            clause = count_clause(scene, rng)
        clauses.append(clause)
    return Caption(template, tuple(clauses))


def scene_captions(scene: Scene, rng: np.random.Generator, n: int = 5, max_tries: int = 50) -> list[Caption]:
    """`n` distinct captions for a scene (distinct texts; repeats are redrawn)."""
    out: list[Caption] = []
    seen: set[str] = set()
    for _ in range(max_tries * n):
        caption = random_caption(scene, rng)
        if caption.text() not in seen:
            seen.add(caption.text())
            out.append(caption)
            if len(out) == n:
                return out
    raise RuntimeError("could not draw distinct captions for a scene")

