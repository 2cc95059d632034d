"""The retrieval model boundary (docs/retrieval.md, "The model boundary"): two-tower and pairwise models.

A model is an ``nn.Module`` built from a frozen dataclass config (its ``Config``, the ``model:`` section
of a YAML file) plus what only the data and the config's ``loss:`` section know:
``Model(Model.Config(...), loss=RankingLoss(...), vocab_size=..., word_vectors=...)``, or
``Model.from_config(section, loss, vocab_size, word_vectors)`` from a YAML mapping.

A two-tower model embeds images and captions independently; the score is the dot product of the
l2-normalised embeddings (a cosine).  Subclasses implement `image_outputs` / `text_outputs`, each a
dict of named tensors with at least ``"embedding"`` (B, D), plus whatever their auxiliary losses or
interpretability exports need (tree-node logits, salience, attention maps).  The evaluator only calls
`embed_images` / `embed_texts` (`retrieval.evaluation.similarity.TwoTowerModel`); the trainer calls
`forward(batch)` then `training_losses(outputs, batch)`.

A pairwise (cross-interaction) model cannot embed an image without the caption it is compared with, so
it exposes the evaluator's `retrieval.evaluation.similarity.PairwiseModel` protocol instead
(`PairwiseRetrievalModel`): `encode_images` / `encode_texts` once per item, and `forward_sim` for the
(Bi, Bt) scores of a whole tile in one batched call, each pair scored independently of the tile.

Models that explain themselves implement ``explain(images, texts)`` for aligned pairs (image i,
caption i) and return their interpretability tensors by name; consumers call `shared.explain.explain`.

Batches: ``batch = {"images": {...}, "texts": {...}, "image_ids": (B,) optional}`` with row i of the
images paired with row i of the texts.  Image dicts carry ``regions`` (B, K, 2048) + ``region_mask``
(B, K) bool, or ``grid`` (B, 49, 2048), and optionally ``segmentations`` (B, 133, 7, 7),
``seg_maps`` (B, 64, 64) long, ``cat_onehots`` (B, 133); text dicts carry ``tokens`` (B, L) +
``lengths`` (B,) for GRU models or ``input_ids`` + ``attention_mask`` (B, L) for BERT models, and
SMFEA's ``tree_labels``.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from retrieval.losses import RankingLoss
from shared.config import from_dict

Outputs = dict[str, torch.Tensor]


class RetrievalModel(nn.Module, ABC):
    """What every retrieval model shares, two-tower or pairwise: a `RankingLoss`, named auxiliary
    losses weighted by `aux_weights`, the inputs it reads, corpus statistics and optimizer groups.

    The trainer calls ``outputs = model(batch)`` then ``model.training_losses(outputs, batch)``.
    """

    #: ``"two-tower"`` (indexable embeddings) or ``"pairwise"`` (scores need both items)
    family = ""
    #: model name in `retrieval.models.MODELS`
    name: ClassVar[str] = ""
    #: the frozen dataclass of the ``model:`` config section
    Config: ClassVar[type]

    #: what the text tower reads: ``"tokens"`` (vocabulary ids + lengths) or ``"bert"`` (input_ids + mask)
    text_kind = "tokens"
    #: whether text batches must carry SMFEA's referral-tree labels (``tree_labels``)
    needs_tree_labels = False

    def image_inputs(self) -> tuple[str, ...]:
        """Keys of the image batch this model reads (the data loader reads only these arrays)."""
        return ("regions", "region_mask")

    def __init__(self, loss: RankingLoss, aux_weights: dict[str, float] | None = None) -> None:
        super().__init__()
        self.loss = loss
        self.aux_weights = dict(aux_weights or {})

    @classmethod
    def from_config(cls, section: Mapping[str, Any], loss: RankingLoss, vocab_size: int | None = None,
                    word_vectors: np.ndarray | None = None, bert_source: str | None = None,
                    pretrained: bool = True) -> "RetrievalModel":
        """The model from a ``model:`` mapping, read strictly into ``cls.Config`` (one-line errors naming
        the dotted key).  For BERT models `bert_source` overrides ``model.bert.source`` and
        ``pretrained=False`` builds BERT with random weights from its config only."""
        config = from_dict(cls.Config, section, "model")
        bert = getattr(config, "bert", None)
        if bert is not None and (bert_source is not None or not pretrained):
            config = dataclasses.replace(config, bert=dataclasses.replace(
                bert, source=bert_source or bert.source, pretrained=bert.pretrained and pretrained))
        return cls(config, loss=loss, vocab_size=vocab_size, word_vectors=word_vectors)

    @staticmethod
    def require_vocab(name: str, vocab_size: int | None) -> int:
        """`vocab_size`, or a ValueError naming the model (GRU text towers need the vocabulary size)."""
        if vocab_size is None:
            raise ValueError(f"{name} needs vocab_size (a GRU text encoder)")
        return int(vocab_size)

    @abstractmethod
    def training_losses(self, outputs: dict[str, Any], batch: dict[str, Any]) -> Outputs:
        """Every named loss term of one training step (``outputs = self(batch)``) and ``total``."""

    def auxiliary_losses(self, image_out: Outputs, text_out: Outputs, batch: dict[str, Any]) -> Outputs:
        """Unweighted auxiliary loss terms by name (none by default)."""
        return {}

    def add_auxiliary(self, terms: Outputs, total: torch.Tensor, image_out: Outputs, text_out: Outputs,
                      batch: dict[str, Any]) -> Outputs:
        """`terms` plus every auxiliary term and ``total`` = total + Σ_name aux_weights[name] · aux[name]."""
        for name, value in self.auxiliary_losses(image_out, text_out, batch).items():
            terms[name] = value
            total = total + self.aux_weights.get(name, 1.0) * value
        terms["total"] = total
        return terms

    def set_epoch(self, epoch: int) -> None:
        """Tell the loss which epoch runs (sum-of-hinges warm-up, decision 'hardest negatives')."""
        self.loss.set_epoch(epoch)

    def prepare_corpus(self, captions: Sequence[Sequence[int]], words: Sequence[str]) -> None:
        """Statistics a model needs from the training captions before training (word ids, vocabulary words).

        Most models need none; SMFEA builds its CAC concept graph here.  Call once, before the first
        step, with the training split only; the result lives in buffers, so checkpoints carry it.
        """


class TwoTowerRetrievalModel(RetrievalModel):
    """Two towers: independent image and caption embeddings scored by a dot product."""

    family = "two-tower"

    @abstractmethod
    def image_outputs(self, images: dict[str, torch.Tensor]) -> Outputs:
        """Named image-tower outputs; ``"embedding"`` is the (B, D) l2-normalised image embedding."""

    @abstractmethod
    def text_outputs(self, texts: dict[str, torch.Tensor]) -> Outputs:
        """Named text-tower outputs; ``"embedding"`` is the (B, D) l2-normalised caption embedding."""

    def embed_images(self, images: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, D) l2-normalised image embeddings (the evaluator's `TwoTowerModel` protocol)."""
        return self.image_outputs(images)["embedding"]

    def embed_texts(self, texts: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, D) l2-normalised caption embeddings (the evaluator's `TwoTowerModel` protocol)."""
        return self.text_outputs(texts)["embedding"]

    def forward(self, batch: dict[str, Any]) -> dict[str, Outputs]:
        """Both towers on an aligned batch: ``{"image": image_outputs, "text": text_outputs}``."""
        return {"image": self.image_outputs(batch["images"]), "text": self.text_outputs(batch["texts"])}

    def training_losses(self, outputs: dict[str, Any], batch: dict[str, Any]) -> Outputs:
        """Every named loss term of ``outputs = self(batch)`` (ranking, IMC, auxiliaries; each logged
        separately) and ``total`` = rank [+ λ·IMC] + Σ_name aux_weights[name] · aux[name]."""
        image_out, text_out = outputs["image"], outputs["text"]
        terms = self.loss(image_out["embedding"], text_out["embedding"], batch.get("image_ids"))
        return self.add_auxiliary(terms, self.loss.total(terms), image_out, text_out, batch)


class PairwiseRetrievalModel(RetrievalModel):
    """Base class of cross-interaction models (module docstring)."""

    family = "pairwise"

    @abstractmethod
    def encode_images(self, images: dict[str, torch.Tensor]) -> Outputs:
        """Per-image features (batch first), computed once per image."""

    @abstractmethod
    def encode_texts(self, texts: dict[str, torch.Tensor]) -> Outputs:
        """Per-caption features (batch first, zero-padded, with a ``mask`` (B, L) bool), computed once."""

    @abstractmethod
    def forward_sim(self, image_feats: Outputs, text_feats: Outputs) -> torch.Tensor:
        """(Bi, Bt) scores of every image in `image_feats` against every caption in `text_feats`."""

    def pooled(self, image_feats: Outputs, text_feats: Outputs) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(B, D) per-item vectors for the IMC term (Eq. 5.4), or (None, None) when the model has none.

        Models that keep a pooled vector in their features under ``"pooled"`` get IMC for free.
        """
        return image_feats.get("pooled"), text_feats.get("pooled")

    def forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Encode the aligned batch and score its (B, B) matrix: ``{"image", "text", "scores"}``."""
        image_feats = self.encode_images(batch["images"])
        text_feats = self.encode_texts(batch["texts"])
        return {"image": image_feats, "text": text_feats, "scores": self.forward_sim(image_feats, text_feats)}

    def training_losses(self, outputs: dict[str, Any], batch: dict[str, Any]) -> Outputs:
        """The hinge triplet on the in-batch scores ``forward`` computed [+ λ·IMC] + weighted auxiliary
        terms, and ``total``."""
        image_feats, text_feats = outputs["image"], outputs["text"]
        images, texts = self.pooled(image_feats, text_feats)
        terms = self.loss.from_scores(outputs["scores"], batch.get("image_ids"), images, texts)
        return self.add_auxiliary(terms, self.loss.total(terms), image_feats, text_feats, batch)
