"""Vocabulary: train captions only, count threshold, SCAN specials, JSON round trip, encode/decode."""

from __future__ import annotations

import json

import pytest

from retrieval.data.precomp import load_split_captions
from retrieval.data.vocab import SPECIALS, Vocabulary
from shared.errors import UserError

from .fixtures import write_precomp

CAPTIONS = ["A dog runs.", "a dog sits", "the dog runs", "a cat sits", "A dog and a cat."]


def test_build_keeps_frequent_words_after_specials():
    vocab = Vocabulary.build(CAPTIONS, min_count=2)
    assert vocab.idx2word[:4] == list(SPECIALS) == ["<pad>", "<start>", "<end>", "<unk>"]
    assert vocab.idx2word[4:] == ["a", "dog", ".", "cat", "runs", "sits"]
    assert "the" not in vocab and len(Vocabulary.build(CAPTIONS)) == 6  # default min_count 4: dog, a


def test_encode_decode():
    vocab = Vocabulary.build(CAPTIONS, min_count=2)
    ids = vocab.encode("A zebra runs")
    assert ids == [1, vocab.index("a"), 3, vocab.index("runs"), 2]
    assert vocab.decode(ids) == ["a", "<unk>", "runs"]
    assert vocab.decode(ids, skip_specials=False)[0] == "<start>"
    assert vocab.encode("a dog", add_start_end=False) == [vocab.index("a"), vocab.index("dog")]


def test_json_round_trip_in_scan_format(tmp_path):
    vocab = Vocabulary.build(CAPTIONS, min_count=2)
    vocab.save(tmp_path / "vocab.json")
    data = json.loads((tmp_path / "vocab.json").read_text())
    assert set(data) == {"word2idx", "idx2word", "idx"} and data["idx2word"]["4"] == "a" and data["idx"] == len(vocab)
    assert Vocabulary.load(tmp_path / "vocab.json").idx2word == vocab.idx2word


def test_vocabulary_sees_training_captions_only(tmp_path):
    write_precomp(tmp_path, side=False)
    train = load_split_captions(tmp_path, "train")
    vocab = Vocabulary.build(train, min_count=1)
    dev_only = {w for c in load_split_captions(tmp_path, "dev") for w in c.split()} - {w for c in train for w in c.split()}
    assert all(vocab.index(word) == 3 for word in dev_only)


def test_bad_vocabulary_files(tmp_path):
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(UserError, match=r"bad\.json: invalid JSON"):
        Vocabulary.load(tmp_path / "bad.json")
    (tmp_path / "wrong.json").write_text(json.dumps({"idx2word": {"0": "a"}}))
    with pytest.raises(UserError, match=r"wrong\.json: a vocabulary must start with"):
        Vocabulary.load(tmp_path / "wrong.json")
    (tmp_path / "keys.json").write_text(json.dumps({"word2idx": {}}))
    with pytest.raises(UserError, match="not a vocabulary"):
        Vocabulary.load(tmp_path / "keys.json")
    with pytest.raises(UserError, match="not found"):
        Vocabulary.load(tmp_path / "missing.json")
