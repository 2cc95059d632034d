"""GloVe: any local text file, the shipped 50-d vectors, embedding tables with coverage."""

from __future__ import annotations

import numpy as np
import pytest

from retrieval.data.glove import WordVectors, embedding_matrix, load_glove, load_glove_text, shipped_glove_dir
from retrieval.data.vocab import Vocabulary
from shared.errors import UserError


def test_text_file_with_spaces_in_words(tmp_path):
    path = tmp_path / "glove.txt"
    path.write_text("dog 0.1 0.2 0.3\ncat 1 2 3\nat & t 4 5 6\n", encoding="utf-8")
    vectors = load_glove(path)
    assert (len(vectors), vectors.dim) == (3, 3)
    assert vectors.words[2] == "at & t"
    np.testing.assert_allclose(vectors.get("cat"), [1, 2, 3])
    assert vectors.get("zebra") is None
    assert load_glove_text(path, keep={"cat"}).words == ["cat"]


def test_malformed_text_files(tmp_path):
    (tmp_path / "short.txt").write_text("dog 1 2 3\ncat 1 2\n")
    with pytest.raises(UserError, match=r"short\.txt: line 2 has 2 values, expected 3"):
        load_glove_text(tmp_path / "short.txt")
    (tmp_path / "text.txt").write_text("dog 1 x 3\n")
    with pytest.raises(UserError, match=r"text\.txt: line 1 has a non-numeric value"):
        load_glove_text(tmp_path / "text.txt")
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(UserError, match="no vectors read"):
        load_glove_text(tmp_path / "empty.txt")
    (tmp_path / "latin.txt").write_bytes(b"dog 1 2\ncaf\xe9 1 2\n")
    with pytest.raises(UserError, match=r"latin\.txt: not utf-8"):
        load_glove_text(tmp_path / "latin.txt")


def test_shipped_vectors_are_found_and_memory_mapped():
    assert (shipped_glove_dir() / "glove_6B_50d_emb.npy").is_file()
    vectors = load_glove()
    assert (len(vectors), vectors.dim) == (400000, 50) and isinstance(vectors.matrix, np.memmap)
    assert vectors.words[0] == "the"
    dog, cat, car = (vectors.get(w) for w in ("dog", "cat", "car"))
    cos = lambda a, b: float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))  # noqa: E731
    assert cos(dog, cat) > cos(dog, car)


def test_embedding_matrix_coverage_and_init(tmp_path):
    vocab = Vocabulary(["<pad>", "<start>", "<end>", "<unk>", "dog", "qzxv"])
    vectors = WordVectors(["dog", "<unk>"], np.array([[1, 2, 3], [7, 7, 7]], np.float32), "test")
    table, covered = embedding_matrix(vocab, vectors, seed=3)
    assert table.shape == (6, 3) and table.dtype == np.float32 and covered == 2
    np.testing.assert_array_equal(table[4], [1, 2, 3])
    np.testing.assert_array_equal(table[3], [7, 7, 7])
    assert not table[0].any() and np.abs(table[5]).max() <= 0.1
    np.testing.assert_array_equal(embedding_matrix(vocab, vectors, seed=3)[0], table)
    with pytest.raises(UserError, match="embedding dim 300 does not match the 3-d vectors"):
        embedding_matrix(vocab, vectors, 300)


def test_embedding_matrix_from_shipped_vectors():
    vocab = Vocabulary.build(["a red cube left of a blue sphere"] * 4)
    table, covered = embedding_matrix(vocab)
    assert table.shape == (len(vocab), 50) and covered == len(vocab) - 4
