"""Masked reductions and normalisation used by attention, pooling and similarity code.

Masks are boolean with True = keep.  A fully masked row yields zeros (softmax) or zeros (mean),
never NaN, so padded items can never change a score.
"""

from __future__ import annotations

import torch


def l2_normalize(x: torch.Tensor, dim: int = -1, eps: float = 1e-8) -> torch.Tensor:
    """x / ||x||_2 along `dim` (eps 1e-8 keeps a zero vector finite)."""
    return x / x.norm(p=2, dim=dim, keepdim=True).clamp_min(eps)


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor | None, dim: int = -1) -> torch.Tensor:
    """Softmax over `dim` ignoring positions where `mask` is False (they get weight 0)."""
    if mask is None:
        return torch.softmax(scores, dim=dim)
    mask = mask.to(torch.bool)
    filled = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    weights = torch.softmax(filled, dim=dim) * mask
    return weights / weights.sum(dim=dim, keepdim=True).clamp_min(torch.finfo(scores.dtype).tiny)


def masked_mean(x: torch.Tensor, mask: torch.Tensor | None, dim: int = 1) -> torch.Tensor:
    """Mean of `x` over `dim`, counting only positions where `mask` (broadcastable) is True."""
    if mask is None:
        return x.mean(dim=dim)
    mask = mask.to(x.dtype)
    while mask.ndim < x.ndim:
        mask = mask.unsqueeze(-1)
    total = (x * mask).sum(dim=dim)
    count = mask.sum(dim=dim).clamp_min(1.0)
    return total / count


def masked_max(x: torch.Tensor, mask: torch.Tensor | None, dim: int = 1) -> torch.Tensor:
    """Max of `x` over `dim` among positions where `mask` is True (zeros for an empty row)."""
    if mask is None:
        return x.max(dim=dim).values
    mask = mask.to(torch.bool)
    while mask.ndim < x.ndim:
        mask = mask.unsqueeze(-1)
    filled = x.masked_fill(~mask, torch.finfo(x.dtype).min)
    out = filled.max(dim=dim).values
    return torch.where(mask.any(dim=dim), out, torch.zeros_like(out))
