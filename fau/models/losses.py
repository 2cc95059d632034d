"""Losses of the FAU models: weighted multi-label BCE, face-alignment loss, weighted CE, Dice.

Labels use 1 = active, 0 = inactive, -1 = unknown; unknown entries are masked out of every AU loss
(fau-models.md §1.5 / §5 G4: BP4D's "9" and any missing label become -1 at prepare time).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

#: 49-point indices of the two eyes (6 points each); d_o is the distance of their centres.
LEFT_EYE: tuple[int, ...] = (19, 20, 21, 22, 23, 24)
RIGHT_EYE: tuple[int, ...] = (25, 26, 27, 28, 29, 30)


def _known(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mask = labels >= 0
    return mask.to(torch.float32), labels.clamp_min(0).to(torch.float32)


def weighted_bce(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted multi-label BCE, eq. 3.2 / 4.9: -1/n Σ_i w_i [p_i log p̂_i + (1-p_i) log(1-p̂_i)].

    `logits`, `labels` (B, A) with labels in {-1, 0, 1}; `weights` (A,) the class-balance weights
    (fau-models.md §1.7, summing to n). Sigmoid + BCE-with-logits replaces the 2-way softmax (§5 G9).
    Averaged over the batch and the AUs; -1 entries contribute nothing and the average runs over
    known entries only (all known: exactly eq. 3.2 averaged over the batch).
    """
    mask, target = _known(labels)
    per_entry = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    weighted = per_entry * weights.to(per_entry.dtype).unsqueeze(0) * mask
    return weighted.sum() / mask.sum().clamp_min(1.0)


def weighted_dice(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor,
                  smooth: float = 1.0) -> torch.Tensor:
    """JAA-Net's weighted AU Dice loss (fau-models.md §2.6 [EXT], §5 G10; off by default).

    Per AU over the known entries of the batch: 1 - (2 Σ p y + s) / (Σ p² + Σ y² + s), weighted by
    w_i and averaged over the AUs.
    """
    mask, target = _known(labels)
    prob = torch.sigmoid(logits) * mask
    target = target * mask
    dice = 1.0 - (2.0 * (prob * target).sum(0) + smooth) / (prob.pow(2).sum(0) + target.pow(2).sum(0) + smooth)
    return (dice * weights.to(dice.dtype)).mean()


def inter_ocular_sq(landmarks: torch.Tensor) -> torch.Tensor:
    """Squared distance d_o² between the two eye centres of (B, 49, 2) landmarks (JAA-Net)."""
    left = landmarks[:, list(LEFT_EYE)].mean(dim=1)
    right = landmarks[:, list(RIGHT_EYE)].mean(dim=1)
    return (left - right).pow(2).sum(dim=-1)


def alignment_loss(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Face-alignment loss, eq. 3.1 / 4.10: 1/(2 d_o²) Σ_i [(x_i - x̂_i)² + (y_i - ŷ_i)²], batch mean.

    Both (B, 49, 2) in crop pixels; d_o is the ground-truth inter-ocular distance (eye-centre
    distance, JAA-Net), clamped at 1 px² so a degenerate annotation cannot divide by zero.
    """
    target = target.to(predicted.dtype)
    squared = (predicted - target).pow(2).sum(dim=(1, 2))
    return (squared / (2.0 * inter_ocular_sq(target).clamp_min(1.0))).mean()


def weighted_cross_entropy(logits: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Class-weighted cross-entropy for paralysis grades, eq. 3.3: -w_q log q̂, averaged over the batch.

    `logits` (B, G), `target` (B,) grade indices, `weights` (G,) (inverse frequency, mean 1).
    """
    per_sample = F.cross_entropy(logits, target.long(), reduction="none")
    return (per_sample * weights.to(per_sample.dtype)[target.long()]).mean()
