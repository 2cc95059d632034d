"""Tokens pinned on captions (SCAN's nltk.word_tokenize(caption.lower())), no downloads, no b'...' tokens."""

from __future__ import annotations

import pytest

from retrieval.data.precomp import read_captions
from retrieval.data.tokenize import install_punkt_tables, needs_sentence_split, tokenize

PINNED = {
    "A man in an orange hat starring at something.": ["a", "man", "in", "an", "orange", "hat", "starring", "at", "something", "."],
    "Two young, White males are outside near many bushes.": [
        "two", "young", ",", "white", "males", "are", "outside", "near", "many", "bushes", ".",
    ],
    'A child\'s toy "car" isn\'t on the mat': ["a", "child", "'s", "toy", "``", "car", "''", "is", "n't", "on", "the", "mat"],
    "a small red cube left of a blue sphere": ["a", "small", "red", "cube", "left", "of", "a", "blue", "sphere"],
}


@pytest.fixture
def nltk_dir(tmp_path, monkeypatch):
    folder = tmp_path / "nltk_data"
    monkeypatch.setenv("RETRIEVAL_NLTK_DATA", str(folder))
    return folder


@pytest.mark.parametrize("text", sorted(PINNED))
def test_pinned_tokens_without_any_data(text, nltk_dir):
    assert tokenize(text) == PINNED[text]
    assert not nltk_dir.exists()  # single-sentence captions need no punkt tables


def test_bytes_captions_never_give_bytes_repr_tokens(tmp_path, nltk_dir):
    path = tmp_path / "test_caps.txt"
    path.write_bytes("A café by the sea.\nTwo dogs run.\n".encode("utf-8"))
    assert tokenize("A café by the sea.".encode("utf-8")) == ["a", "café", "by", "the", "sea", "."]
    tokens = [token for caption in read_captions(path) for token in tokenize(caption)]
    assert tokens == ["a", "café", "by", "the", "sea", ".", "two", "dogs", "run", "."]
    assert not any(token.startswith(("b'", 'b"')) for token in tokens)
    assert tokenize(str("Two dogs run.".encode("utf-8")))[0] == "b'two"  # the py2->py3 port bug we avoid


def test_sentence_split_uses_punkt_tables_written_on_demand(nltk_dir):
    import nltk

    text = "A dog runs on the grass. It is happy. Mr. Smith watches."
    assert needs_sentence_split(text.lower()) and not needs_sentence_split("a dog runs .")
    tokens = tokenize(text)
    assert (nltk_dir / "tokenizers" / "punkt_tab" / "english" / "abbrev_types.txt").is_file()
    assert tokens[:7] == ["a", "dog", "runs", "on", "the", "grass", "."]
    assert "mr." in tokens
    assert tokens == nltk.word_tokenize(text.lower())


def test_punkt_tables_are_written_once(tmp_path):
    root = install_punkt_tables(tmp_path / "data")
    table = root / "tokenizers" / "punkt_tab" / "english" / "ortho_context.tab"
    stamp = table.stat().st_mtime_ns
    assert install_punkt_tables(tmp_path / "data") == root and table.stat().st_mtime_ns == stamp
