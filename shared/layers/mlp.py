"""A small per-token MLP (Linear → BatchNorm1d → ReLU → Linear, as in VSE∞'s feature MLP; docs/retrieval.md)."""

from __future__ import annotations

import torch
from torch import nn


class MLP(nn.Module):
    """`num_layers` linear layers with BatchNorm (optional) and ReLU between them.

    Accepts (B, D) or (B, N, D); tokens are flattened for the BatchNorm, as VSE∞ does.
    """

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int = 2, batch_norm: bool = True) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError("an MLP needs at least one layer")
        dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
        self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.norms = nn.ModuleList(
            nn.BatchNorm1d(d) if batch_norm else nn.Identity() for d in dims[1:-1]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        h = x.reshape(-1, shape[-1])
        for linear, norm in zip(self.linears[:-1], self.norms):
            h = torch.relu(norm(linear(h)))
        h = self.linears[-1](h)
        return h.reshape(*shape[:-1], h.shape[-1])
