"""The boundary every FAU model implements, and the front end both alignment-based models share.

A model is an ``nn.Module`` whose ``forward(images)`` takes a normalised batch (B, 3, H, W)
(mean = std = 0.5, fau-models.md §1.6) and returns a dict of named tensors:

* ``au_logits`` (B, A): the final per-AU logit (the trainer, metrics and predict read this);
* ``landmarks`` (B, 49, 2): predicted landmarks in crop pixel coordinates (alignment models);
* ``region_maps`` (B, A, h, w): the AU attention/region maps, for visualisation;
* model-specific extras (``au_logits_local``, ``region_centres``, ``grade_logits`` ...).

``compute_losses(outputs, batch)`` returns every named loss plus ``total``. ``batch`` carries
``image``, ``labels`` (B, A) in {-1, 0, 1}, ``landmarks`` (B, 49, 2), ``au_weights`` (A,) and, for
the paralysis task, ``grades`` and ``grade_weights``. Losses and metrics read names, never
positions; the trainer knows no model.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from shared.config import Options
from shared.errors import UserError


def mean_probability_logit(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """logit((σ(a) + σ(b)) / 2), computed in log space (the final AU probability is the average of
    the local and the integrated probabilities, fau-models.md §2.6 / §3.3)."""
    pos = torch.logaddexp(nn.functional.logsigmoid(a), nn.functional.logsigmoid(b))
    neg = torch.logaddexp(nn.functional.logsigmoid(-a), nn.functional.logsigmoid(-b))
    return pos - neg


class FAUModel(nn.Module, abc.ABC):
    """Base of every FAU model: input checking and the two-method boundary described above."""

    #: model name in `fau.models.MODELS`
    name: str = ""

    def __init__(self, num_aus: int, input_size: int) -> None:
        super().__init__()
        self.num_aus, self.input_size = num_aus, input_size

    def check_images(self, images: torch.Tensor) -> None:
        """Raise a one-line error unless `images` is (B, 3, input_size, input_size)."""
        expected = (3, self.input_size, self.input_size)
        if images.ndim != 4 or tuple(images.shape[1:]) != expected:
            raise UserError(f"{self.name}: expected images (B, {', '.join(map(str, expected))}), "
                            f"got {tuple(images.shape)}")

    @abc.abstractmethod
    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Named outputs for a (B, 3, H, W) batch (see the module docstring)."""

    @abc.abstractmethod
    def compute_losses(self, outputs: Mapping[str, torch.Tensor],
                       batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Every named loss of this model plus ``total`` (the one the trainer back-propagates)."""

    def describe(self, outputs: Mapping[str, torch.Tensor], labels: Sequence[str],
                 decoding: str = "greedy") -> list[dict[str, Any]] | None:
        """Generated natural-language descriptions, one dict per image of the batch ``outputs`` came from:
        ``{"global": str, "local": {label: str, ...}}`` (label = "AU1", ... in `labels` order).

        ``None`` for models without a language head (ALGRNet, MGRR-Net); VL-FAU overrides it
        (`decoding` = "greedy" or "beam").
        """
        return None


# --- pieces both alignment-based models (ALGRNet, MGRR-Net) build from the same config sections ---


@dataclass
class Front:
    """Stem → alignment → region attention, plus the sizes the rest of a model needs."""

    stem: nn.Module
    alignment: nn.Module
    region: nn.Module
    channels: int        # stem output channels C (64 in the paper)
    size: int            # stem map side S (44 for a 176 crop)
    unit_dim: int


def build_front(opts: Options, regions: int, centre_fn: Any) -> Front:
    """Read ``input_size``, ``stem``, ``alignment`` and ``region`` and build the shared front end
    (fau-models.md §2.1–2.3, §3.1): HMR stem, alignment branch, region attention."""
    from fau.models.alignment import AlignmentBranch
    from fau.models.region import MAP_KINDS, OFFSET_MODES, SCALE_PARAMS, RegionAttention
    from fau.models.stem import HMRegionStem

    crop = opts.int("input_size", minimum=16)
    stem_opts, align_opts, region_opts = opts.sub("stem"), opts.sub("alignment"), opts.sub("region")
    unit_dim = stem_opts.int("unit_dim", minimum=1)
    grids = stem_opts.ints("grids")
    if len(grids) != 3:
        raise UserError(f"config {opts.where}.stem.grids: expected three grid sizes, got {list(grids)}")
    if any(crop % g or (crop // 2) % g for g in grids):
        raise UserError(f"config {opts.where}.input_size: {crop} and {crop // 2} must split into "
                        f"every stem grid {list(grids)}")
    stem = HMRegionStem(unit_dim, grids)
    size = crop // 4
    alignment = AlignmentBranch(stem.out_channels, size, unit_dim, align_opts.int("hidden", minimum=1),
                                align_opts.int("landmarks", minimum=49, maximum=49), crop)
    region = RegionAttention(
        centre_fn, regions, alignment.feature_dim, size, crop,
        adaptive=region_opts.bool("adaptive"),
        offset_mode=region_opts.choice("offset_mode", OFFSET_MODES),
        offset_max=region_opts.float("offset_max", minimum=0.0, maximum=0.5),
        init_scale=region_opts.float("init_scale", minimum=1e-3, maximum=1.0),
        scale_param=region_opts.choice("scale_param", SCALE_PARAMS),
        scale_min=region_opts.float("scale_min", minimum=1e-3),
        scale_max=region_opts.float("scale_max", maximum=1.0),
        hidden=region_opts.int("hidden", minimum=1),
        map_kind=region_opts.choice("map", MAP_KINDS),
        refine=region_opts.bool("refine"),
        refine_width=region_opts.int("refine_width", minimum=1),
        detach_landmarks=region_opts.bool("detach_landmarks"),
    )
    return Front(stem, alignment, region, stem.out_channels, size, unit_dim)


def local_head(regions: int, in_dim: int, hidden: int) -> nn.Module:
    """Per-AU classifier (JAA-Net ``LocalAUNetv2``: FC in → hidden → 1 logit per AU, one per branch)."""
    from fau.models.stem import GroupedLinear

    return nn.Sequential(GroupedLinear(regions, in_dim, hidden), nn.ReLU(inplace=True),
                         GroupedLinear(regions, hidden, 1), nn.Flatten(1))


def integrated_head(in_dim: int, hidden: int, outputs: int) -> nn.Module:
    """Integrated classifier over all AUs (JAA-Net ``AUNet``: FC in → hidden → n logits)."""
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, outputs))


def au_losses(outputs: Mapping[str, torch.Tensor], batch: Mapping[str, torch.Tensor],
              align_weight: float, dice_weight: float) -> dict[str, torch.Tensor]:
    """(L_au + L_int) + λ·L_align (eq. 4.11; ALGRNet eq. 3.2 + the integrated head, §5 A8), plus
    JAA-Net's weighted Dice on the local logits when `dice_weight` > 0 (§5 G10)."""
    from fau.models.losses import alignment_loss, weighted_bce, weighted_dice

    labels, weights = batch["labels"], batch["au_weights"]
    losses = {
        "au": weighted_bce(outputs["au_logits_local"], labels, weights),
        "int": weighted_bce(outputs["au_logits_integrated"], labels, weights),
        "align": alignment_loss(outputs["landmarks"], batch["landmarks"]),
    }
    total = losses["au"] + losses["int"] + align_weight * losses["align"]
    if dice_weight > 0:
        losses["dice"] = weighted_dice(outputs["au_logits_local"], labels, weights)
        total = total + dice_weight * losses["dice"]
    losses["total"] = total
    return losses
