"""Convolution blocks and grouped linear layers: the per-branch building blocks of the CNN models.

* `ConvBlocks`: JAA-Net's ``HLFeatExtractor`` (Shao et al., IJCV 2021): per block [conv3×3/s1/p1 →
  BN → ReLU] × 2, then max-pool 2×2; ALGRNet's refining part is "three blocks. Each block consists of
  two convolutional layers and a max-pooling layer" with 3×3 / stride 1 / padding 1 filters (thesis
  §3.2.4, §3.3.2). Optionally `groups` independent branches (one per AU) run as grouped convolutions.
* `GroupedLinear`: one independent linear layer per branch, batched.
"""

from __future__ import annotations

import torch
from torch import nn


class ConvBlocks(nn.Module):
    """JAA-Net ``HLFeatExtractor``: per block [conv3×3/s1/p1 → BN → ReLU] × 2,
    then max-pool 2×2 when `pool` (44 → 22 → 11 → 5 for widths 96/128/160: a 4000-d vector).

    With `groups` > 1 the input is (B, groups·in_channels, H, W), branch-major, and each branch has
    its own weights and BN statistics (one grouped conv per layer).
    """

    def __init__(self, in_channels: int, widths: tuple[int, ...], groups: int = 1, pool: bool = True) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        previous = in_channels
        for width in widths:
            for _ in range(2):
                layers += [nn.Conv2d(groups * previous, groups * width, 3, padding=1, groups=groups),
                           nn.BatchNorm2d(groups * width), nn.ReLU(inplace=True)]
                previous = width
            if pool:
                layers.append(nn.MaxPool2d(2, 2))
        self.layers = nn.Sequential(*layers)
        self.groups, self.out_channels, self.pool, self.blocks = groups, widths[-1], pool, len(widths)

    def out_size(self, size: int) -> int:
        """Spatial size of the output for an input of `size` × `size`."""
        for _ in range(self.blocks if self.pool else 0):
            size //= 2
        return size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class GroupedLinear(nn.Module):
    """`groups` independent linear layers: (B, groups, in) → (B, groups, out)."""

    def __init__(self, groups: int, in_features: int, out_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(groups, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(groups, out_features))
        bound = in_features ** -0.5  # nn.Linear's default initialisation, per group
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bgi,gio->bgo", x, self.weight) + self.bias
