"""Classifier heads of ALGRNet and MGRR-Net and the probability average of their two predictions.

Both models train a per-AU ("local") classifier on each branch and an integrated classifier over all
AUs, and "averaged the predicted probability of the local information and the integrated
information as the final predicted activation probability for each AU" (thesis §3.3.2; MGRR-Net
§4.3.3 names the integrated loss L_int). Widths follow JAA-Net's ``LocalAUNetv2`` and ``AUNet``
(Shao et al., IJCV 2021; docs/fau.md, decision 'integrated head').
"""

from __future__ import annotations

import torch
from torch import nn

from fau.layers.conv import GroupedLinear


def mean_probability_logit(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """logit((σ(a) + σ(b)) / 2), computed in log space: the logit of the average of the local and
    the integrated probabilities (module docstring)."""
    pos = torch.logaddexp(nn.functional.logsigmoid(a), nn.functional.logsigmoid(b))
    neg = torch.logaddexp(nn.functional.logsigmoid(-a), nn.functional.logsigmoid(-b))
    return pos - neg


def local_head(regions: int, in_dim: int, hidden: int) -> nn.Module:
    """Per-AU classifier (JAA-Net ``LocalAUNetv2``: FC in → hidden → 1 logit per AU, one per branch)."""
    return nn.Sequential(GroupedLinear(regions, in_dim, hidden), nn.ReLU(inplace=True),
                         GroupedLinear(regions, hidden, 1), nn.Flatten(1))


def integrated_head(in_dim: int, hidden: int, outputs: int) -> nn.Module:
    """Integrated classifier over all AUs (JAA-Net ``AUNet``: FC in → hidden → n logits)."""
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, outputs))
