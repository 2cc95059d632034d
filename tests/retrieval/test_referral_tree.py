"""SMFEA referral trees: 7 in-order nodes, linking conjunction, label dictionaries with a null class."""

from __future__ import annotations

import numpy as np
import pytest

from retrieval.parsing import create_backend
from retrieval.parsing.base import Parse, Token
from retrieval.parsing.referral_tree import (
    LEAF_NODES,
    NULL_INDEX,
    RELATION_NODES,
    LabelDictionary,
    ReferralTree,
    TreeDictionaries,
    build_referral_tree,
)
from retrieval.parsing.scene_graph import Entity, Relation, SceneGraph, build_scene_graph
from shared.errors import UserError


@pytest.fixture(scope="module")
def trees():
    backend = create_backend("spacy")
    captions = [
        "A dog plays with a ball on the grass.",
        "a man riding a horse and a dog running on the beach",
        "a small red cube left of a blue sphere",
        "A cylinder and a yellow metal cone.",
        "A scene with six objects, including a gray rubber cylinder to the left of a yellow cone.",
    ]
    return {c: build_referral_tree(build_scene_graph(p), p) for c, p in zip(captions, backend.parse(captions))}


def test_tree_of_the_anchor_example(trees):
    tree = trees["A dog plays with a ball on the grass."]
    assert tree.nodes == ("dog", "play with", "ball", None, "ball", "on", "grass")
    assert {tree.nodes[i] for i in LEAF_NODES} == {"dog", "ball", "grass"}
    assert tree.candidates[1] == ("play with", "play", "with") and tree.candidates[3] == ()
    assert tree.read_out() == "dog → play with → ball → ∅ → ball → on → grass"


def test_conjunction_links_two_triples(trees):
    tree = trees["a man riding a horse and a dog running on the beach"]
    assert tree.nodes[3] == "and" and tree.nodes[4:] == ("dog", "run on", "beach")


def test_single_triple_and_entities_only(trees):
    tree = trees["a small red cube left of a blue sphere"]
    assert tree.nodes == ("small red cube", "left of", "blue sphere", None, None, None, None)
    assert tree.candidates[0] == ("red cube", "small cube", "cube")
    pair = trees["A cylinder and a yellow metal cone."]
    assert pair.nodes == ("cylinder", None, "yellow metal cone", None, None, None, None)


def test_listing_predicates_go_last(trees):
    tree = trees["A scene with six objects, including a gray rubber cylinder to the left of a yellow cone."]
    assert tree.nodes[:3] == ("gray rubber cylinder", "left of", "yellow cone")
    assert tree.nodes[4:] == ("scene", "with", "six objects")


def _graph(*relations: tuple[int, str, int]) -> tuple[SceneGraph, Parse]:
    names = ["dog", "ball", "grass", "cat"]
    entities = tuple(Entity(n, f"red {n}" if n == "ball" else n, ("red",) if n == "ball" else (), None, 2 * i) for i, n in enumerate(names))
    rels = tuple(Relation(s, p, o, 2 * s + 1, None, p) for s, p, o in relations)
    parse = Parse(tuple(Token(f"w{i}", f"w{i}", "X", "X", -1, "dep") for i in range(8)))
    return SceneGraph(entities, rels), parse


def test_dictionaries_back_off_and_null():
    graph, parse = _graph((0, "on", 1), (2, "near", 3))
    tree = build_referral_tree(graph, parse)
    assert tree.nodes == ("dog", "on", "red ball", None, "grass", "near", "cat")
    other = build_referral_tree(*_graph((3, "under", 0)))
    dictionaries = TreeDictionaries.fit([tree, tree, other], n_fragments=3, n_relations=1)
    # every fragment candidate is seen 3 times → ties broken alphabetically; "near"/"on" twice, "under" once
    assert dictionaries.fragments.labels == ["null", "ball", "cat", "dog"]
    assert dictionaries.relations.labels == ["null", "near"]
    labels = dictionaries.encode(tree)
    # "red ball" is not in the dictionary, so that leaf backs off to "ball"; "grass" and "on" → null
    assert labels.tolist() == [3, NULL_INDEX, 1, NULL_INDEX, NULL_INDEX, 1, 2]
    assert dictionaries.encode_all([tree, other]).shape == (2, 7)
    assert len(dictionaries.fragments) == 4 and all(i not in RELATION_NODES for i in LEAF_NODES)


def test_dictionary_round_trip_and_errors(tmp_path):
    graph, parse = _graph((0, "on", 1))
    tree = build_referral_tree(graph, parse)
    dictionaries = TreeDictionaries.fit([tree])
    dictionaries.save(tmp_path / "d.json")
    loaded = TreeDictionaries.load(tmp_path / "d.json")
    np.testing.assert_array_equal(loaded.encode(tree), dictionaries.encode(tree))
    assert ReferralTree.from_json(tree.to_json()) == tree
    with pytest.raises(UserError, match="tree dictionaries not found"):
        TreeDictionaries.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text('{"fragments": ["dog"], "relations": ["null"]}')
    with pytest.raises(UserError, match=r"bad\.json: not a tree-dictionary file"):
        TreeDictionaries.load(tmp_path / "bad.json")
    with pytest.raises(UserError, match="size must be positive"):
        LabelDictionary.fit([["dog"]], 0)
    with pytest.raises(ValueError, match="7 nodes"):
        ReferralTree.from_json({"nodes": [None], "candidates": [[]]})
