"""One dependency-parse structure for every parser backend, and the backend interface.

Sources: docs/retrieval.md decision 'referral trees' and decision 'offline parsers' (pluggable parsers)

Relations use Universal Dependencies v2 names.  Prepositions are ``case`` dependents of their noun,
which attaches to the verb (``obl``) or noun (``nmod``) it modifies, as in UD; backends with other
conventions (spaCy's ClearNLP ``prep``/``pobj``) are converted.  Copulas keep the backend's shape:
UD makes the predicate the head (``cop``), ClearNLP keeps "be" as the head with ``attr``/``acomp``;
downstream code accepts both.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Protocol, Sequence

ROOT_HEAD = -1


@dataclass(frozen=True)
class Token:
    """One word: surface text, lemma, UD part of speech, Penn tag, head index (0-based, -1 = root), relation."""

    text: str
    lemma: str
    upos: str
    xpos: str
    head: int
    deprel: str


@dataclass(frozen=True)
class Parse:
    """A dependency parse of one caption (all its sentences; each sentence has one root)."""

    tokens: tuple[Token, ...]
    error: str | None = None

    def __len__(self) -> int:
        return len(self.tokens)

    @cached_property
    def _dependents(self) -> dict[int, list[int]]:
        table: dict[int, list[int]] = {}
        for i, token in enumerate(self.tokens):
            table.setdefault(token.head, []).append(i)
        return table

    def children(self, index: int, *deprels: str) -> list[int]:
        """Indices of the dependents of token `index` (optionally only those with one of `deprels`)."""
        found = self._dependents.get(index, [])
        return [i for i in found if self.tokens[i].deprel in deprels] if deprels else list(found)

    def roots(self) -> list[int]:
        """Indices of the sentence roots."""
        return [i for i, t in enumerate(self.tokens) if t.head == ROOT_HEAD]

    def to_json(self) -> dict:
        """Compact JSON form: ``{"tokens": [[text, lemma, upos, xpos, head, deprel], ...]}`` (+ ``error``)."""
        record: dict = {"tokens": [[t.text, t.lemma, t.upos, t.xpos, t.head, t.deprel] for t in self.tokens]}
        if self.error is not None:
            record["error"] = self.error
        return record

    @classmethod
    def from_json(cls, record: dict) -> "Parse":
        """Inverse of `to_json`; checks that every head points inside the caption."""
        tokens = tuple(Token(str(a), str(b), str(c), str(d), int(e), str(f)) for a, b, c, d, e, f in record["tokens"])
        for token in tokens:
            if not ROOT_HEAD <= token.head < len(tokens):
                raise ValueError(f"head {token.head} outside the caption's {len(tokens)} tokens")
        return cls(tokens, record.get("error"))


class ParserBackend(Protocol):
    """A dependency parser: `name`, a `version` string for cache keys, and a batched `parse`."""

    name: str
    version: str

    def parse(self, texts: Sequence[str]) -> list[Parse]:
        """Parse each caption; a caption that cannot be parsed gives a `Parse` with `error` set."""
        ...
