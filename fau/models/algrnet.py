"""ALGRNet, the adaptive local-global relational network (thesis Ch. 3).

stem (`fau.layers.stem`) → face alignment (49 landmarks) → adaptive region learning (learned offsets
and scales, Gaussian attention around the JAA-Net centres, thesis §3.2.2) → patch features
v_t = F ⊙ A_t → skip-BiLSTM over the AU patches (ConvLSTM, gated skip connections, eqs. 3.4–3.8) →
gated local–global feature fusion & refining (eqs. 3.9–3.10, three conv blocks, §3.2.4) → per-AU
classifiers and an integrated head; the final probability is their average (§3.3.2). Loss: weighted
BCE on the final probability + 0.5·alignment (§3.2.1; docs/fau.md, decision 'integrated head');
paralysis task: 4-grade weighted CE + 0.5·alignment (eq. 3.3).

Ablation switches (thesis Tab 3.5): ``skip_bilstm.mode`` skip | plain ("w/ Bi") | none ("w/o S-B");
``fusion.mode`` gated | simple (concatenation, "following Shao et al.") | none ("w/o F&R");
``region.adaptive`` false ("w/o Ada": JAA-Net's maps, e = 0.14, "the same experiment setting as Shao
et al. (2021)", §3.3.5).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from fau.aus import resolve_aus
from fau.layers.conv import ConvBlocks
from fau.layers.convlstm import SkipBiLSTM
from fau.layers.front import AlignmentConfig, RegionConfig, StemConfig, build_front, check_input_size
from fau.layers.fusion import ConcatFusion, GatedFusionCell
from fau.layers.heads import integrated_head, local_head, mean_probability_logit
from fau.layers.region import au_centre_fn, pau_centre_fn
from fau.losses import AULossConfig, alignment_loss, au_losses, weighted_cross_entropy
from fau.models.base import FAUModel, check_label_count
from fau.models.registry import MODELS
from shared.config import bounded


@dataclass(frozen=True)
class SkipBiLSTMConfig:
    """``model.skip_bilstm`` (thesis §3.2.3; hidden 64 and 3×3 kernels, §3.3.2)."""

    mode: Literal["skip", "plain", "none"] = "skip"
    hidden: int = bounded(64, minimum=1, doc="ConvLSTM hidden channels (must equal the stem width)")
    kernel: int = bounded(3, minimum=1)
    gate_sum: Literal["sum", "mean"] = "sum"


@dataclass(frozen=True)
class FusionConfig:
    """``model.fusion``: the F&R module's fusion (thesis §3.2.4)."""

    mode: Literal["gated", "simple", "none"] = "gated"
    channels: int = bounded(64, minimum=1, doc="width of the 1×1 maps of G and s_t")


@dataclass(frozen=True)
class HeadConfig:
    """``model.head``: classifier widths (JAA-Net's) and the paralysis grade count (thesis §3.3.1)."""

    local_hidden: int = bounded(64, minimum=1)
    integrated_hidden: int = bounded(512, minimum=1)
    grades: int = bounded(4, minimum=2)


@dataclass(frozen=True)
class ALGRNetConfig:
    """The ``model:`` section of an ALGRNet config; the defaults are ``fau/configs/algrnet_bp4d.yaml``."""

    task: Literal["au", "paralysis"] = "au"
    dataset: str = "bp4d"
    pau_definitions: str = "default"
    input_size: int = bounded(176, minimum=16, doc="crop side (must equal data.crop)")
    stem: StemConfig = field(default_factory=StemConfig)
    alignment: AlignmentConfig = field(default_factory=AlignmentConfig)
    region: RegionConfig = field(default_factory=RegionConfig)
    skip_bilstm: SkipBiLSTMConfig = field(default_factory=SkipBiLSTMConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    loss: AULossConfig = field(default_factory=AULossConfig)

    def __post_init__(self) -> None:
        check_input_size(self.input_size, self.stem.grids)
        width = 8 * self.stem.unit_dim
        if self.skip_bilstm.mode != "none" and self.skip_bilstm.hidden != width:
            raise ValueError(f"skip_bilstm.hidden {self.skip_bilstm.hidden} must equal the stem width "
                             f"8 × stem.unit_dim = {width} (eq. 3.8 adds hidden states to patch features)")


def _pau_definitions(config: ALGRNetConfig) -> Any:
    from fau.data.fpara import load_pau_definitions

    source = config.pau_definitions
    return load_pau_definitions(None if source == "default" else source)


@MODELS.register("algrnet", configs={"tiny": "algrnet_tiny", "bp4d": "algrnet_bp4d", "disfa": "algrnet_disfa",
                                    "fpara": "algrnet_fpara"},
                 summary="ALGRNet, adaptive local-global relational network (thesis Ch. 3)")
class ALGRNet(FAUModel):
    """ALGRNet (module docstring); ``prior`` is accepted for the common constructor and not used."""

    name = "algrnet"
    Config = ALGRNetConfig

    @classmethod
    def num_outputs(cls, config: ALGRNetConfig) -> int:
        """AUs of the dataset, or the paralysis AUs (PAUs) of the definitions file."""
        if config.task == "paralysis":
            return len(_pau_definitions(config).names)
        return len(resolve_aus(config.dataset))

    def __init__(self, config: ALGRNetConfig, num_aus: int, prior: np.ndarray | None = None) -> None:
        cfg = config
        if cfg.task == "paralysis":
            defs = _pau_definitions(cfg)
            regions, centre_fn = len(defs.names), pau_centre_fn(defs)
        else:
            regions, centre_fn = len(resolve_aus(cfg.dataset)), au_centre_fn(cfg.dataset)
        check_label_count(self.name, cfg.dataset, regions, num_aus)
        front = build_front(cfg.input_size, cfg.stem, cfg.alignment, cfg.region, regions, centre_fn)
        super().__init__(regions, front.size * 4)
        self.config, self.task, self.dataset = cfg, cfg.task, cfg.dataset
        self.stem, self.alignment, self.region = front.stem, front.alignment, front.region
        u, c, size = front.unit_dim, front.channels, front.size

        lstm = cfg.skip_bilstm
        self.skip_bilstm = (SkipBiLSTM(c, lstm.hidden, regions, lstm.kernel, lstm.mode, lstm.gate_sum)
                            if lstm.mode != "none" else None)

        fusion_mode, fused = cfg.fusion.mode, cfg.fusion.channels
        # G: "a simple CNN with the same structure as the face alignment network" (thesis §3.2.4), kept
        # at the stem resolution so it can be fused element-wise with s_t (docs/fau.md, decision 'global
        # feature size'); it also feeds the integrated AU head, so only paralysis without fusion has no
        # use for it
        self.global_net = (ConvBlocks(c, (12 * u, 16 * u, 20 * u), pool=False)
                           if cfg.task == "au" or fusion_mode != "none" else None)
        g_channels = 20 * u
        if fusion_mode == "gated":
            self.fusion: nn.Module | None = GatedFusionCell(g_channels, c, fused, 1, regions, regions)
            refine_in = fused
        elif fusion_mode == "simple":
            self.fusion = ConcatFusion(g_channels, c, fused, regions)
            refine_in = 2 * fused
        else:
            self.fusion, refine_in = None, c
        # the refining part of F&R: "three blocks. Each block consists of two convolutional layers and
        # a max-pooling layer" (thesis §3.2.4), one per AU branch
        self.refine = ConvBlocks(refine_in, (12 * u, 16 * u, 20 * u), groups=regions)
        side = self.refine.out_size(size)
        branch_dim = self.refine.out_channels * side * side
        self.context_side = side
        if cfg.task == "au":
            self.local_head = local_head(regions, branch_dim, cfg.head.local_hidden)
            self.integrated_head = integrated_head(self.alignment.feature_dim + g_channels * side * side + branch_dim,
                                                   cfg.head.integrated_hidden, regions)
        else:
            # paralysis head: the branch vectors concatenated → FC → grades (docs/fau.md, decision
            # 'paralysis head')
            self.grade_head = nn.Linear(regions * branch_dim, cfg.head.grades)

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

    def training_losses(self, outputs: Mapping[str, torch.Tensor],
                        batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """AU task: L_au + λ·L_align on the final probability (thesis §3.2.1, eq. 3.2; ``loss.objective``
        au_int adds L_int as MGRR-Net's eq. 4.11); paralysis: L_par + λ·L_align (eq. 3.3)."""
        loss = self.config.loss
        if self.task == "au":
            return au_losses(outputs, batch, loss)
        grades = batch["grades"]
        if grades.ndim == 2 and grades.shape[1] != 1:
            raise ValueError(f"paralysis batches carry one grade per image, got grades {tuple(grades.shape)}")
        losses = {"grade": weighted_cross_entropy(outputs["grade_logits"], grades.reshape(-1), batch["grade_weights"]),
                  "align": alignment_loss(outputs["landmarks"], batch["landmarks"], batch.get("landmark_mask"))}
        losses["total"] = losses["grade"] + loss.align_weight * losses["align"]
        return losses

    def explain(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """The learned AU regions: ``region_maps`` A_t (B, A, S, S) the patches are cut with,
        ``region_centres`` (B, A, 2, 2) in crop pixels (JAA-Net rule + learned offsets),
        ``region_scales`` e_t (B, A) and the predicted ``landmarks`` (B, 49, 2)."""
        outputs = self(images)
        return {key: outputs[key] for key in ("region_maps", "region_centres", "region_scales", "landmarks")}
