"""VL-FAU's multi-level AU representation learning (MARL, thesis §5.3.1): the Swin stem, the
multi-scale combination (MSC, eq. 5.1) and one dual-level AU individual refinement (DAIR,
eqs. 5.2–5.3) per AU branch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from fau.pretrained import resolve_weights
from shared.errors import UserError

#: ImageNet normalisation expected by timm's Swin weights (the loader gives mean = std = 0.5)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ConvPatchStem(nn.Sequential):
    """A drop-in for a Swin's strided patch projection (``model.backbone.stem: conv``, our option):
    3×3 stride-2 conv + BN + ReLU layers down to the patch stride, then a 1×1 conv to the embedding width,
    so the token grid and width are unchanged. Convolutional early layers give a from-scratch transformer
    the locality a pre-trained one learns from ImageNet (Xiao et al., "Early Convolutions Help
    Transformers See Better", NeurIPS 2021); docs/fau.md, decision 'tiny configs'.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        if stride < 2 or stride & (stride - 1):
            raise UserError(f"config model.backbone.stem: 'conv' needs a power-of-two patch stride, not {stride}")
        layers: list[nn.Module] = []
        channels = in_channels
        for _ in range(stride.bit_length() - 1):
            layers += [nn.Conv2d(channels, out_channels, 3, stride=2, padding=1, bias=False),
                       nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]
            channels = out_channels
        layers.append(nn.Conv2d(channels, out_channels, 1))
        super().__init__(*layers)


class SwinStages(nn.Module):
    """A timm Swin Transformer returning its four stage maps (B, C_s, H_s, W_s), s = 1..4.

    `name` is any timm Swin (``swin_base_patch4_window7_224`` in the paper config: "Swin-Transformer-
    base", thesis §5.4.2; ImageNet-1k or -22k is unstated, docs/fau.md, decision 'Swin variant'); `options`
    are extra constructor kwargs (the tiny config shrinks embed_dim / depths / heads / window).
    `weights` is ``none`` (random initialisation, on purpose), a local ``.safetensors`` file or a hub
    name (`fau.pretrained`); the file is in timm's key layout and its classifier head is dropped.
    `status` says which. Input is converted from the loader's [-1, 1] range to ImageNet statistics;
    the last stage goes through the Swin's final LayerNorm, as in the pretrained classifier.
    """

    def __init__(self, name: str, image_size: int, weights: str, drop_path: float,
                 options: Mapping[str, Any], stem: str = "patch") -> None:
        super().__init__()
        import timm

        if not name.startswith("swin"):
            raise UserError(f"config model.backbone.name: {name!r} is not a timm Swin Transformer")
        path = resolve_weights(weights, "model.backbone.weights")       # fails before the stem is built
        try:
            self.swin = timm.create_model(name, pretrained=False, num_classes=0, img_size=image_size,
                                          drop_path_rate=drop_path, **dict(options))
        except (RuntimeError, TypeError, ValueError) as err:
            raise UserError(f"config model.backbone: cannot build {name!r} ({err})") from None
        if stem == "conv":
            if path is not None:
                raise UserError("config model.backbone.stem: 'conv' replaces the patch embedding, so it needs "
                                "model.backbone.weights: none (pre-trained weights expect the patch stem)")
            proj = self.swin.patch_embed.proj
            self.swin.patch_embed.proj = ConvPatchStem(proj.in_channels, proj.out_channels, proj.stride[0])
        elif stem != "patch":
            raise UserError(f"config model.backbone.stem: {stem!r} is not one of patch, conv")
        self.channels: tuple[int, ...] = tuple(int(info["num_chs"]) for info in self.swin.feature_info)
        self.reductions: tuple[int, ...] = tuple(int(info["reduction"]) for info in self.swin.feature_info)
        self.status = self._load(path, weights) if path is not None else "random init (model.backbone.weights=none)"
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def _load(self, path: Path, source: str) -> str:
        from safetensors.torch import load_file
        from timm.models.swin_transformer import checkpoint_filter_fn

        state = checkpoint_filter_fn(load_file(str(path)), self.swin)
        state = {k: v for k, v in state.items() if not k.startswith("head.")}
        missing, unexpected = self.swin.load_state_dict(state, strict=False)
        missing = [k for k in missing if "relative_position_index" not in k and "attn_mask" not in k]
        if missing or unexpected:
            raise UserError(f"config model.backbone.weights: {source} does not fit the backbone "
                            f"({len(missing)} missing, {len(unexpected)} unexpected tensors)")
        return f"pretrained weights from {source}" + (f" ({path})" if str(path) != source else "")

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        x = (images * 0.5 + 0.5 - self.mean) / self.std
        return self.swin.forward_intermediates(x, indices=len(self.channels), intermediates_only=True, norm=True,
                                               output_fmt="NCHW")


class MultiScaleCombination(nn.Module):
    """MSC, eq. 5.1: V = W^m [Conv(V^s_1) : ... : Conv(V^s_4)] on a common `grid` × `grid` map.

    One 3×3 conv per stage to `channels` (the thesis gives neither the channels nor the common grid:
    docs/fau.md, decision 'MSC grid'); stages larger than the grid are average-pooled
    to it before their conv (cheaper than convolving at full size), smaller ones are convolved and
    then bilinearly upsampled. W^m is a linear map (1×1 conv) from 4·`channels` to `dim` = d.
    """

    def __init__(self, stage_channels: Sequence[int], channels: int, grid: int, dim: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(c, channels, 3, padding=1) for c in stage_channels)
        self.mapping = nn.Conv2d(len(stage_channels) * channels, dim, 1)
        self.grid = grid

    def forward(self, stages: Sequence[torch.Tensor]) -> torch.Tensor:
        maps = []
        for conv, x in zip(self.convs, stages):
            if x.shape[-1] > self.grid:
                maps.append(conv(F.adaptive_avg_pool2d(x, self.grid)))
            else:
                y = conv(x)
                maps.append(y if y.shape[-1] == self.grid else
                            F.interpolate(y, size=(self.grid, self.grid), mode="bilinear", align_corners=False))
        return self.mapping(torch.cat(maps, dim=1))


class LastStage(nn.Module):
    """The "w/o MARL" variant (Tab 5.4 ①): V = W^m V^s_4, the last Swin stage mapped to d, no MSC."""

    def __init__(self, stage_channels: Sequence[int], dim: int) -> None:
        super().__init__()
        self.mapping = nn.Conv2d(stage_channels[-1], dim, 1)

    def forward(self, stages: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.mapping(stages[-1])


class DAIR(nn.Module):
    """Dual-level AU individual refinement, one CBAM-style block per AU branch (thesis §5.3.1,
    eqs. 5.2–5.3; details: docs/fau.md, decision 'DAIR details').

    Channel level: V̄_i = σ(MLP_i(maxpool V) + MLP_i(avgpool V)) ⊙ V, one MLP (d → d/r → d, ReLU)
    per AU shared by the two paths. Spatial level: V̂_i = σ(Conv_i([max_c V̄_i : avg_c V̄_i])) ⊙ V̄_i
    with a k×k conv per AU; the sigmoid eq. 5.3 omits is added (an attention map needs it).
    Input V (B, d, H, W) → V̂ (B, A, d, H, W) and the spatial maps (B, A, H, W).
    """

    def __init__(self, branches: int, dim: int, reduction: int, kernel: int) -> None:
        super().__init__()
        hidden = max(1, dim // reduction)
        self.w1 = nn.Parameter(torch.empty(branches, dim, hidden))
        self.b1 = nn.Parameter(torch.empty(branches, hidden))
        self.w2 = nn.Parameter(torch.empty(branches, hidden, dim))
        self.b2 = nn.Parameter(torch.empty(branches, dim))
        for weight, bias, fan_in in ((self.w1, self.b1, dim), (self.w2, self.b2, hidden)):
            nn.init.uniform_(weight, -fan_in ** -0.5, fan_in ** -0.5)
            nn.init.uniform_(bias, -fan_in ** -0.5, fan_in ** -0.5)
        self.spatial = nn.Conv2d(2 * branches, branches, kernel, padding=kernel // 2, groups=branches)
        self.branches = branches

    def _mlp(self, pooled: torch.Tensor) -> torch.Tensor:
        hidden = F.relu(torch.einsum("bd,adh->bah", pooled, self.w1) + self.b1)
        return torch.einsum("bah,ahd->bad", hidden, self.w2) + self.b2

    def forward(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gate = torch.sigmoid(self._mlp(v.amax(dim=(-2, -1))) + self._mlp(v.mean(dim=(-2, -1))))
        refined = gate[..., None, None] * v.unsqueeze(1)                          # V̄: (B, A, d, H, W)
        pooled = torch.stack([refined.amax(dim=2), refined.mean(dim=2)], dim=2)   # (B, A, 2, H, W)
        maps = torch.sigmoid(self.spatial(pooled.flatten(1, 2)))                  # (B, A, H, W)
        return maps.unsqueeze(2) * refined, maps
