"""The JAA-Net-style stem and the conv building blocks both ALGRNet and MGRR-Net share.

* `HMRegionStem`: hierarchical multi-scale region learning (fau-models.md §2.1, JAA-Net
  ``HMRegionLearning``): two [conv3×3 → BN → ReLU → hierarchical multi-scale region layer →
  max-pool 2×2] stages, widths 4u and 8u (u = ``unit_dim``, 8 in the paper: 32 then 64 channels);
  a 176 crop gives F ∈ R^{64×44×44}. No pretraining.
* `ConvBlocks`: JAA-Net ``HLFeatExtractor`` blocks, [conv3×3 → BN → ReLU] × 2 (+ max-pool 2×2)
  per block (widths 12u, 16u, 20u: 96/128/160), optionally as `groups` independent branches
  (one per AU) run as grouped convolutions.
* `GroupedLinear`: one independent linear layer per branch, batched.

Locally connected layers and per-AU branches are batched as grouped convolutions instead of Python
loops over patches or AUs; this is the same computation with one kernel call.
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
    """Hierarchical multi-scale region learning stem (fau-models.md §2.1): (B, 3, H, W) →
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


class ConvBlocks(nn.Module):
    """JAA-Net ``HLFeatExtractor`` (fau-models.md §2.2): per block [conv3×3/s1/p1 → BN → ReLU] × 2,
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
