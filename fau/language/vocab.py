"""Vocabulary of the VL-FAU decoders ("voc", thesis eq. 5.6), built from a description template
(docs/fau.md, decision 'description templates').

Tokens: lower-cased words (apostrophes kept inside words) and every punctuation mark as its own
token. Ids: ``<pad>`` 0, ``<bos>`` 1, ``<eos>`` 2, ``<unk>`` 3, then one AU-identity token
``<auK>`` per AU of the template (the start token of AU K's local description: decision 'AU start token'), then
the words of every sentence the template can produce, sorted. The vocabulary is therefore a
deterministic function of the template file: a checkpoint records the template version and rebuilds
the same ids from the same file.

Encoded sequences are ``[start, w_1, ..., w_n, <eos>]`` of at most ``1 + max_len`` ids (the start token
plus at most `max_len` generated tokens: decision 'decoding lengths') and padded with ``<pad>``; a
sentence longer than that keeps its first ``max_len - 1`` words and always ends with ``<eos>``, so the
decoder still learns to stop. A missing target (an unknown label) is all ``<pad>``, so it drops out of
every masked loss.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import torch

from fau.data.raw import GENDERS
from fau.language.targets import Template, join_phrases
from shared.errors import UserError

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIALS: tuple[str, ...] = (PAD, BOS, EOS, UNK)
_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)*|[^\sa-z0-9]")


def tokenize(text: str) -> list[str]:
    """Lower-cased word and punctuation tokens ("The woman's brows." → the, woman's, brows, .)."""
    return _TOKEN.findall(text.lower())


def detokenize(tokens: Sequence[str]) -> str:
    """Tokens back to a sentence: punctuation attached to the previous word, sentences capitalised."""
    text = ""
    capital = True
    for token in tokens:
        word = token.capitalize() if capital and token[:1].isalpha() else token
        if word[:1].isalnum() and text:
            text += " "
        text += word
        if token[:1].isalnum():
            capital = False
        elif token in ".!?":
            capital = True
    return text


def au_token(au: int) -> str:
    """The AU-identity start token of AU `au` (``<au12>``)."""
    return f"<au{au}>"


def template_sentences(template: Template) -> list[str]:
    """Every text the template can put into a target: local active/inactive texts, global phrases
    for each possessive, the global frame for each subject and the neutral sentence."""
    texts = []
    for entry in template.aus.values():
        texts += [entry.active, entry.inactive]
        texts += [entry.phrase.format(pos=template.possessive[g]) for g in GENDERS]
    for gender in GENDERS:
        texts.append(template.active.format(subject=template.subject[gender], phrases=join_phrases(["a", "b", "c"])))
        texts.append(template.neutral.format(subject=template.subject[gender]))
    return texts


@dataclass(frozen=True)
class Vocabulary:
    """Token ↔ id maps of one template (see the module docstring)."""

    tokens: tuple[str, ...]
    version: str

    @classmethod
    def from_template(cls, template: Template) -> "Vocabulary":
        """The vocabulary of `template`: specials, AU tokens (AU order), then the sorted words."""
        words = sorted({t for text in template_sentences(template) for t in tokenize(text)})
        aus = [au_token(au) for au in sorted(template.aus)]
        return cls(tuple([*SPECIALS, *aus, *words]), template.version)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_ids", {t: i for i, t in enumerate(self.tokens)})

    def __len__(self) -> int:
        return len(self.tokens)

    def id(self, token: str) -> int:
        """Id of `token` (``<unk>`` for words outside the template)."""
        return self._ids.get(token, self._ids[UNK])  # type: ignore[attr-defined]

    @property
    def pad(self) -> int:
        return self.id(PAD)

    @property
    def bos(self) -> int:
        return self.id(BOS)

    @property
    def eos(self) -> int:
        return self.id(EOS)

    def never_generated(self) -> list[int]:
        """Ids a decoder must never produce: ``<pad>``, ``<bos>``, ``<unk>`` and the AU tokens."""
        return [i for i, t in enumerate(self.tokens) if t.startswith("<") and t != EOS]

    def start(self, au: int | None) -> int:
        """Start id of a sequence: ``<auK>`` for AU K's local description, ``<bos>`` for None."""
        return self.bos if au is None else self.id(au_token(au))

    def encode(self, text: str | None, start: int, max_len: int) -> list[int]:
        """``[start, ids..., <eos>]`` of 1 + `max_len` ids, padded; a longer sentence is cut to its
        first `max_len` - 1 words and keeps ``<eos>``; all ``<pad>`` for a missing text (module docstring)."""
        if text is None:
            return [self.pad] * (max_len + 1)
        ids = [self.id(t) for t in tokenize(text)][:max_len - 1] + [self.eos]
        return [start, *ids] + [self.pad] * (max_len - len(ids))

    def decode(self, ids: Iterable[int]) -> str:
        """Generated ids (without the start token) up to the first ``<eos>`` → a sentence."""
        words = []
        for i in ids:
            i = int(i)
            if i == self.eos:
                break
            if i != self.pad:
                words.append(self.tokens[i])
        return detokenize(words)


def encode_targets(vocab: Vocabulary, entries: Sequence[dict], labels: Sequence[str], aus: Sequence[int],
                   local_len: int, global_len: int, au_start: bool) -> dict[str, torch.Tensor]:
    """Token tensors of every row of ``language.jsonl`` (`entries`, `fau.data.table`):
    ``local_tokens`` int64 (N, A, 1 + local_len) in `labels` order, each started by its AU token
    (``<bos>`` when `au_start` is false), and ``global_tokens`` int64 (N, 1 + global_len)."""
    local = [[vocab.encode(entry["local"].get(name), vocab.start(au if au_start else None), local_len)
              for name, au in zip(labels, aus)] for entry in entries]
    glob = [vocab.encode(entry["global"], vocab.bos, global_len) for entry in entries]
    return {"local_tokens": torch.tensor(local, dtype=torch.int64).view(len(entries), len(labels), local_len + 1),
            "global_tokens": torch.tensor(glob, dtype=torch.int64).view(len(entries), global_len + 1)}


def language_tensors(model: Any, data: Any) -> dict[str, torch.Tensor] | None:
    """Per-row language-target tensors of a prepared dataset (`fau.data.table.PreparedDataset`) for a
    model whose ``has_language`` is true (VL-FAU with LLGA or GLGA), via its ``encode_language``;
    None for the other models. The prepared targets must come from the template version the
    model's vocabulary is built from (a one-line error otherwise)."""
    if not getattr(model, "has_language", False):
        return None
    version, wanted = data.meta.get("template_version"), model.vocab.version
    if version != wanted:
        raise UserError(f"{data.root}: language targets were built with template {version!r}, "
                        f"the model's vocabulary with {wanted!r} (re-run `fau prepare` or set model.language.template)")
    return model.encode_language(data.language(), data.columns)
