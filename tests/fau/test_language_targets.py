"""VL-FAU language targets: the versioned FACS template, local and global sentences, unknowns."""

import numpy as np
import pytest

from fau.aus import SYNFACS_AUS
from fau.language.targets import (
    build_targets,
    global_sentence,
    join_phrases,
    load_template,
    local_sentences,
)
from shared.errors import UserError


@pytest.fixture(scope="module")
def template():
    return load_template()


def test_template_covers_the_au_union_with_distinct_texts(template):
    assert template.version == "facs_v1"
    assert sorted(template.aus) == sorted(SYNFACS_AUS)
    for au, text in template.aus.items():
        assert text.active != text.inactive
        assert "{pos}" in text.phrase
    assert "zygomaticus major" in template.aus[12].active
    texts = [t.active for t in template.aus.values()] + [t.inactive for t in template.aus.values()]
    assert len(set(texts)) == len(texts)


def test_local_sentences_follow_states(template):
    out = local_sentences([1, 0, -1], [12, 4, 25], template)
    assert out == {"AU12": template.aus[12].active, "AU4": template.aus[4].inactive, "AU25": None}


def test_global_sentence_names_gender_and_active_aus_in_order(template):
    aus = [6, 12, 25]
    assert global_sentence([1, 1, 1], aus, "female", template) == (
        "The woman raises her cheeks, pulls up her lip corners, and parts her lips.")
    assert global_sentence([0, 1, 1], aus, "male", template) == (
        "The man pulls up his lip corners and parts his lips.")
    assert global_sentence([0, 0, 1], aus, "unknown", template) == "The person parts their lips."
    assert global_sentence([0, 0, 0], aus, "female", template) == (
        "The woman shows a neutral face with no obvious muscle activity.")
    # no active AU but some unknown: not provably neutral -> no target
    assert global_sentence([0, -1, 0], aus, "female", template) is None
    # unknown AUs are left out of an active description
    assert global_sentence([1, -1, 0], aus, "mystery", template) == "The person raises their cheeks."


def test_join_phrases_oxford_comma():
    assert join_phrases(["a"]) == "a"
    assert join_phrases(["a", "b"]) == "a and b"
    assert join_phrases(["a", "b", "c"]) == "a, b, and c"


def test_build_targets_per_frame(template):
    labels = np.array([[1, 0], [-1, -1]])
    targets = build_targets(labels, [1, 2], ["male", "female"], template)
    assert targets[0]["global"] == "The man raises the inner corners of his brows."
    assert targets[0]["local"]["AU2"] == template.aus[2].inactive
    assert targets[1] == {"local": {"AU1": None, "AU2": None}, "global": None}
    with pytest.raises(UserError, match="no texts for AU5"):
        build_targets(labels, [1, 5], ["male", "female"], template)


def test_user_template_errors_are_one_line(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("version: x\nglobal: {}\naus: {}\n")
    with pytest.raises(UserError, match="global.subject"):
        load_template(path)
    with pytest.raises(UserError, match="not found"):
        load_template(tmp_path / "missing.yaml")
    good = load_template().path.read_text()
    path.write_text(good.replace("    phrase: raises {pos} cheeks\n", ""))
    with pytest.raises(UserError, match=r"aus\.6\.phrase must be a non-empty string") as err:
        load_template(path)
    assert "\n" not in str(err.value)
