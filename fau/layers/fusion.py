"""Gated local–global fusion (ALGRNet's F&R gate, MGRR-Net's gated fusion cell) and the concatenation
fusion of ALGRNet's "simple fusion" ablation.
"""

from __future__ import annotations

import torch
from torch import nn


def channel_l2(x: torch.Tensor, dim: int = 2, eps: float = 1e-8) -> torch.Tensor:
    """ℓ2-normalise over `dim` (``shared.layers.l2_normalize`` semantics: x / max(‖x‖, eps)), via
    a sum of squares, which is several times faster than ``Tensor.norm`` over a middle dimension."""
    return x * torch.rsqrt(x.pow(2).sum(dim=dim, keepdim=True).clamp_min(eps * eps))


class GatedFusionCell(nn.Module):
    """Gated fusion (ALGRNet thesis eqs. 3.9–3.10; MGRR-Net's GFC, eqs. 4.7–4.8):
    β = σ(W'_X X + W'_Y Y), out = β ⊙ ‖W_X X‖₂ + (1 - β) ⊙ ‖W_Y Y‖₂, all W 1×1 convs with padding 0
    (docs/fau.md, decision '1×1 conv padding'), ℓ2 over channels at every position.

    Inputs are (B, g·C, S, S) with g = 1 (a global map) or g = `out_groups` (one map per AU);
    every output group (AU) has its own W, W' ("we add these two architectures on each local AU
    branch", thesis §3.2.4; decision 'parameter sharing' for MGRR-Net).
    """

    def __init__(self, x_channels: int, y_channels: int, out_channels: int, x_groups: int, y_groups: int,
                 out_groups: int) -> None:
        super().__init__()
        for groups in (x_groups, y_groups):
            if groups not in (1, out_groups):
                raise ValueError(f"input groups {groups} must be 1 or {out_groups}")
        width = out_groups * 2 * out_channels
        self.x_map = nn.Conv2d(x_groups * x_channels, width, 1, groups=x_groups)
        self.y_map = nn.Conv2d(y_groups * y_channels, width, 1, groups=y_groups)
        self.groups, self.out_channels = out_groups, out_channels

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        xm = self.x_map(x).view(b, self.groups, 2, self.out_channels, h, w)
        ym = self.y_map(y).view(b, self.groups, 2, self.out_channels, h, w)
        beta = torch.sigmoid(xm[:, :, 1] + ym[:, :, 1])
        fused = beta * channel_l2(xm[:, :, 0]) + (1 - beta) * channel_l2(ym[:, :, 0])
        return fused.reshape(b, self.groups * self.out_channels, h, w)


class ConcatFusion(nn.Module):
    """"Simple" global fusion of ALGRNet's ablation ("following Shao et al.", thesis §3.3.5): per AU
    the ℓ2-normalised 1×1 maps of G and s_t concatenated, no gate → (B, A·2F, S, S) (ours: the
    thesis does not describe it further; docs/fau.md, decision 'simple fusion')."""

    def __init__(self, global_channels: int, local_channels: int, out_channels: int, groups: int) -> None:
        super().__init__()
        self.global_map = nn.Conv2d(global_channels, groups * out_channels, 1)
        self.local_map = nn.Conv2d(groups * local_channels, groups * out_channels, 1, groups=groups)
        self.groups, self.out_channels = groups, out_channels

    def forward(self, g: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        b, _, h, w = g.shape
        gm = channel_l2(self.global_map(g).view(b, self.groups, self.out_channels, h, w))
        sm = channel_l2(self.local_map(s).view(b, self.groups, self.out_channels, h, w))
        return torch.cat([gm, sm], dim=2).reshape(b, self.groups * 2 * self.out_channels, h, w)
