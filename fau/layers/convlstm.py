"""ALGRNet's skip-BiLSTM (thesis §3.2.3, eqs. 3.4–3.8) and its recurrent unit, the ConvLSTM cell.

`ConvLSTMCell` is "the basic ConvLstm cell (X. Shi et al., 2015)": gates from one convolution over
[x; h]: i, f, o = σ(·), g = tanh(·); c' = f⊙c + i⊙g, h' = o⊙tanh(c'). Hidden size 64 and 3×3
kernels, stride 1, padding 1 (thesis §3.3.2: "the same as refining architecture").
"""

from __future__ import annotations

import torch
from torch import nn

from shared.errors import UserError


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


class SkipBiLSTM(nn.Module):
    """Skip-BiLSTM over the AU patch sequence (thesis §3.2.3, eqs. 3.4–3.8), input/output (B, n, C, S, S).

    Forward step t: f_j = σ(GAP(W_j [h_j; v_t])) for every earlier step j (eq. 3.6, read as a 1×1 conv
    of the concatenation to one channel, one W_j per source index and direction: docs/fau.md,
    decision 'skip gate form'), h_t = Cell(Σ_j f_j h_j, v_t) (eqs. 3.4–3.5) with the cell state
    carried from step t-1 (decision 'ConvLSTM cell state'); zeros at the first step. The backward
    pass mirrors it (eq. 3.7). Output s_t = v_t + (h→_t + h←_t)/2 (eq. 3.8). Since a 1×1 conv
    commutes with GAP, the gate logit is computed on the pooled vectors (identical result, no
    full-size conv). ``plain`` is the ordinary ConvLSTM BiLSTM of the "w/ Bi" ablation (thesis
    Tab 3.5; hidden input h_{t-1}); ``gate_sum: mean`` divides the sum by its number of terms.
    """

    def __init__(self, channels: int, hidden: int, steps: int, kernel: int, mode: str, gate_sum: str) -> None:
        super().__init__()
        if hidden != channels:
            raise UserError(f"skip_bilstm.hidden ({hidden}) must equal the stem width ({channels}): "
                            "eq. 3.8 adds hidden states to patch features")
        self.cells = nn.ModuleList(ConvLSTMCell(channels, hidden, kernel) for _ in range(2))
        self.hidden, self.mode, self.gate_sum = hidden, mode, gate_sum
        if mode == "skip":
            fan_in = hidden + channels
            self.gate_weight = nn.Parameter(torch.empty(2, steps, fan_in).uniform_(-fan_in ** -0.5, fan_in ** -0.5))
            self.gate_bias = nn.Parameter(torch.empty(2, steps).uniform_(-fan_in ** -0.5, fan_in ** -0.5))

    def _gated_input(self, direction: int, sources: list[int], states: dict[int, torch.Tensor],
                     v: torch.Tensor) -> torch.Tensor:
        stacked = torch.stack([states[j] for j in sources], dim=1)                  # (B, k, h, S, S)
        weight = self.gate_weight[direction, sources]                                # (k, h + C)
        logits = (torch.einsum("bkh,kh->bk", stacked.mean(dim=(-2, -1)), weight[:, :self.hidden])
                  + v.mean(dim=(-2, -1)) @ weight[:, self.hidden:].T + self.gate_bias[direction, sources])
        gated = (stacked * torch.sigmoid(logits)[..., None, None, None]).sum(dim=1)
        return gated / len(sources) if self.gate_sum == "mean" else gated

    def _direction(self, v: torch.Tensor, direction: int, order: list[int]) -> torch.Tensor:
        cell = self.cells[direction]
        zeros = v.new_zeros(v.shape[0], self.hidden, *v.shape[-2:])
        states: dict[int, torch.Tensor] = {}
        c = zeros
        for step, t in enumerate(order):
            if step == 0:
                h_in = zeros
            elif self.mode == "plain":
                h_in = states[order[step - 1]]
            else:
                h_in = self._gated_input(direction, order[:step], states, v[:, t])
            states[t], c = cell(v[:, t], h_in, c)
        return torch.stack([states[t] for t in range(v.shape[1])], dim=1)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        steps = list(range(v.shape[1]))
        ahead = self._direction(v, 0, steps)
        behind = self._direction(v, 1, steps[::-1])
        return v + 0.5 * (ahead + behind)
