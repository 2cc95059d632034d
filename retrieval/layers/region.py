"""Region (and grid-cell) feature encoders on pre-extracted 2048-d features (docs/retrieval.md).

`RegionEncoder`: f = FC(v) (Xavier-uniform weights, zero bias, as CVSE / VSE∞ ``EncoderImagePrecomp``);
with `mlp_hidden` the VSE∞ "basic + MLP" embedding v = f + MLP(in, hidden, out)(v) (3SHNet, thesis §8.3
"Region embedding").  The MLP runs on valid regions only, so padding never reaches its BatchNorm.
"""

from __future__ import annotations

import torch
from torch import nn

from shared.layers import MLP

from retrieval.layers.blocks import apply_to_valid


def xavier_linear(in_dim: int, out_dim: int) -> nn.Linear:
    """Linear layer with Xavier-uniform weights and zero bias (VSE++/SCAN/CVSE/VSE∞ ``init_weights``)."""
    layer = nn.Linear(in_dim, out_dim)
    nn.init.xavier_uniform_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class RegionEncoder(nn.Module):
    """`forward(regions (B, K, in), mask (B, K))` → (f = FC(v), embedded v = f [+ MLP(v)]), both (B, K, out)."""

    def __init__(self, in_dim: int = 2048, out_dim: int = 1024, mlp_hidden: int | None = None) -> None:
        super().__init__()
        self.fc = xavier_linear(in_dim, out_dim)
        self.mlp = MLP(in_dim, mlp_hidden, out_dim, num_layers=2) if mlp_hidden else None

    def forward(self, regions: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        projected = self.fc(regions)
        if mask is not None:
            projected = projected * mask.unsqueeze(-1).to(projected.dtype)
        if self.mlp is None:
            return projected, projected
        return projected, projected + apply_to_valid(self.mlp, regions, mask)
