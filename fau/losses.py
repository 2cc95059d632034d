"""Losses of the FAU models: weighted multi-label BCE, face-alignment loss, weighted CE, Dice, the
token NLL of VL-FAU's decoders, and the AU + alignment objective ALGRNet and MGRR-Net share.

Labels use 1 = active, 0 = inactive, -1 = unknown; unknown entries are masked out of every AU loss
(BP4D's "9" and any missing label become -1 at prepare time; docs/fau.md, decision 'unknown labels').
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Mapping

import torch
from torch.nn import functional as F

from shared.config import bounded

#: 49-point indices of the two eyes (6 points each); d_o is the distance of their centres.
LEFT_EYE: tuple[int, ...] = (19, 20, 21, 22, 23, 24)
RIGHT_EYE: tuple[int, ...] = (25, 26, 27, 28, 29, 30)


def _known(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mask = labels >= 0
    return mask.to(torch.float32), labels.clamp_min(0).to(torch.float32)


def weighted_bce(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted multi-label BCE, thesis eqs. 3.2 / 4.9 / 5.8: -1/n Σ_i w_i [p_i log p̂_i + (1-p_i) log(1-p̂_i)].

    `logits`, `labels` (B, A) with labels in {-1, 0, 1}; `weights` (A,) the class-balance weights
    ("the data balance weights ... employed in Shao et al. (2018)", thesis §3.2.1; `fau.data.stats`,
    summing to n). Sigmoid + BCE-with-logits replaces the 2-way softmax, the same function
    (docs/fau.md, decision 'sigmoid instead of softmax').
    Averaged over the batch and the AUs; -1 entries contribute nothing and the average runs over
    known entries only (all known: exactly eq. 3.2 averaged over the batch).
    """
    mask, target = _known(labels)
    per_entry = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    weighted = per_entry * weights.to(per_entry.dtype).unsqueeze(0) * mask
    return weighted.sum() / mask.sum().clamp_min(1.0)


def weighted_dice(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor,
                  smooth: float = 1.0) -> torch.Tensor:
    """JAA-Net's weighted AU Dice loss (Shao et al., IJCV 2021; not in the thesis, so off by default:
    docs/fau.md, decision 'Dice loss').

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


def alignment_loss(predicted: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Face-alignment loss, thesis eqs. 3.1 / 4.10: 1/(2 d_o²) Σ_i [(x_i - x̂_i)² + (y_i - ŷ_i)²], batch mean.

    Both (B, 49, 2) in crop pixels; d_o is the ground-truth inter-ocular distance (eye-centre
    distance, JAA-Net), clamped at 1 px² so a degenerate annotation cannot divide by zero.
    `mask` (B,) marks the frames that have ground-truth landmarks (a frame prepared with
    ``--no-align`` may have none); the mean runs over those frames only, and a batch without any
    gives 0 (no gradient), never a pull towards a made-up target.
    """
    target = target.to(predicted.dtype)
    finite = torch.isfinite(target).all(dim=-1).all(dim=-1)
    keep = finite if mask is None else finite & mask.to(torch.bool)
    target = torch.where(keep[:, None, None], target, predicted.detach())
    squared = (predicted - target).pow(2).sum(dim=(1, 2))
    per_frame = squared / (2.0 * inter_ocular_sq(target).clamp_min(1.0))
    weight = keep.to(per_frame.dtype)
    return (per_frame * weight).sum() / weight.sum().clamp_min(1.0)


def weighted_cross_entropy(logits: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Class-weighted cross-entropy for paralysis grades, thesis eq. 3.3: -w_q log q̂, averaged over the batch.

    `logits` (B, G), `target` (B,) grade indices, `weights` (G,) (inverse frequency, mean 1: docs/fau.md,
    decision 'paralysis grade weights').
    """
    per_sample = F.cross_entropy(logits, target.long(), reduction="none")
    return (per_sample * weights.to(per_sample.dtype)[target.long()]).mean()


def sequence_nll(logits: torch.Tensor, targets: torch.Tensor, pad: int) -> torch.Tensor:
    """-1/T Σ_t log p(s_t | ...) per sequence (padding excluded), averaged over the sequences
    (VL-FAU's L_Lgen / L_Ggen, thesis eqs. 5.10–5.11). `logits` (S, T, V), `targets` (S, T)."""
    nll = F.cross_entropy(logits.transpose(1, 2), targets, ignore_index=pad, reduction="none")
    mask = (targets != pad).to(nll.dtype)
    return ((nll * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1.0)).mean()


@dataclass(frozen=True)
class AULossConfig:
    """``model.loss`` of ALGRNet and MGRR-Net: the objective (below), λ of the alignment loss (0.5,
    thesis §3.3.2 / §4.4.1) and the weight of JAA-Net's Dice loss (0: off; docs/fau.md, decision 'Dice loss').

    ``objective``: ``au`` — L_au on the final probability (the mean of the local and the integrated
    probability), thesis §3.2.1 "L = L_au (or L_par) + λ L_align" (ALGRNet); ``au_int`` — L_au on the
    local and L_int on the integrated logits, eq. 4.11 "(L_au + L_int) + λ L_align" (MGRR-Net)
    (docs/fau.md, decision 'integrated head')."""

    objective: Literal["au", "au_int"] = "au"
    align_weight: float = bounded(0.5, minimum=0.0, doc="λ in L = L_au (+ L_int) + λ L_align")
    dice_weight: float = bounded(0.0, minimum=0.0)


def au_losses(outputs: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor],
              config: AULossConfig) -> dict[str, torch.Tensor]:
    """``objective: au``: L_au(final) + λ·L_align (ALGRNet, thesis §3.2.1, eqs. 3.1–3.2);
    ``au_int``: (L_au(local) + L_int(integrated)) + λ·L_align (MGRR-Net, eq. 4.11); plus JAA-Net's
    weighted Dice on the logits L_au reads when `dice_weight` > 0 (decision 'Dice loss'). Reads
    ``au_logits`` / ``au_logits_local``, ``au_logits_integrated``, ``landmarks`` (and
    ``landmark_mask`` when the batch has it) and the batch's ``labels``, ``au_weights``, ``landmarks``."""
    labels, weights = batch["labels"], batch["au_weights"]
    au_logits = outputs["au_logits"] if config.objective == "au" else outputs["au_logits_local"]
    losses = {"au": weighted_bce(au_logits, labels, weights)}
    total = losses["au"]
    if config.objective == "au_int":
        losses["int"] = weighted_bce(outputs["au_logits_integrated"], labels, weights)
        total = total + losses["int"]
    losses["align"] = alignment_loss(outputs["landmarks"], batch["landmarks"], batch.get("landmark_mask"))
    total = total + config.align_weight * losses["align"]
    if config.dice_weight > 0:
        losses["dice"] = weighted_dice(au_logits, labels, weights)
        total = total + config.dice_weight * losses["dice"]
    losses["total"] = total
    return losses
