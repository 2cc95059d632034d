"""AU region attention: JAA-Net centres from landmarks, and ALGRNet's adaptive region learning.

ALGRNet (thesis §3.2.2): "we first use the same rules in Shao et al. (2021) to get the locations of
target muscle area centers based on the detected landmarks and then update the locations by adding
the learned offsets"; "two networks containing two fully-connected layers" give the offsets
O = {o_1..o_2n} and the scaling factors E = {e_1..e_n}, e_i "the width ratio between the region of
AU_i and whole feature map", and "an approximate Gaussian attention distribution" is drawn per AU
region. MGRR-Net (thesis §4.3.1) uses the landmark rule alone.

* centres: the JAA-Net rule (`fau.aus.au_centres`, two centres per AU) on the predicted landmarks,
  or the paralysis-AU definitions of `fau.data.fpara` for the FPara task;
* adaptive: two FC → ReLU → FC networks on the alignment feature predict one (dx, dy) per AU and
  e_i, with o = tanh(·)·o_max·crop and e = 0.14·exp(0.5·tanh(·)) (or a sigmoid into [e_min, e_max])
  (ours: docs/fau.md, decisions 'offset layout' and 'differentiable region maps');
  non-adaptive ("w/o Ada", thesis Tab 3.5; MGRR-Net): offsets 0 and JAA-Net's fixed e = 0.14;
* maps: adaptive regions draw a differentiable Gaussian per centre pair on the stem grid,
  σ_i = e_i · size / 2 (`fau.aus.gaussian_attention`); fixed regions (ALGRNet "w/o Ada", MGRR-Net)
  draw JAA-Net's L1 fall-off map (`fau.aus.attention_maps`; "the same experiment setting as Shao et
  al. (2021)", thesis §3.3.5) or, as an option, the same Gaussian (docs/fau.md, decision 'fixed regions'), optionally refined per AU by JAA-Net's ``LocalAttentionRefine`` (4 conv3×3 +
  sigmoid; docs/fau.md, decision 'attention refinement').
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from fau.aus import attention_maps, au_centres, gaussian_attention
from fau.data.fpara import PAUDefinitions

CentreFn = Callable[[torch.Tensor], torch.Tensor]

OFFSET_MODES = ("per_au_mirrored", "per_au_shared", "per_centre")
SCALE_PARAMS = ("exp_tanh", "sigmoid")
MAP_KINDS = ("gaussian", "jaa")


def au_centre_fn(dataset: str) -> CentreFn:
    """(B, 49, 2) landmarks → (B, A, 2, 2) JAA-Net centres for the dataset's AU set (differentiable)."""
    return lambda landmarks: au_centres(landmarks, dataset)


def pau_centre_fn(defs: PAUDefinitions) -> CentreFn:
    """(B, 49, 2) landmarks → (B, P, 2, 2) paralysis-AU centres, the torch form of
    `fau.data.fpara.pau_centres`: mean of each centre's landmarks + (dx, dy) · ruler."""
    offsets = torch.as_tensor(defs.offsets)

    def centres(landmarks: torch.Tensor) -> torch.Tensor:
        ruler = (landmarks[:, defs.ruler[0], 0] - landmarks[:, defs.ruler[1], 0]).abs()
        base = torch.stack([torch.stack([landmarks[:, list(idx)].mean(dim=1) for idx in pair], dim=1)
                            for pair in defs.landmarks], dim=1)
        return base + offsets.to(landmarks)[None] * ruler[:, None, None, None]

    return centres


class AttentionRefine(nn.Module):
    """JAA-Net ``LocalAttentionRefine``: per region, conv3×3 (1 → w → w → w → 1) with BN/ReLU and a
    final sigmoid, batched as grouped convs; padding 1 keeps the map size (ours: JAA-Net draws on a
    52×52 grid and uses valid convs to reach 44; we draw directly on the stem grid, see docs/fau.md,
    decision 'attention refinement')."""

    def __init__(self, regions: int, width: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        previous = 1
        for _ in range(3):
            layers += [nn.Conv2d(regions * previous, regions * width, 3, padding=1, groups=regions),
                       nn.BatchNorm2d(regions * width), nn.ReLU(inplace=True)]
            previous = width
        layers += [nn.Conv2d(regions * width, regions, 3, padding=1, groups=regions), nn.Sigmoid()]
        self.layers = nn.Sequential(*layers)

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        return self.layers(maps)


def _two_layer(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    """FC → ReLU → FC; the last layer starts near zero so the regions start at the JAA rule."""
    net = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out_dim))
    nn.init.normal_(net[2].weight, std=1e-3)
    nn.init.zeros_(net[2].bias)
    return net


class RegionAttention(nn.Module):
    """Region maps from landmarks (+ learned offsets and scales when `adaptive`).

    `forward(align_feature, landmarks)` returns ``maps`` (B, A, S, S), ``centres`` (B, A, 2, 2) in
    crop pixels and ``scales`` (B, A) (the width ratios e_i).
    """

    def __init__(self, centre_fn: CentreFn, regions: int, feature_dim: int, map_size: int, crop: int, *,
                 adaptive: bool, offset_mode: str, offset_max: float, init_scale: float,
                 scale_param: str, scale_min: float, scale_max: float, hidden: int, map_kind: str,
                 refine: bool, refine_width: int, detach_landmarks: bool) -> None:
        super().__init__()
        if adaptive and map_kind != "gaussian":
            raise ValueError("adaptive regions need the differentiable gaussian map")
        if scale_param == "sigmoid" and not scale_min < init_scale < scale_max:
            raise ValueError(f"init_scale {init_scale} must lie inside ({scale_min}, {scale_max})")
        self.centre_fn, self.regions, self.map_size, self.crop = centre_fn, regions, map_size, crop
        self.adaptive, self.offset_mode, self.offset_max = adaptive, offset_mode, offset_max
        self.init_scale, self.scale_param = init_scale, scale_param
        self.scale_min, self.scale_max = scale_min, scale_max
        self.map_kind, self.detach_landmarks = map_kind, detach_landmarks
        if adaptive:
            per_region = 4 if offset_mode == "per_centre" else 2
            self.offset_net = _two_layer(feature_dim, hidden, per_region * regions)
            self.scale_net = _two_layer(feature_dim, hidden, regions)
        self.refine = AttentionRefine(regions, refine_width) if refine else None

    def _offsets(self, feature: torch.Tensor) -> torch.Tensor:
        raw = torch.tanh(self.offset_net(feature)) * (self.offset_max * self.crop)
        if self.offset_mode == "per_centre":
            return raw.view(-1, self.regions, 2, 2)
        dx, dy = raw.view(-1, self.regions, 2).unbind(-1)
        sign = 1.0 if self.offset_mode == "per_au_shared" else -1.0
        first = torch.stack([dx, dy], dim=-1)
        second = torch.stack([sign * dx, dy], dim=-1)
        return torch.stack([first, second], dim=2)

    def _scales(self, feature: torch.Tensor) -> torch.Tensor:
        raw = self.scale_net(feature)
        if self.scale_param == "exp_tanh":
            return self.init_scale * torch.exp(0.5 * torch.tanh(raw))
        span = self.scale_max - self.scale_min
        start = math.log((self.init_scale - self.scale_min) / (self.scale_max - self.init_scale))
        return self.scale_min + span * torch.sigmoid(raw + start)

    def forward(self, align_feature: torch.Tensor, landmarks: torch.Tensor) -> dict[str, torch.Tensor]:
        points = landmarks.detach() if self.detach_landmarks else landmarks
        centres = self.centre_fn(points)
        if self.adaptive:
            centres = centres + self._offsets(align_feature)
            scales = self._scales(align_feature)
        else:
            scales = torch.full(centres.shape[:2], self.init_scale, dtype=centres.dtype, device=centres.device)
        if self.map_kind == "gaussian":
            maps = gaussian_attention(centres, 0.5 * scales * self.map_size, size=self.map_size, crop=self.crop)
        else:
            maps = attention_maps(centres, map_size=self.map_size, crop=self.crop, spatial_ratio=self.init_scale)
        if self.refine is not None:
            maps = self.refine(maps)
        return {"maps": maps, "centres": centres, "scales": scales}
