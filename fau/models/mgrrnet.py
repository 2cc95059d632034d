"""MGRR-Net, the multi-level graph relational reasoning network (thesis Ch. 4).

Same stem and alignment branch as ALGRNet (thesis §4.3.1); regions from the landmarks only, JAA-Net's
maps with its fixed width ratio e = 0.14 and its attention refinement ("the same with Shao et al.
(2021)", §4.4.1), give patch features v_i = O_G ⊙ A_i (docs/fau.md, decision 'fixed regions'). Then K relational layers (`fau.layers.relational`, thesis §4.3.2; K = 2, §4.4.1),
each with a region-level dynamic AU graph (eq. 4.5), channel- and pixel-level multi-head GATs on O_G
(eqs. 4.3–4.4) and hierarchical gated fusion cells (eqs. 4.6–4.8); then per-AU branch classifiers
and an integrated head over the alignment and refined AU features (§4.3.3). Loss
(L_au + L_int) + 0.5·L_align (eq. 4.11); prediction = mean of both probabilities.

Ablation switches (thesis Tab 4.6 / 4.7): ``relational.layers`` K (0 = the shared JAA-style baseline),
``relational.layer.region_graph`` (D_G), ``global_feature`` (O_G), ``channel_gat`` (C_G),
``pixel_gat`` (P_G), ``graph_init`` prior | random.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import torch
from torch import nn

from fau.aus import resolve_aus
from fau.layers.conv import ConvBlocks
from fau.layers.front import AlignmentConfig, RegionConfig, StemConfig, build_front, check_input_size
from fau.layers.heads import integrated_head, local_head, mean_probability_logit
from fau.layers.region import au_centre_fn
from fau.layers.relational import RelationalLayer, RelationalLayerConfig
from fau.losses import AULossConfig, au_losses
from fau.models.base import FAUModel, check_label_count
from fau.models.registry import MODELS
from shared.config import bounded


@dataclass(frozen=True)
class RelationalConfig:
    """``model.relational``: K layers with one set of switches."""

    layers: int = bounded(2, minimum=0, doc="K relational layers (thesis §4.4.1, Tab 4.7)")
    layer: RelationalLayerConfig = field(default_factory=RelationalLayerConfig)


@dataclass(frozen=True)
class HeadConfig:
    """``model.head``: widths of the per-AU and the integrated classifiers (JAA-Net's)."""

    local_hidden: int = bounded(64, minimum=1)
    integrated_hidden: int = bounded(512, minimum=1)


@dataclass(frozen=True)
class MGRRNetConfig:
    """The ``model:`` section of an MGRR-Net config; the defaults are ``fau/configs/mgrrnet_bp4d.yaml``."""

    dataset: str = "bp4d"
    input_size: int = bounded(176, minimum=16, doc="crop side (must equal data.crop)")
    stem: StemConfig = field(default_factory=StemConfig)
    alignment: AlignmentConfig = field(default_factory=AlignmentConfig)
    region: RegionConfig = field(default_factory=lambda: RegionConfig(adaptive=False))
    relational: RelationalConfig = field(default_factory=RelationalConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    loss: AULossConfig = field(default_factory=lambda: AULossConfig(objective="au_int"))

    def __post_init__(self) -> None:
        check_input_size(self.input_size, self.stem.grids)


@MODELS.register("mgrrnet", configs={"tiny": "mgrrnet_tiny", "bp4d": "mgrrnet_bp4d", "disfa": "mgrrnet_disfa"},
                 summary="MGRR-Net, multi-level graph relational reasoning (thesis Ch. 4)")
class MGRRNet(FAUModel):
    """MGRR-Net (module docstring); ``prior`` is the (A, A) co-occurrence prior of the training folds
    (needed with ``relational.layer.graph_init: prior``)."""

    name = "mgrrnet"
    Config = MGRRNetConfig

    def __init__(self, config: MGRRNetConfig, num_aus: int, prior: np.ndarray | None = None) -> None:
        cfg = config
        regions = len(resolve_aus(cfg.dataset))
        check_label_count(self.name, cfg.dataset, regions, num_aus)
        front = build_front(cfg.input_size, cfg.stem, cfg.alignment, cfg.region, regions, au_centre_fn(cfg.dataset))
        super().__init__(regions, front.size * 4)
        self.config, self.dataset = cfg, cfg.dataset
        self.stem, self.alignment, self.region = front.stem, front.alignment, front.region
        u, c, size = front.unit_dim, front.channels, front.size
        self.layers = nn.ModuleList(RelationalLayer(c, size, regions, prior, cfg.relational.layer)
                                    for _ in range(cfg.relational.layers))
        # per-AU branches: JAA-style conv blocks 44 → 5, then the classifiers (docs/fau.md, decision
        # 'integrated head input')
        self.branches = ConvBlocks(c, (12 * u, 16 * u, 20 * u), groups=regions)
        side = self.branches.out_size(size)
        branch_dim = self.branches.out_channels * side * side
        self.local_head = local_head(regions, branch_dim, cfg.head.local_hidden)
        self.integrated_head = integrated_head(self.alignment.feature_dim + branch_dim,
                                               cfg.head.integrated_hidden, regions)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        self.check_images(images)
        o_g = self.stem(images)                                           # (B, C, S, S)
        align_feature, landmarks = self.alignment(o_g)
        region = self.region(align_feature, landmarks)
        b, c, h, w = o_g.shape
        v = (o_g.unsqueeze(1) * region["maps"].unsqueeze(2)).reshape(b, -1, h, w)   # v_i = O_G ⊙ A_i
        for layer in self.layers:
            v = layer(v, o_g)
        branches = self.branches(v).view(b, self.num_aus, -1)
        local = self.local_head(branches)
        integrated = self.integrated_head(torch.cat([align_feature, branches.mean(dim=1)], dim=1))
        return {"au_logits": mean_probability_logit(local, integrated), "au_logits_local": local,
                "au_logits_integrated": integrated, "landmarks": landmarks, "region_maps": region["maps"],
                "region_centres": region["centres"], "region_scales": region["scales"]}

    def training_losses(self, outputs: Mapping[str, torch.Tensor],
                        batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """(L_au + L_int) + λ·L_align, thesis eq. 4.11."""
        return au_losses(outputs, batch, self.config.loss)

    def explain(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """The fixed AU regions the patches are cut with: ``region_maps`` A_i (B, A, S, S),
        ``region_centres`` (B, A, 2, 2) and ``region_scales`` (B, A) in crop pixels / width ratios,
        and the predicted ``landmarks`` (B, 49, 2) they come from."""
        outputs = self(images)
        return {key: outputs[key] for key in ("region_maps", "region_centres", "region_scales", "landmarks")}
