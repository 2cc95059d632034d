"""The two-tower retrieval model boundary (design.md "Retrieval"; retrieval-models.md §1.1).

A two-tower model embeds images and captions independently; the score is the dot product of the
l2-normalised embeddings (a cosine).  Subclasses implement `image_outputs` / `text_outputs`, each a
dict of named tensors with at least ``"embedding"`` (B, D), plus whatever their auxiliary losses or
interpretability exports need (tree-node logits, salience, attention maps).  The evaluator only calls
`embed_images` / `embed_texts` (`retrieval.evaluation.similarity.TwoTowerModel`); the trainer calls
`forward(batch)` then `compute_losses(out["image"], out["text"], batch)`.

Batches: ``batch = {"images": {...}, "texts": {...}, "image_ids": (B,) optional}`` with row i of the
images paired with row i of the texts.  Image dicts carry ``regions`` (B, K, 2048) + ``region_mask``
(B, K) bool, or ``grid`` (B, 49, 2048), and optionally ``segmentations`` (B, 133, 7, 7),
``seg_maps`` (B, 64, 64) long, ``cat_onehots`` (B, 133); text dicts carry ``tokens`` (B, L) +
``lengths`` (B,) for GRU models or ``input_ids`` + ``attention_mask`` (B, L) for BERT models, and
SMFEA's ``tree_labels``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from retrieval.losses import RankingLoss

Outputs = dict[str, torch.Tensor]


class RetrievalModel(nn.Module, ABC):
    """What every retrieval model shares, two-tower or pairwise: a `RankingLoss`, named auxiliary
    losses weighted by `aux_weights`, the inputs it reads, corpus statistics and optimizer groups.

    The trainer calls ``outputs = model(batch)`` then ``model.training_losses(outputs, batch)``.
    """

    #: ``"two-tower"`` (indexable embeddings) or ``"pairwise"`` (scores need both items)
    family = ""

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
    @abstractmethod
    def from_config(cls, model: dict[str, Any], loss: RankingLoss, vocab_size: int | None,
                    word_vectors: np.ndarray | None, bert_dir: str | None, pretrained: bool) -> "RetrievalModel":
        """Build from a ``model:`` config section (see `retrieval.models.build_model`)."""

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
        """Tell the loss which epoch runs (sum-of-hinges warm-up, §9 G1)."""
        self.loss.set_epoch(epoch)

    def prepare_corpus(self, captions: Sequence[Sequence[int]], words: Sequence[str]) -> None:
        """Statistics a model needs from the training captions before training (word ids, vocabulary words).

        Most models need none; SMFEA builds its CAC concept graph here.  Call once, before the first
        step, with the training split only; the result lives in buffers, so checkpoints carry it.
        """

    def parameter_groups(self, lr_scales: dict[str, float] | None = None) -> list[dict[str, Any]]:
        """Optimizer groups: parameters whose name starts with a key of `lr_scales` get ``lr_scale`` = value.

        E.g. ``{"text.encoder.bert": 0.1}`` for the 3SHNet code's BERT lr × 0.1.  Every group has
        ``name``, ``params`` and ``lr_scale``; frozen parameters are left out.
        """
        lr_scales = dict(lr_scales or {})
        groups: dict[str, list[nn.Parameter]] = {prefix: [] for prefix in lr_scales}
        rest: list[nn.Parameter] = []
        for name, param in self.named_parameters():
            if not param.requires_grad:
                continue
            prefix = next((p for p in lr_scales if name == p or name.startswith(p + ".")), None)
            (groups[prefix] if prefix is not None else rest).append(param)
        out = [{"name": "default", "params": rest, "lr_scale": 1.0}]
        out += [{"name": p, "params": params, "lr_scale": float(lr_scales[p])} for p, params in groups.items() if params]
        return out


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

    def compute_losses(self, image_out: Outputs, text_out: Outputs, batch: dict[str, Any]) -> Outputs:
        """Every named loss term (ranking, IMC, auxiliaries; each logged separately) and ``total``.

        total = rank [+ λ·IMC] + Σ_name aux_weights[name] · aux[name].
        """
        terms = self.loss(image_out["embedding"], text_out["embedding"], batch.get("image_ids"))
        return self.add_auxiliary(terms, self.loss.total(terms), image_out, text_out, batch)

    def training_losses(self, outputs: dict[str, Any], batch: dict[str, Any]) -> Outputs:
        """`compute_losses` of the two tower outputs of ``self(batch)``."""
        return self.compute_losses(outputs["image"], outputs["text"], batch)
