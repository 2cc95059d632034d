"""SMFEA's shared referral tree: a fixed three-layer binary tree of 7 nodes per caption, and its labels.

Sources: docs/retrieval.md and ambiguities decision 'referral trees' / decision 'null class' (thesis §6.3.2, §6.4.1).  Nodes in
in-order numbering 1-7 (stored at positions 0-6)::

            4              relation linking the two triples (conjunction / marker), else Null
        2       6          relations (verbs, prepositions)
      1   3   5   7        fragments (entities: noun, adjective-noun or noun-noun pair)

decision 'referral trees' heuristic (ours): take up to two (subject, relation, object) triples of the caption's scene graph
in sentence order, listing predicates ("with", "including", "among", "of") last and the second triple
preferring another predicate token than the first; triple 1 fills nodes
1-2-3, triple 2 fills 5-6-7; node 4 is the coordinating conjunction or subordinating marker between
the two triples.  Leaves left empty take the caption's remaining entities in sentence order.

Label dictionaries are fitted on training captions: the most frequent fragment / relation candidates
(default sizes 1,440 / 247, the StructCap sizes the thesis uses) plus the explicit "null" class at
index 0 (decision 'null class').  A node's label is its most specific candidate that is in the dictionary, else null.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from shared.errors import UserError
from shared.io import write_json

from retrieval.parsing.base import Parse
from retrieval.parsing.scene_graph import Entity, Relation, SceneGraph

NUM_NODES = 7
LEAF_NODES = (0, 2, 4, 6)
RELATION_NODES = (1, 3, 5)
TRIPLE_SLOTS = ((0, 1, 2), (4, 5, 6))
LINK_NODE = 3
NULL = "null"
NULL_INDEX = 0
DEFAULT_FRAGMENTS = 1440
DEFAULT_RELATIONS = 247
LINK_DEPRELS = {"cc", "mark"}
LISTING_PREDICATES = {"with", "including", "among", "of"}  # "a scene with six objects, including ..."


@dataclass(frozen=True)
class ReferralTree:
    """Seven nodes: surface text (None = Null) and label candidates, most specific first."""

    nodes: tuple[str | None, ...]
    candidates: tuple[tuple[str, ...], ...]

    def read_out(self) -> str:
        """In-order reading 1-2-...-7 with Null nodes shown as ∅ (e.g. ``dog → play with → ball → ∅ ...``)."""
        return " → ".join(node if node is not None else "∅" for node in self.nodes)

    def to_json(self) -> dict:
        """``{"nodes": [7 texts or null], "candidates": [7 lists]}``."""
        return {"nodes": list(self.nodes), "candidates": [list(c) for c in self.candidates]}

    @classmethod
    def from_json(cls, record: dict) -> "ReferralTree":
        """Inverse of `to_json`."""
        nodes, candidates = record["nodes"], record["candidates"]
        if len(nodes) != NUM_NODES or len(candidates) != NUM_NODES:
            raise ValueError(f"a referral tree has {NUM_NODES} nodes, got {len(nodes)}")
        return cls(tuple(nodes), tuple(tuple(c) for c in candidates))


def entity_candidates(entity: Entity) -> tuple[str, ...]:
    """Modifier-noun pairs (nearest modifier first), then the noun lemma: "red cube", "small cube", "cube"."""
    pairs = [f"{modifier} {entity.name}" for modifier in reversed(entity.attributes) if modifier != entity.name]
    return tuple(dict.fromkeys([*pairs, entity.name]))


def relation_candidates(relation: Relation) -> tuple[str, ...]:
    """The full predicate ("play with"), then its verb ("play"), then its preposition ("with")."""
    parts = [relation.predicate, relation.verb, relation.preposition]
    return tuple(dict.fromkeys(p for p in parts if p))


def _span(graph: SceneGraph, relation: Relation) -> tuple[int, int]:
    positions = (graph.entities[relation.subject].token, relation.token, graph.entities[relation.object].token)
    return min(positions), max(positions)


def _pick_triples(relations: Sequence[Relation]) -> list[Relation]:
    relations = sorted(relations, key=lambda r: r.predicate in LISTING_PREDICATES)  # stable: sentence order kept
    if len(relations) <= 1:
        return relations
    first = relations[0]
    other = next((r for r in relations[1:] if r.token != first.token), relations[1])
    return [first, other]


def _linker(parse: Parse, graph: SceneGraph, first: Relation, second: Relation) -> str | None:
    end, start = _span(graph, first)[1], _span(graph, second)[0]
    for i in range(end + 1, start):
        token = parse.tokens[i]
        if token.deprel in LINK_DEPRELS:
            return token.lemma.lower()
    return None


def build_referral_tree(graph: SceneGraph, parse: Parse) -> ReferralTree:
    """The 7-node referral tree of one caption from its scene graph and parse (decision 'referral trees', module docstring)."""
    nodes: list[str | None] = [None] * NUM_NODES
    candidates: list[tuple[str, ...]] = [()] * NUM_NODES
    used: set[int] = set()
    triples = _pick_triples(graph.relations)
    for (s_slot, r_slot, o_slot), relation in zip(TRIPLE_SLOTS, triples):
        for slot, entity_index in ((s_slot, relation.subject), (o_slot, relation.object)):
            entity = graph.entities[entity_index]
            nodes[slot], candidates[slot] = entity.phrase, entity_candidates(entity)
            used.add(entity_index)
        nodes[r_slot], candidates[r_slot] = relation.predicate, relation_candidates(relation)
    if len(triples) == 2:
        link = _linker(parse, graph, *triples)
        if link is not None:
            nodes[LINK_NODE], candidates[LINK_NODE] = link, (link,)
    remaining = iter(i for i in range(len(graph.entities)) if i not in used)
    for slot in LEAF_NODES:
        if nodes[slot] is None:
            entity_index = next(remaining, None)
            if entity_index is None:
                break
            entity = graph.entities[entity_index]
            nodes[slot], candidates[slot] = entity.phrase, entity_candidates(entity)
    return ReferralTree(tuple(nodes), tuple(candidates))


class LabelDictionary:
    """A label list with "null" at index 0 (decision 'null class'); unknown candidates map to null."""

    def __init__(self, labels: Sequence[str]) -> None:
        if not labels or labels[0] != NULL:
            raise ValueError(f"a label dictionary starts with {NULL!r}")
        self.labels = list(labels)
        self.index = {label: i for i, label in enumerate(self.labels)}

    @classmethod
    def fit(cls, candidate_lists: Iterable[Sequence[str]], size: int) -> "LabelDictionary":
        """The `size` most frequent candidates (each counted once per node; ties alphabetical) + null."""
        if size < 1:
            raise UserError(f"label dictionary size must be positive, got {size}")
        counts = Counter(c for candidates in candidate_lists for c in set(candidates) if c != NULL)
        ranked = sorted(counts, key=lambda label: (-counts[label], label))[:size]
        return cls([NULL, *ranked])

    def __len__(self) -> int:
        return len(self.labels)

    def encode(self, candidates: Sequence[str]) -> int:
        """Index of the first candidate in the dictionary, else `NULL_INDEX`."""
        return next((self.index[c] for c in candidates if c in self.index), NULL_INDEX)


@dataclass
class TreeDictionaries:
    """Fragment (leaf) and relation (internal node) dictionaries of the referral trees."""

    fragments: LabelDictionary
    relations: LabelDictionary

    @classmethod
    def fit(
        cls, trees: Iterable[ReferralTree], n_fragments: int = DEFAULT_FRAGMENTS, n_relations: int = DEFAULT_RELATIONS
    ) -> "TreeDictionaries":
        """Fit both dictionaries on (training) trees; sizes exclude the null class."""
        trees = list(trees)
        fragments = (tree.candidates[i] for tree in trees for i in LEAF_NODES)
        relations = (tree.candidates[i] for tree in trees for i in RELATION_NODES)
        return cls(LabelDictionary.fit(fragments, n_fragments), LabelDictionary.fit(relations, n_relations))

    def encode(self, tree: ReferralTree) -> np.ndarray:
        """The 7 node labels (int64): fragment indices at leaves, relation indices at internal nodes."""
        labels = np.zeros(NUM_NODES, dtype=np.int64)
        for i in range(NUM_NODES):
            table = self.fragments if i in LEAF_NODES else self.relations
            labels[i] = table.encode(tree.candidates[i])
        return labels

    def encode_all(self, trees: Sequence[ReferralTree]) -> np.ndarray:
        """(n_trees, 7) int64 labels."""
        return np.stack([self.encode(t) for t in trees]) if trees else np.zeros((0, NUM_NODES), np.int64)

    def save(self, path: str | Path) -> None:
        """Write ``{"fragments": [...], "relations": [...]}`` (index = class id, 0 = null), atomically."""
        write_json(path, {"fragments": self.fragments.labels, "relations": self.relations.labels})

    @classmethod
    def load(cls, path: str | Path) -> "TreeDictionaries":
        """Read dictionaries written by `save`."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(LabelDictionary(data["fragments"]), LabelDictionary(data["relations"]))
        except FileNotFoundError:
            raise UserError(f"{path}: tree dictionaries not found (run `retrieval parse`)") from None
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
            raise UserError(f"{path}: not a tree-dictionary file ({err})") from None
