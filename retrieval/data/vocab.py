"""Word vocabulary for the GRU text encoders (SMFEA, VSR++, HSLM), built from training captions only.

Sources: docs/retrieval.md and decision 'tokenisation' (SCAN ``vocab.py``: count ≥ 4,
``<pad>``=0 ``<start>``=1 ``<end>``=2 ``<unk>``=3, JSON ``{word2idx, idx2word, idx}``).  Unlike
SCAN (train + dev) and VSE++ (incl. test), only the captions passed in are counted: pass the train
split's captions.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Callable, Iterable, Sequence

from shared.errors import UserError
from shared.io import write_json

from retrieval.data.tokenize import tokenize

PAD, START, END, UNK = "<pad>", "<start>", "<end>", "<unk>"
SPECIALS = (PAD, START, END, UNK)
DEFAULT_MIN_COUNT = 4


class Vocabulary:
    """Word ↔ index table with the four SCAN specials at indices 0-3."""

    def __init__(self, words: Sequence[str]) -> None:
        if tuple(words[: len(SPECIALS)]) != SPECIALS:
            raise ValueError(f"a vocabulary must start with {SPECIALS}")
        self.idx2word = list(words)
        self.word2idx = {word: index for index, word in enumerate(self.idx2word)}
        if len(self.word2idx) != len(self.idx2word):
            raise ValueError("duplicate words in vocabulary")

    @classmethod
    def build(
        cls,
        captions: Iterable[str],
        *,
        min_count: int = DEFAULT_MIN_COUNT,
        tokenizer: Callable[[str], list[str]] = tokenize,
    ) -> "Vocabulary":
        """Keep words seen at least `min_count` times; order: count descending, then alphabetical."""
        counts = Counter(token for caption in captions for token in tokenizer(caption))
        kept = sorted((w for w, c in counts.items() if c >= min_count and w not in SPECIALS), key=lambda w: (-counts[w], w))
        return cls([*SPECIALS, *kept])

    def __len__(self) -> int:
        return len(self.idx2word)

    def __contains__(self, word: str) -> bool:
        return word in self.word2idx

    def index(self, word: str) -> int:
        """Index of `word`, ``<unk>`` (3) when unknown."""
        return self.word2idx.get(word, self.word2idx[UNK])

    def encode(
        self, caption: str, *, add_start_end: bool = True, tokenizer: Callable[[str], list[str]] = tokenize
    ) -> list[int]:
        """Token indices of a caption, wrapped in ``<start> ... <end>`` as SCAN does."""
        ids = [self.index(token) for token in tokenizer(caption)]
        return [self.word2idx[START], *ids, self.word2idx[END]] if add_start_end else ids

    def decode(self, ids: Iterable[int], *, skip_specials: bool = True) -> list[str]:
        """Words of `ids`; pad/start/end are dropped unless `skip_specials` is False (``<unk>`` stays)."""
        dropped = {PAD, START, END} if skip_specials else set()
        words = [self.idx2word[int(i)] for i in ids]
        return [word for word in words if word not in dropped]

    def to_json(self) -> dict:
        """The SCAN on-disk form ``{word2idx, idx2word, idx}`` (idx2word keys are strings in JSON)."""
        return {
            "word2idx": self.word2idx,
            "idx2word": {str(i): w for i, w in enumerate(self.idx2word)},
            "idx": len(self.idx2word),
        }

    def save(self, path: str | Path) -> None:
        """Write the vocabulary as JSON, atomically."""
        write_json(path, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> "Vocabulary":
        """Read a vocabulary JSON written by `save` or shipped by SCAN/SGRAF (``*_precomp_vocab.json``)."""
        path = Path(path)
        if not path.is_file():
            raise UserError(f"{path}: vocabulary file not found")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            idx2word = data["idx2word"]
            words = [idx2word[str(i)] for i in range(len(idx2word))]
        except json.JSONDecodeError as err:
            raise UserError(f"{path}: invalid JSON ({err.msg} at line {err.lineno})") from None
        except (KeyError, TypeError):
            raise UserError(f"{path}: not a vocabulary (needs idx2word with keys 0..n-1)") from None
        try:
            return cls(words)
        except ValueError as err:
            raise UserError(f"{path}: {err}") from None
