"""The stem of ALGRNet and MGRR-Net: hierarchical multi-scale region learning.

The thesis adapts "a hierarchical and multi-scale region learning network from Shao et al. (2018)
as our stem network" (thesis §3.2.1; MGRR-Net shares it, §4.3.1) and does not repeat its structure,
so it follows JAA-Net (Shao et al., "JÂA-Net", IJCV 2021; public code ``HMRegionLearning``): two
[conv3×3 → BN → ReLU → hierarchical multi-scale region layer → max-pool 2×2] stages, widths 4u and
8u (u = ``unit_dim``, 8 as in JAA-Net: 32 then 64 channels); a 176 crop gives F ∈ R^{64×44×44},
the "(64, 44, 44)" O_G of thesis §4.4.1. No pretraining ("our stem network only consists of a few
simple convolutional layers", thesis §4.4.3).

Locally connected layers are batched as one grouped convolution instead of a Python loop over
patches; this is the same computation with one kernel call.
"""

from __future__ import annotations

import torch
from torch import nn


class LocalConv2d(nn.Module):
    """JAA-Net ``LocalConv2dReLU``: the map is cut into grid × grid patches and every patch gets its
    own BN → ReLU → conv3×3 (pre-activation), batched as one grouped convolution."""

    def __init__(self, grid: int, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.grid, self.out_channels = grid, out_channels
        cells = grid * grid
        self.norm = nn.BatchNorm2d(cells * in_channels)
        self.conv = nn.Conv2d(cells * in_channels, cells * out_channels, 3, padding=1, groups=cells)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        g = self.grid
        if h % g or w % g:
            raise ValueError(f"feature map {h}x{w} is not divisible into a {g}x{g} grid")
        ph, pw = h // g, w // g
        patches = x.view(b, c, g, ph, g, pw).permute(0, 2, 4, 1, 3, 5).reshape(b, g * g * c, ph, pw)
        out = self.conv(torch.relu(self.norm(patches)))
        out = out.view(b, g, g, self.out_channels, ph, pw).permute(0, 3, 1, 4, 2, 5)
        return out.reshape(b, self.out_channels, h, w)


class HierarchicalMultiScaleRegionLayer(nn.Module):
    """JAA-Net hierarchical multi-scale region layer: three cascaded locally connected branches over
    grids (8, 4, 2) with C/2, C/4, C/4 channels, concatenated, plus the input (residual) → BN → ReLU."""

    def __init__(self, channels: int, grids: tuple[int, int, int]) -> None:
        super().__init__()
        if channels % 4:
            raise ValueError(f"region-layer width {channels} must be divisible by 4")
        half, quarter = channels // 2, channels // 4
        self.branch1 = LocalConv2d(grids[0], channels, half)
        self.branch2 = LocalConv2d(grids[1], half, quarter)
        self.branch3 = LocalConv2d(grids[2], quarter, quarter)
        self.norm = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1(x)
        b2 = self.branch2(b1)
        b3 = self.branch3(b2)
        return torch.relu(self.norm(x + torch.cat([b1, b2, b3], dim=1)))


class HMRegionStem(nn.Module):
    """Hierarchical multi-scale region learning stem (module docstring): (B, 3, H, W) →
    (B, 8u, H/4, W/4). Both stages' maps (H and H/2) must split evenly into every grid."""

    def __init__(self, unit_dim: int, grids: tuple[int, int, int], in_channels: int = 3) -> None:
        super().__init__()
        widths = (4 * unit_dim, 8 * unit_dim)
        layers: list[nn.Module] = []
        previous = in_channels
        for width in widths:
            layers += [nn.Conv2d(previous, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                       HierarchicalMultiScaleRegionLayer(width, grids), nn.MaxPool2d(2, 2)]
            previous = width
        self.layers = nn.Sequential(*layers)
        self.out_channels = widths[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)
