"""The pairwise (cross-interaction) retrieval model boundary: HiRE, VSR++'s local branch, HSLM.

A pairwise model cannot embed an image without the caption it is compared with, so it exposes the
evaluator's `retrieval.evaluation.similarity.PairwiseModel` protocol instead of two towers:

* `encode_images(images)` / `encode_texts(texts)` — per-item features computed once per item
  (dicts of batch-first tensors; caption features carry their own ``mask`` (B, L) bool);
* `forward_sim(image_feats, text_feats)` — the (Bi, Bt) scores of every image against every caption
  of the two blocks in one batched call.  Each pair is scored independently of the other items, so
  the evaluator's tiling never changes a score (anchors-retrieval.md §3.2).

Training uses the same call: ``outputs = model(batch)`` encodes both sides of the aligned batch and
scores the (B, B) in-batch matrix inside ``forward`` (so DDP sees every parameter used in forward);
`training_losses` applies the §1.6 triplet to that matrix (`RankingLoss.from_scores`) plus the
model's auxiliary terms.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import torch

from retrieval.models.base import Outputs, RetrievalModel


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

    def compute_losses(self, image_feats: Outputs, text_feats: Outputs, batch: dict[str, Any],
                       scores: torch.Tensor | None = None) -> Outputs:
        """Triplet on the in-batch scores (§1.6) [+ λ·IMC] + weighted auxiliary terms, and ``total``."""
        scores = self.forward_sim(image_feats, text_feats) if scores is None else scores
        images, texts = self.pooled(image_feats, text_feats)
        terms = self.loss.from_scores(scores, batch.get("image_ids"), images, texts)
        return self.add_auxiliary(terms, self.loss.total(terms), image_feats, text_feats, batch)

    def training_losses(self, outputs: dict[str, Any], batch: dict[str, Any]) -> Outputs:
        """`compute_losses` with the scores already computed in ``forward``."""
        return self.compute_losses(outputs["image"], outputs["text"], batch, outputs["scores"])
