"""ALGRNet, the adaptive local-global relational network (thesis Ch. 3; fau-models.md §2).

stem (`HMRegionStem`) → face alignment (49 landmarks) → adaptive region learning (learned offsets
and scales, Gaussian attention around the JAA centres) → patch features v_t = F ⊙ A_t →
skip-BiLSTM over the AU patches (ConvLSTM, gated skip connections, eqs. 3.4–3.8) → gated
local–global feature fusion & refining (eqs. 3.9–3.10, three conv blocks) → per-AU classifiers and
an integrated head; the final probability is their average (§3.3.2). Loss: weighted BCE (local +
integrated) + 0.5·alignment; paralysis task: 4-grade weighted CE + 0.5·alignment (eq. 3.3).

Ablation switches (Tab 3.5): ``skip_bilstm.mode`` skip | plain ("w/ Bi") | none ("w/o S-B");
``fusion.mode`` gated | simple (concatenation, "following Shao et al.") | none ("w/o F&R");
``region.adaptive`` false ("w/o Ada": offsets 0, e = 0.14).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from fau.aus import resolve_aus
from fau.models import MODELS
from shared.config import Options
from fau.models.base import (FAUModel, au_losses, build_front, integrated_head, local_head,
                             mean_probability_logit)
from fau.models.convlstm import ConvLSTMCell
from fau.models.losses import alignment_loss, weighted_cross_entropy
from fau.models.region import au_centre_fn, pau_centre_fn
from fau.models.stem import ConvBlocks
from shared.errors import UserError

LSTM_MODES = ("skip", "plain", "none")
GATE_SUMS = ("sum", "mean")
FUSION_MODES = ("gated", "simple", "none")
TASKS = ("au", "paralysis")


class SkipBiLSTM(nn.Module):
    """Skip-BiLSTM over the AU patch sequence (eqs. 3.4–3.8), input/output (B, n, C, S, S).

    Forward step t: f_j = σ(GAP(W_j [h_j; v_t])) for every earlier step j (one 1×1-conv gate W_j per
    source index and direction, §5 A5), h_t = Cell(Σ_j f_j h_j, v_t) with the cell state carried
    from step t-1 (§5 A6); zeros at the first step. The backward pass mirrors it. Output
    s_t = v_t + (h→_t + h←_t)/2. Since a 1×1 conv commutes with GAP, the gate logit is computed on
    the pooled vectors (identical result, no full-size conv). ``plain`` is the ordinary ConvLSTM
    BiLSTM of the "w/ Bi" ablation (hidden input h_{t-1}).
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


def channel_l2(x: torch.Tensor, dim: int = 2, eps: float = 1e-8) -> torch.Tensor:
    """ℓ2-normalise over `dim` (``shared.layers.l2_normalize`` semantics: x / max(‖x‖, eps)), via
    a sum of squares, which is several times faster than ``Tensor.norm`` over a middle dimension."""
    return x * torch.rsqrt(x.pow(2).sum(dim=dim, keepdim=True).clamp_min(eps * eps))


class GatedFusionCell(nn.Module):
    """Gated fusion (ALGRNet eqs. 3.9–3.10; MGRR-Net's GFC, eqs. 4.7–4.8):
    β = σ(W'_X X + W'_Y Y), out = β ⊙ ‖W_X X‖₂ + (1 - β) ⊙ ‖W_Y Y‖₂, all W 1×1 convs (padding 0,
    §5 G11), ℓ2 over channels at every position.

    Inputs are (B, g·C, S, S) with g = 1 (a global map) or g = `out_groups` (one map per AU);
    every output group (AU) has its own W, W' (per-branch fusion, §2.5 / §5 M7).
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
    """"Simple" global fusion of the ablation (fau-models.md §2.5 [INF]): per AU the ℓ2-normalised
    1×1 maps of G and s_t concatenated, no gate → (B, A·2F, S, S)."""

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


def _regions(task: str, dataset: str, opts: Options, num_aus: int) -> tuple[int, Any]:
    """Region count and centre function: the dataset's AU rule, or the PAU file for paralysis."""
    if task == "paralysis":
        from fau.data.fpara import load_pau_definitions

        source = opts.str("pau_definitions")
        defs = load_pau_definitions(None if source == "default" else source)
        regions, centre_fn = len(defs.names), pau_centre_fn(defs)
    else:
        opts.str("pau_definitions")
        regions, centre_fn = len(resolve_aus(dataset)), au_centre_fn(dataset)
    if regions != num_aus:
        raise UserError(f"model.dataset {dataset!r} defines {regions} regions but the data has {num_aus} labels")
    return regions, centre_fn


@MODELS.register("algrnet")
class ALGRNet(FAUModel):
    """ALGRNet built from the ``model:`` config section (see ``fau/configs/algrnet_*.yaml``)."""

    name = "algrnet"

    def __init__(self, config: Mapping[str, Any], num_aus: int, prior: np.ndarray | None = None) -> None:
        opts = Options(config, "model")
        task = opts.choice("task", TASKS)
        dataset = opts.str("dataset")
        regions, centre_fn = _regions(task, dataset, opts, num_aus)
        front = build_front(opts, regions, centre_fn)
        super().__init__(regions, front.size * 4)
        self.task, self.dataset = task, dataset
        self.stem, self.alignment, self.region = front.stem, front.alignment, front.region
        u, c, size = front.unit_dim, front.channels, front.size

        lstm = opts.sub("skip_bilstm")
        self.lstm_mode = lstm.choice("mode", LSTM_MODES)
        hidden, kernel = lstm.int("hidden", minimum=1), lstm.int("kernel", minimum=1)
        gate_sum = lstm.choice("gate_sum", GATE_SUMS)
        self.skip_bilstm = (SkipBiLSTM(c, hidden, regions, kernel, self.lstm_mode, gate_sum)
                            if self.lstm_mode != "none" else None)

        fusion = opts.sub("fusion")
        self.fusion_mode = fusion.choice("mode", FUSION_MODES)
        fused = fusion.int("channels", minimum=1)
        # G: "a simple CNN with the same structure as the face alignment network", kept at the stem
        # resolution so it can be fused element-wise with s_t (§5 A7); it also feeds the integrated
        # AU head, so only paralysis without fusion has no use for it
        self.global_net = (ConvBlocks(c, (12 * u, 16 * u, 20 * u), pool=False)
                           if task == "au" or self.fusion_mode != "none" else None)
        g_channels = 20 * u
        if self.fusion_mode == "gated":
            self.fusion: nn.Module | None = GatedFusionCell(g_channels, c, fused, 1, regions, regions)
            refine_in = fused
        elif self.fusion_mode == "simple":
            self.fusion = ConcatFusion(g_channels, c, fused, regions)
            refine_in = 2 * fused
        else:
            self.fusion, refine_in = None, c
        # the refining part of F&R: three blocks of two 3×3 convs + max-pool, per AU branch
        self.refine = ConvBlocks(refine_in, (12 * u, 16 * u, 20 * u), groups=regions)
        side = self.refine.out_size(size)
        branch_dim = self.refine.out_channels * side * side
        self.context_side = side

        head = opts.sub("head")
        local_hidden, int_hidden = head.int("local_hidden", minimum=1), head.int("integrated_hidden", minimum=1)
        grades = head.int("grades", minimum=2)
        if task == "au":
            self.local_head = local_head(regions, branch_dim, local_hidden)
            self.integrated_head = integrated_head(self.alignment.feature_dim + g_channels * side * side + branch_dim,
                                                   int_hidden, regions)
        else:
            self.grade_head = nn.Linear(regions * branch_dim, grades)

        loss = opts.sub("loss")
        self.align_weight = loss.float("align_weight", minimum=0.0)
        self.dice_weight = loss.float("dice_weight", minimum=0.0)
        opts.finish()

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        self.check_images(images)
        feature = self.stem(images)                                      # (B, C, S, S)
        align_feature, landmarks = self.alignment(feature)
        region = self.region(align_feature, landmarks)
        patches = feature.unsqueeze(1) * region["maps"].unsqueeze(2)     # v_t = F ⊙ A_t: (B, n, C, S, S)
        local = self.skip_bilstm(patches) if self.skip_bilstm is not None else patches
        b, n, c, h, w = local.shape
        local = local.reshape(b, n * c, h, w)
        global_map = self.global_net(feature) if self.global_net is not None else None
        fused = self.fusion(global_map, local) if self.fusion is not None else local
        branches = self.refine(fused).view(b, n, -1)                     # r_t: (B, n, 20u·5·5)
        out = {"landmarks": landmarks, "region_maps": region["maps"], "region_centres": region["centres"],
               "region_scales": region["scales"]}
        if self.task == "paralysis":
            out["grade_logits"] = self.grade_head(branches.flatten(1))
            return out
        global_vector = F.adaptive_max_pool2d(global_map, self.context_side).flatten(1)
        out["au_logits_local"] = self.local_head(branches)
        out["au_logits_integrated"] = self.integrated_head(
            torch.cat([align_feature, global_vector, branches.mean(dim=1)], dim=1))
        out["au_logits"] = mean_probability_logit(out["au_logits_local"], out["au_logits_integrated"])
        return out

    def compute_losses(self, outputs: Mapping[str, torch.Tensor],
                       batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """AU task: L_au + L_int + λ·L_align (eq. 3.2, §5 A8); paralysis: L_par + λ·L_align (eq. 3.3)."""
        if self.task == "au":
            return au_losses(outputs, batch, self.align_weight, self.dice_weight)
        grades = batch["grades"]
        if grades.ndim == 2 and grades.shape[1] != 1:
            raise ValueError(f"paralysis batches carry one grade per image, got grades {tuple(grades.shape)}")
        losses = {"grade": weighted_cross_entropy(outputs["grade_logits"], grades.reshape(-1), batch["grade_weights"]),
                  "align": alignment_loss(outputs["landmarks"], batch["landmarks"])}
        losses["total"] = losses["grade"] + self.align_weight * losses["align"]
        return losses
