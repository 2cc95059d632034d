"""The SynScenes hard subset: groups of test images that differ only in attribute binding or
relation direction ("SynScenes"; in the spirit of CLEVR-Ref+ minimal pairs).

From a base scene and two objects a, b of different colour and shape, a group holds four real
scenes: `base`; `colour_swap` (a and b exchange colours); `direction_swap` (a and b exchange
positions, which reverses every directional relation between them); `both`.  Every caption of a
group member is the base caption transformed the same way (colours swapped inside the phrases of a
and b; subject and object of the a–b relation exchanged), so the k-th captions of all members are
permutations of the same words: a bag-of-words model cannot tell the members apart.  Each caption
is checked to be true of its own scene and false of the other three.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from retrieval.synth.captions import Caption, Count, Descriptor, Relation, count_clause, relation_clause
from retrieval.synth.scene import DIRECTIONAL_RELATIONS, Scene, boxes_clear, sample_scene

VARIANTS = ("base", "colour_swap", "direction_swap", "both")
REL_TEMPLATES = ("rel", "there_rel", "bare_rel", "rel_and_count", "scene_with_rel")


@dataclasses.dataclass(frozen=True)
class HardGroup:
    """Four scenes (one per `VARIANTS` entry), the swapped object pair and per-scene captions."""

    scenes: tuple[Scene, ...]
    pair: tuple[int, int]
    captions: tuple[tuple[Caption, ...], ...]


def variant_scenes(scene: Scene, a: int, b: int) -> tuple[Scene, ...] | None:
    """The four group scenes, or None when swapped positions would make objects collide."""
    objs = list(scene.objects)
    oa, ob = objs[a], objs[b]
    colour = list(objs)
    colour[a], colour[b] = oa.replace(colour=ob.colour), ob.replace(colour=oa.colour)
    direction = list(objs)
    direction[a], direction[b] = oa.replace(x=ob.x, y=ob.y), ob.replace(x=oa.x, y=oa.y)
    both = list(direction)
    both[a], both[b] = direction[a].replace(colour=ob.colour), direction[b].replace(colour=oa.colour)
    if not (boxes_clear(direction) and boxes_clear(both)):
        return None
    return tuple(Scene(tuple(o)) for o in (objs, colour, direction, both))


def _swap_colour(d: Descriptor, a: int, b: int, colours: dict[str, str]) -> Descriptor:
    if d.ref in (a, b) and d.colour in colours:
        return dataclasses.replace(d, colour=colours[d.colour])
    return d


def transform_caption(caption: Caption, variant: str, a: int, b: int, colours: dict[str, str]) -> Caption:
    """Rewrite a base caption for a group variant (same words, other binding / direction)."""
    clauses = []
    for clause in caption.clauses:
        if isinstance(clause, Relation):
            subject, obj = clause.subject, clause.object
            if variant in ("colour_swap", "both"):
                subject, obj = _swap_colour(subject, a, b, colours), _swap_colour(obj, a, b, colours)
            if variant in ("direction_swap", "both") and {subject.ref, obj.ref} == {a, b}:
                subject, obj = obj, subject
            clause = dataclasses.replace(clause, subject=subject, object=obj)
        clauses.append(clause)
    return Caption(caption.template, tuple(clauses))


def _discriminating_caption(scene: Scene, a: int, b: int, rng: np.random.Generator) -> Caption | None:
    template = REL_TEMPLATES[int(rng.integers(len(REL_TEMPLATES)))]
    i, j = (a, b) if rng.random() < 0.5 else (b, a)
    rel = relation_clause(scene, i, j, rng, DIRECTIONAL_RELATIONS, force_colour=True)
    if rel is None:
        return None
    if template == "rel_and_count":
        return Caption(template, (rel, count_clause(scene, rng)))
    if template == "scene_with_rel":
        generic = ("object", "thing")[int(rng.integers(2))]
        return Caption(template, (rel, Count(len(scene.objects), Descriptor(-1, None, shape_word=generic))))
    return Caption(template, (rel,))


def _group_captions(scenes: tuple[Scene, ...], a: int, b: int, rng: np.random.Generator, n: int, max_tries: int):
    base = scenes[0]
    colours = {base.objects[a].colour: base.objects[b].colour, base.objects[b].colour: base.objects[a].colour}
    per_variant: list[list[Caption]] = [[] for _ in VARIANTS]
    seen: set[str] = set()
    for _ in range(max_tries):
        caption = _discriminating_caption(base, a, b, rng)
        if caption is None or caption.text() in seen:
            continue
        versions = [transform_caption(caption, v, a, b, colours) for v in VARIANTS]
        if all(version.holds(scene) == (vi == si) for vi, version in enumerate(versions) for si, scene in enumerate(scenes)):
            seen.add(caption.text())
            for vi, version in enumerate(versions):
                per_variant[vi].append(version)
            if len(seen) == n:
                return tuple(tuple(c) for c in per_variant)
    return None


def sample_hard_group(rng: np.random.Generator, n_captions: int = 5, max_tries: int = 200) -> HardGroup:
    """Draw base scenes until one yields a valid four-scene group with `n_captions` captions each."""
    while True:
        scene = sample_scene(rng)
        objs = scene.objects
        pairs = [
            (i, j) for i in range(len(objs)) for j in range(i + 1, len(objs))
            if objs[i].colour != objs[j].colour and objs[i].shape != objs[j].shape
        ]
        if not pairs:
            continue
        a, b = pairs[int(rng.integers(len(pairs)))]
        scenes = variant_scenes(scene, a, b)
        if scenes is None:
            continue
        captions = _group_captions(scenes, a, b, rng, n_captions, max_tries)
        if captions is not None:
            return HardGroup(scenes, (a, b), captions)
