"""ConvLSTM cell (Shi et al. 2015), the recurrent unit of ALGRNet's skip-BiLSTM (fau-models.md §2.4).

Gates from one convolution over [x; h]: i, f, o = σ(·), g = tanh(·); c' = f⊙c + i⊙g,
h' = o⊙tanh(c'). Hidden size 64 and 3×3 kernels, stride 1, padding 1 in the paper (§3.3.2).
"""

from __future__ import annotations

import torch
from torch import nn


class ConvLSTMCell(nn.Module):
    """One ConvLSTM step: `forward(x, h, c)` → (h', c'), all (B, ·, H, W)."""

    def __init__(self, in_channels: int, hidden: int, kernel: int) -> None:
        super().__init__()
        if kernel % 2 != 1:
            raise ValueError(f"ConvLSTM kernel must be odd to keep the map size, got {kernel}")
        self.hidden = hidden
        self.gates = nn.Conv2d(in_channels + hidden, 4 * hidden, kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        i, f, o, g = self.gates(torch.cat([x, h], dim=1)).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c
