"""ALGRNet's skip-BiLSTM (thesis §3.2.3, eqs. 3.4–3.8) and its recurrent unit, the ConvLSTM cell.

`ConvLSTMCell` is "the basic ConvLstm cell (X. Shi et al., 2015)": gates from one convolution over
[x; h]: i, f, o = σ(·), g = tanh(·); c' = f⊙c + i⊙g, h' = o⊙tanh(c'). Hidden size 64 and 3×3
kernels, stride 1, padding 1 (thesis §3.3.2: "the same as refining architecture").
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

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
        return lstm_update(self.gates(torch.cat([x, h], dim=1)), c, self.hidden, dim=1)


def lstm_update(gates: torch.Tensor, c: torch.Tensor, hidden: int, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The LSTM update from the gate pre-activations [i; f; o; g] stacked along `dim`:
    c' = σ(f)⊙c + σ(i)⊙tanh(g), h' = σ(o)⊙tanh(c') (one sigmoid over i, f, o)."""
    i, f, o = torch.sigmoid(gates.narrow(dim, 0, 3 * hidden)).chunk(3, dim=dim)
    c = torch.addcmul(f * c, i, torch.tanh(gates.narrow(dim, 3 * hidden, hidden)))
    return o * torch.tanh(c), c


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

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        """Both directions advance together, one step each per iteration: the backward pass reads the
        sequence reversed, so in "step order" both take the same number of earlier steps as sources.
        Their two cells run as one grouped convolution and their gates as one batched product (half the
        operations of running the directions one after the other; the same result)."""
        batch, steps, _, height, width = v.shape
        hidden = self.hidden
        seq = torch.stack([v, v.flip(1)], dim=1)                                  # (B, 2, n, C, S, S), step order
        conv = self.cells[0].gates
        weight = torch.cat([cell.gates.weight for cell in self.cells])             # (2·4h, C + h, k, k)
        bias = torch.cat([cell.gates.bias for cell in self.cells])
        skip = self.mode == "skip"
        if skip:
            # W_j and b_j of eq. 3.6 in step order (the backward direction's step s is source n-1-s); the
            # v_t part of every gate logit, GAP(v_t)·W_j^v + b_j, for all (t, j) pairs at once: (B, 2, t, j)
            gate_w = torch.stack([self.gate_weight[0], self.gate_weight[1].flip(0)])
            gate_b = torch.stack([self.gate_bias[0], self.gate_bias[1].flip(0)])
            v_part = (torch.einsum("bdtc,djc->bdtj", seq.mean(dim=(-2, -1)), gate_w[..., hidden:])
                      + gate_b[None, :, None, :])
        c = v.new_zeros(batch, 2, hidden, height, width)
        states: list[torch.Tensor] = []
        h_parts: list[torch.Tensor] = []                                           # GAP(h_j)·W_j^h, (B, 2) each
        for step in range(steps):
            if step == 0:
                h_in = c                                                           # zeros
            elif not skip:
                h_in = states[-1]
            else:
                gates = torch.sigmoid(torch.stack(h_parts, dim=-1) + v_part[:, :, step, :step])   # (B, 2, k)
                if self.gate_sum == "mean":
                    gates = gates / step
                h_in = torch.einsum("bdk,bdkhxy->bdhxy", gates, torch.stack(states, dim=2))
            x = torch.cat([seq[:, :, step], h_in], dim=2).flatten(1, 2)             # (B, 2(C + h), S, S)
            g = F.conv2d(x, weight, bias, padding=conv.padding, groups=2).unflatten(1, (2, 4 * hidden))
            state, c = lstm_update(g, c, hidden, dim=2)
            states.append(state)
            if skip:
                h_parts.append(torch.einsum("bdh,dh->bd", states[-1].mean(dim=(-2, -1)), gate_w[:, step, :hidden]))
        out = torch.stack(states, dim=2)                                           # (B, 2, n, h, S, S)
        return v + 0.5 * (out[:, 0] + out[:, 1].flip(1))
