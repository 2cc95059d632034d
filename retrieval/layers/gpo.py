"""Generalised pooling operator (GPO, VSE∞ — J. Chen et al. 2021), used by 3SHNet and VSE∞ (VSE∞ §3.2).

For a set of N features with a valid length n: positions 0..n−1 get a sinusoidal encoding (d_pe = 32),
a Bi-GRU (hidden 32, directions averaged) turns it into one score per position, weights =
softmax(score / 0.1) over the valid positions, and the output is Σ_k w_k · sort_k(features) where
every feature dimension is sorted in descending order over the valid items.  The weights depend
only on n, and sorting makes the result independent of item order and of padding.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from shared.layers import masked_softmax

from retrieval.layers.blocks import sinusoidal_positional_encoding

PAD_FILL = -10000.0  # VSE∞: padded items are pushed to the end of every sorted dimension


class GPO(nn.Module):
    """`forward(features (B, N, D), mask (B, N))` → (B, D) pooled features."""

    def __init__(self, d_pe: int = 32, d_hidden: int = 32, temperature: float = 0.1) -> None:
        super().__init__()
        self.d_pe, self.d_hidden, self.temperature = d_pe, d_hidden, temperature
        self.gru = nn.GRU(d_pe, d_hidden, batch_first=True, bidirectional=True)
        self.linear = nn.Linear(d_hidden, 1, bias=False)

    def position_weights(self, lengths: torch.Tensor, max_len: int) -> torch.Tensor:
        """(B, max_len) pooling weights of sorted positions for sets of the given lengths.

        The weights depend on the length only, so the GRU runs once per distinct length.
        """
        distinct, inverse = torch.unique(lengths, return_inverse=True)
        pe = sinusoidal_positional_encoding(max_len, self.d_pe, device=lengths.device)
        pe = pe.unsqueeze(0).expand(distinct.shape[0], -1, -1)
        packed = pack_padded_sequence(pe, distinct.detach().cpu().clamp(min=1), batch_first=True, enforce_sorted=False)
        out, _ = self.gru(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=max_len)
        out = (out[..., : self.d_hidden] + out[..., self.d_hidden:]) / 2
        scores = self.linear(out).squeeze(-1)
        mask = torch.arange(max_len, device=lengths.device).unsqueeze(0) < distinct.unsqueeze(1)
        return masked_softmax(scores / self.temperature, mask, dim=1)[inverse]

    def forward(self, features: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        batch, max_len, _ = features.shape
        if mask is None:
            mask = torch.ones(batch, max_len, dtype=torch.bool, device=features.device)
        mask = mask.to(torch.bool)
        lengths = mask.sum(dim=1)
        weights = self.position_weights(lengths, max_len)
        ordered = features.masked_fill(~mask.unsqueeze(-1), PAD_FILL).sort(dim=1, descending=True).values
        valid_sorted = torch.arange(max_len, device=features.device).unsqueeze(0) < lengths.unsqueeze(1)
        ordered = ordered.masked_fill(~valid_sorted.unsqueeze(-1), 0.0)
        return (ordered * weights.unsqueeze(-1)).sum(dim=1)
