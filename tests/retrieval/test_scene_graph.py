"""Text scene graphs: entities with attributes, spatial / verb / prepositional triples, both copula shapes."""

from __future__ import annotations

import pytest

from retrieval.parsing import create_backend
from retrieval.parsing.base import Parse, Token
from retrieval.parsing.scene_graph import SceneGraph, build_scene_graph

TRIPLES = {
    "a small red cube left of a blue sphere": [("small red cube", "left of", "blue sphere")],
    "A large red metal cube is to the left of a small blue sphere.": [
        ("large red metal cube", "left of", "small blue sphere")
    ],
    "a large green cylinder to the right of two yellow spheres": [("large green cylinder", "right of", "two yellow spheres")],
    "the metal cube is in front of the rubber cylinder": [("metal cube", "in front of", "rubber cylinder")],
    "a tiny purple rubber cylinder next to a big shiny cube": [("tiny purple rubber cylinder", "next to", "big shiny cube")],
    "a blue sphere is behind a red cube.": [("blue sphere", "behind", "red cube")],
    "A dog plays with a ball on the grass.": [("dog", "play with", "ball"), ("ball", "on", "grass")],
    "a woman in a red dress is holding an umbrella": [("woman", "in", "red dress"), ("woman", "hold", "umbrella")],
    "a red cube and a green sphere are on top of a large table": [
        ("red cube", "on top of", "large table"),
        ("green sphere", "on top of", "large table"),
    ],
    "the sky is blue": [],
    "There is a yellow cylinder beside a sphere.": [("yellow cylinder", "beside", "sphere")],
    "There is a red cone next to a big cyan ball.": [("red cone", "next to", "big cyan ball")],
    "A small gray cylinder is on the right side of a red metal sphere.": [("small gray cylinder", "right of", "red metal sphere")],
    "A brown metal cylinder is next to a purple matte sphere.": [("brown metal cylinder", "next to", "purple matte sphere")],
}


@pytest.fixture(scope="module")
def graphs():
    backend = create_backend("spacy")
    captions = sorted(TRIPLES)
    return {c: build_scene_graph(p) for c, p in zip(captions, backend.parse(captions))}


@pytest.mark.parametrize("caption", sorted(TRIPLES))
def test_triples(graphs, caption):
    assert graphs[caption].triples() == TRIPLES[caption]


def test_entities_carry_attributes_and_counts(graphs):
    cube = graphs["A large red metal cube is to the left of a small blue sphere."].entities[0]
    assert (cube.name, sorted(cube.attributes), cube.count) == ("cube", ["large", "metal", "red"], None)
    spheres = graphs["a large green cylinder to the right of two yellow spheres"].entities[1]
    assert (spheres.name, spheres.phrase, spheres.attributes, spheres.count) == ("sphere", "two yellow spheres", ("yellow",), "two")
    sky = graphs["the sky is blue"].entities[0]
    assert (sky.name, sky.attributes) == ("sky", ("blue",))


def test_relation_direction_follows_the_words(graphs):
    backend = create_backend("spacy")
    a, b = backend.parse(["a blue sphere right of a red cube", "a red cube right of a blue sphere"])
    assert build_scene_graph(a).triples() == [("blue sphere", "right of", "red cube")]
    assert build_scene_graph(b).triples() == [("red cube", "right of", "blue sphere")]


def _ud(rows: list[tuple[str, str, str, int, str]]) -> Parse:
    return Parse(tuple(Token(text, lemma, upos, "", head, deprel) for text, lemma, upos, head, deprel in rows))


def test_ud_copula_shapes_from_stanza():
    behind = _ud(
        [
            ("the", "the", "DET", 1, "det"),
            ("cube", "cube", "NOUN", 4, "nsubj"),
            ("is", "be", "AUX", 4, "cop"),
            ("behind", "behind", "ADP", 4, "case"),
            ("spheres", "sphere", "NOUN", -1, "root"),
        ]
    )
    assert build_scene_graph(behind).triples() == [("cube", "behind", "spheres")]
    red = _ud([("the", "the", "DET", 1, "det"), ("cube", "cube", "NOUN", 3, "nsubj"), ("is", "be", "AUX", 3, "cop"), ("red", "red", "ADJ", -1, "root")])
    graph = build_scene_graph(red)
    assert graph.entities[0].attributes == ("red",) and not graph.relations


def test_json_round_trip(graphs):
    graph = graphs["a woman in a red dress is holding an umbrella"]
    assert SceneGraph.from_json(graph.to_json()) == graph
    assert build_scene_graph(Parse((), error="empty caption")) == SceneGraph((), ())
