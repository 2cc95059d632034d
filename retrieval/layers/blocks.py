"""Building blocks reused by several retrieval models (docs/retrieval.md).

* `sinusoidal_positional_encoding` — Vaswani et al. PE (GPO's position input, 3SHNet VSpM Eq. 8.4).
* `apply_to_valid` — run a per-token module on the valid tokens only, so BatchNorm statistics and
  outputs never see padding (a padded region or word can never change a score, even in training).
* `MaskedBatchNorm` — BatchNorm1d over the valid tokens of a (B, N, D) set.
* `MeanQueryAttnPool` — SMFEA Eq. 6.1–6.3 / HSLM §3.5 attention pooling with the set mean as query,
  in the thesis' dot-product form or CVSE's parametric form (decision 'SMFEA attention pooling').
* `SmoothedAttention` — λ-smoothed softmax attention of HiRE Eq. 7.8–7.9 and 3SHNet Eq. 8.7–8.9.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from shared.layers import l2_normalize, masked_mean, masked_softmax


def sinusoidal_positional_encoding(length: int, dim: int, start: int = 0, device: torch.device | None = None) -> torch.Tensor:
    """(length, dim) sin/cos table of positions start..start+length−1 (Vaswani et al.; 3SHNet Eq. 8.4).

    Even channels 2k hold sin(p / 10000^(2k/dim)), odd channels 2k+1 hold cos of the same angle.
    """
    position = torch.arange(start, start + length, dtype=torch.float32, device=device).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32, device=device) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim, device=device)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq[: dim // 2])
    return table


def apply_to_valid(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """fn applied to the valid tokens of x (B, N, D) only; padded positions of the result are zero."""
    if mask is None:
        shape = x.shape
        out = fn(x.reshape(-1, shape[-1]))
        return out.reshape(*shape[:-1], out.shape[-1])
    mask = mask.to(torch.bool)
    valid = fn(x[mask])
    out = x.new_zeros(*x.shape[:-1], valid.shape[-1])
    out[mask] = valid.to(out.dtype)
    return out


class MaskedBatchNorm(nn.Module):
    """BatchNorm1d over the feature dim of the valid tokens of a (B, N, D) set (or a (B, D) batch)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if x.ndim == 2:
            return self.norm(x)
        return apply_to_valid(self.norm, x, mask)


class MeanQueryAttnPool(nn.Module):
    """Attention pooling of a set with its (masked) mean as the query (SMFEA Eq. 6.1–6.3).

    ``form="dot"`` (the thesis): α_i = softmax_i(mean(X)·x_i), out = Σ α_i x_i.
    ``form="parametric"`` (the public code BruceW91/CVSE, ``V/T_single_modal_atten``; default, decision 'SMFEA attention pooling'):
    a = softmax_i(fc3(drop(tanh(BN(fc1 x_i))) ⊙ drop(tanh(BN(fc2 mean(X)))))), out = Σ a_i x_i.
    The output is l2-normalised when `normalize` (CVSE).  Padded items get weight 0 and never enter
    the mean or the BatchNorm statistics.  ``forward(x, mask, return_weights=True)`` also returns the
    weights α (B, N) (the explanation of what was pooled).
    """

    def __init__(self, dim: int, form: str = "parametric", dropout: float = 0.1, batch_norm: bool = True,
                 normalize: bool = True) -> None:
        super().__init__()
        if form not in ("parametric", "dot"):
            raise ValueError(f"unknown attention pooling form {form!r} (parametric, dot)")
        self.form, self.normalize = form, normalize
        if form == "parametric":
            self.item_fc = nn.Linear(dim, dim)
            self.query_fc = nn.Linear(dim, dim)
            self.score_fc = nn.Linear(dim, 1, bias=False)  # a bias cannot change a softmax over items
            self.item_norm = MaskedBatchNorm(dim) if batch_norm else None
            self.query_norm = nn.BatchNorm1d(dim) if batch_norm else None
            self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None,
                return_weights: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        query = masked_mean(x, mask, dim=1)
        if self.form == "dot":
            scores = (x * query.unsqueeze(1)).sum(dim=-1)
        else:
            items = self.item_fc(x)
            items = self.item_norm(items, mask) if self.item_norm is not None else items
            q = self.query_fc(query)
            q = self.query_norm(q) if self.query_norm is not None else q
            fused = self.dropout(torch.tanh(items)) * self.dropout(torch.tanh(q)).unsqueeze(1)
            scores = self.score_fc(fused).squeeze(-1)
        weights = masked_softmax(scores, mask, dim=1)
        pooled = (weights.unsqueeze(-1) * x).sum(dim=1)
        pooled = l2_normalize(pooled) if self.normalize else pooled
        return (pooled, weights) if return_weights else pooled


class SmoothedAttention(nn.Module):
    """β_ij = softmax_j(λ·c_ij), out_i = Σ_j β_ij v_j (3SHNet Eq. 8.7–8.9, HiRE Eq. 7.8–7.9).

    c_ij is the cosine of q_i and k_j (``similarity="cosine"``, the thesis) or q_i·k_j/√d
    (``"scaled_dot"``, the 3SHNet code; decision '3SHNet similarity').  Parameter-free; values default to keys.
    `forward` returns (out, β): the attention map is an output, for interpretability exports.
    """

    def __init__(self, smooth: float = 4.0, similarity: str = "scaled_dot") -> None:
        super().__init__()
        if similarity not in ("cosine", "scaled_dot"):
            raise ValueError(f"unknown attention similarity {similarity!r} (cosine, scaled_dot)")
        self.smooth, self.similarity = smooth, similarity

    def forward(self, queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor | None = None,
                key_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        values = keys if values is None else values
        if self.similarity == "cosine":
            scores = l2_normalize(queries) @ l2_normalize(keys).transpose(-1, -2)
        else:
            scores = queries @ keys.transpose(-1, -2) / math.sqrt(queries.shape[-1])
        mask = None if key_mask is None else key_mask.unsqueeze(-2)
        attention = masked_softmax(self.smooth * scores, mask, dim=-1)
        return attention @ values, attention


def drop_regions(mask: torch.Tensor, p: float) -> torch.Tensor:
    """Training augmentation of the 3SHNet / VSE∞ code: drop each valid region with probability p (≥ 1 kept)."""
    keep = mask & (torch.rand(mask.shape, device=mask.device) >= p)
    empty = ~keep.any(dim=1)
    if empty.any():
        first = mask.to(torch.int8).argmax(dim=1)
        keep[empty, first[empty]] = True
    return keep
