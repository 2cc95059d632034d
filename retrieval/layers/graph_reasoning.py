"""Fully connected graph reasoning and recurrent pieces shared by VSR++ and HSLM (docs/retrieval.md).

* `RsGCN` — one region-relationship reasoning layer of VSRN (the public code KunpengLi1994/VSRN, ``Rs_GCN``), which
  is also HSLM's MGCN layer (HSLM paper Eq. 7–9, decision 'HSLM graph depth'): the affinity A = θ(X) φ(X)ᵀ / N of a fully connected
  graph, then X' = BN(W (A g(X))) + X.  The BatchNorm starts at zero, so a fresh layer is the identity.
* `GraphReasoning` — a stack of `RsGCN` layers, each with its own affinity recomputed from the current
  features (VSR++ "4 × RsGCN", HSLM "l = 4").
* `run_gru` — a packed (Bi-)GRU over the valid items, directions averaged (HSLM paper Eq. 12–13).
* `compact_valid` — move the valid items of each row to the front (order kept), so a GRU over a set
  whose mask is not a prefix still reads exactly the valid items.

Every operation excludes padded items: they never enter an affinity, a normalisation count, a BatchNorm
statistic or a recurrence, so padding can never change a score.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from retrieval.layers.blocks import MaskedBatchNorm


class RsGCN(nn.Module):
    """X' = BN(W (A g(X))) + X with A = θ(X) φ(X)ᵀ / N over the N valid nodes (VSRN; HSLM Eq. 8–9).

    θ, φ (HSLM's μ, ν), g (W_g / W_m) and W (W_r / W_h) are linear maps (VSRN's 1×1 Conv1d).
    """

    def __init__(self, dim: int, inter_dim: int | None = None, batch_norm: bool = True) -> None:
        super().__init__()
        inter = dim if inter_dim is None else inter_dim
        self.theta = nn.Linear(dim, inter)
        self.phi = nn.Linear(dim, inter)
        self.g = nn.Linear(dim, inter)
        self.out = nn.Linear(inter, dim)
        self.norm = MaskedBatchNorm(dim) if batch_norm else None
        if self.norm is not None:  # VSRN: W's BatchNorm weight and bias start at 0 (identity layer)
            nn.init.zeros_(self.norm.norm.weight)
            nn.init.zeros_(self.norm.norm.bias)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, N, D), mask (B, N) bool → (B, N, D); padded rows of the output are zero."""
        affinity = self.theta(x) @ self.phi(x).transpose(1, 2)
        if mask is None:
            affinity = affinity / x.shape[1]
        else:
            keep = mask.to(x.dtype)
            affinity = affinity * keep.unsqueeze(1) / keep.sum(dim=1).clamp_min(1.0).view(-1, 1, 1)
        y = self.out(affinity @ self.g(x))
        if self.norm is not None:
            y = self.norm(y, mask)
        out = y + x
        return out if mask is None else out * mask.unsqueeze(-1).to(out.dtype)


class GraphReasoning(nn.Module):
    """`layers` stacked `RsGCN` layers on a fully connected graph (VSRN 4 × Rs_GCN; HSLM MGCN, decision 'HSLM graph depth')."""

    def __init__(self, dim: int, layers: int = 4, batch_norm: bool = True) -> None:
        super().__init__()
        self.layers = nn.ModuleList(RsGCN(dim, batch_norm=batch_norm) for _ in range(layers))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, mask)
        return x


def compact_valid(x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(x with each row's valid items moved to the front in their order, lengths (B,))."""
    order = torch.sort((~mask.to(torch.bool)).to(torch.int8), dim=1, stable=True).indices
    gathered = torch.gather(x, 1, order.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
    return gathered, mask.to(torch.bool).sum(dim=1)


def run_gru(rnn: nn.GRU, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Packed GRU over the first `lengths` items: (states (B, L, H), last hidden (B, H)).

    Bi-directional GRUs average the two directions, per position and for the last hidden state
    (t_j = (h→_j + h←_j) / 2, HSLM paper Eq. 13).  Padded positions of the states are zero.
    """
    max_len = x.shape[1]
    packed = pack_padded_sequence(x, lengths.detach().cpu().clamp(min=1), batch_first=True, enforce_sorted=False)
    out, hidden = rnn(packed)
    out, _ = pad_packed_sequence(out, batch_first=True, total_length=max_len)
    if rnn.bidirectional:
        size = rnn.hidden_size
        return (out[..., :size] + out[..., size:]) / 2, (hidden[-2] + hidden[-1]) / 2
    return out, hidden[-1]
