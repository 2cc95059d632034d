"""The front end ALGRNet and MGRR-Net share, and the config sections that describe it.

Stem → face alignment → AU region attention (thesis §3.2.1–3.2.2 for ALGRNet; MGRR-Net "shares the
stem network", §4.3.1, with regions from the landmarks only). `build_front` builds the three modules
in this order from the ``input_size``, ``stem``, ``alignment`` and ``region`` sections of a model
config; the model assigns them as its ``stem``, ``alignment`` and ``region`` children.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import nn

from fau.layers.alignment import AlignmentBranch
from fau.layers.region import CentreFn, RegionAttention
from fau.layers.stem import HMRegionStem
from shared.config import bounded


@dataclass(frozen=True)
class StemConfig:
    """``model.stem``: the hierarchical multi-scale region stem (`fau.layers.stem`)."""

    unit_dim: int = bounded(8, minimum=1, doc="JAA-Net unit width u: stem 4u/8u channels, blocks 12u/16u/20u")
    grids: tuple[int, int, int] = bounded((8, 4, 2), minimum=1, doc="local-conv grids of the region layer")


@dataclass(frozen=True)
class AlignmentConfig:
    """``model.alignment``: the landmark branch (`fau.layers.alignment`)."""

    landmarks: int = bounded(49, minimum=49, maximum=49, doc="m, the 49-point layout")
    hidden: int = bounded(512, minimum=1, doc="FC width between the 4000-d feature and 2m outputs")


@dataclass(frozen=True)
class RegionConfig:
    """``model.region``: AU region attention (`fau.layers.region`); the defaults are ALGRNet's."""

    adaptive: bool = True
    offset_mode: Literal["per_au_mirrored", "per_au_shared", "per_centre"] = "per_au_mirrored"
    offset_max: float = bounded(0.1, minimum=0.0, maximum=0.5, doc="offset bound, fraction of the crop")
    init_scale: float = bounded(0.14, minimum=1e-3, maximum=1.0, doc="e_i at start (fixed when not adaptive)")
    scale_param: Literal["exp_tanh", "sigmoid"] = "exp_tanh"
    scale_min: float = bounded(0.05, minimum=1e-3, doc="sigmoid parametrisation: lower bound of e_i")
    scale_max: float = bounded(0.3, maximum=1.0, doc="sigmoid parametrisation: upper bound of e_i")
    hidden: int = bounded(512, minimum=1, doc="width of the offset and scale FC networks")
    fixed_map: Literal["jaa", "gaussian"] = "jaa"     # map of fixed regions; adaptive ones are always Gaussian
    refine: bool = True
    refine_width: int = bounded(64, minimum=1)
    detach_landmarks: bool = True

    def __post_init__(self) -> None:
        if self.scale_param == "sigmoid" and not self.scale_min < self.init_scale < self.scale_max:
            raise ValueError(f"init_scale {self.init_scale} must lie inside "
                             f"(scale_min {self.scale_min}, scale_max {self.scale_max})")


def check_input_size(input_size: int, grids: tuple[int, ...]) -> None:
    """The stem's two stages see maps of `input_size` and `input_size`/2; both must split evenly into
    every local-conv grid (a ValueError names both)."""
    if any(input_size % g or (input_size // 2) % g for g in grids):
        raise ValueError(f"input_size: {input_size} and {input_size // 2} must split into every stem grid {list(grids)}")


@dataclass
class Front:
    """Stem → alignment → region attention, plus the sizes the rest of a model needs."""

    stem: nn.Module
    alignment: nn.Module
    region: nn.Module
    channels: int        # stem output channels C (64 in the paper)
    size: int            # stem map side S (44 for a 176 crop)
    unit_dim: int


def build_front(input_size: int, stem: StemConfig, alignment: AlignmentConfig, region: RegionConfig,
                regions: int, centre_fn: CentreFn) -> Front:
    """Build the stem, the alignment branch and the region attention, in that order."""
    check_input_size(input_size, stem.grids)
    stem_module = HMRegionStem(stem.unit_dim, stem.grids)
    size = input_size // 4
    align_module = AlignmentBranch(stem_module.out_channels, size, stem.unit_dim, alignment.hidden,
                                   alignment.landmarks, input_size)
    region_module = RegionAttention(
        centre_fn, regions, align_module.feature_dim, size, input_size,
        adaptive=region.adaptive, offset_mode=region.offset_mode, offset_max=region.offset_max,
        init_scale=region.init_scale, scale_param=region.scale_param, scale_min=region.scale_min,
        scale_max=region.scale_max, hidden=region.hidden, map_kind="gaussian" if region.adaptive else region.fixed_map, refine=region.refine,
        refine_width=region.refine_width, detach_landmarks=region.detach_landmarks,
    )
    return Front(stem_module, align_module, region_module, stem_module.out_channels, size, stem.unit_dim)
