"""Detector + pooling: 36 BUTD-style regions × 2,048-d and a 7×7 grid from one ResNet-50 C5 map.

Sources: docs/retrieval.md (visual inputs: top K = 36 regions by class-detection confidence, 2,048-d
average-pooled features; 3SHNet grid 7 × 7 × 2,048 after ``AdaptiveAvgPool2d``); docs/retrieval.md
(BUTD ``generate_tsv.py``: the regions are the RPN proposals ranked by their best class score after
per-class NMS).

One backbone pass per batch: torchvision's Faster R-CNN ResNet-50-FPN detects on the FPN levels, and the
ResNet body's C5 map (stride 32, 2,048 channels) feeds both RoIAlign (regions) and the adaptive average pool
(grid).  Weights come from a local file only; without one the network keeps its seeded random weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping

import torch
from torch import nn
from torch.nn import functional as F
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
from torchvision.ops import batched_nms, roi_align
from torchvision.ops.misc import FrozenBatchNorm2d

from retrieval.data.precomp import GRID_SIDE
from shared.checkpoint import load_state_strict
from shared.config import bounded, from_dict
from shared.errors import UserError

C5_KEY = "3"  # IntermediateLayerGetter name of ResNet layer4 in torchvision's FPN backbone
C5_STRIDE = 32
C5_CHANNELS = 2048  # ResNet-50 layer4 output channels = the 2,048-d region / grid features


@dataclass(frozen=True)
class ExtractorSettings:
    """Every hyper-parameter of the extractor (see ``retrieval/configs/features_butd.yaml``)."""

    weights: Path | None
    num_classes: int
    min_size: int
    max_size: int
    image_mean: tuple[float, ...]
    image_std: tuple[float, ...]
    rpn_pre_nms_top_n: int
    rpn_post_nms_top_n: int
    rpn_nms_thresh: float
    num_boxes: int
    class_nms_thresh: float
    score_floor: float
    fill: str
    roi_output: int
    sampling_ratio: int
    seed: int


@dataclass(frozen=True)
class DetectorConfig:
    """The ``detector:`` section of ``features_butd.yaml``."""

    weights: str | None
    num_classes: int = bounded(minimum=2)
    min_size: int = bounded(minimum=32)
    max_size: int = bounded(minimum=32)
    image_mean: tuple[float, float, float] = bounded()
    image_std: tuple[float, float, float] = bounded(minimum=1e-6)
    rpn_pre_nms_top_n: int = bounded(minimum=1)
    rpn_post_nms_top_n: int = bounded(minimum=1)
    rpn_nms_thresh: float = bounded(minimum=0.0, maximum=1.0)

    def __post_init__(self) -> None:
        if self.max_size < self.min_size:
            raise ValueError(f"max_size ({self.max_size}) is below min_size ({self.min_size})")


@dataclass(frozen=True)
class RegionsConfig:
    """The ``regions:`` section of ``features_butd.yaml``."""

    num_boxes: int = bounded(minimum=1)
    class_nms_thresh: float = bounded(minimum=0.0, maximum=1.0)
    score_floor: float = bounded(minimum=0.0, maximum=1.0)
    roi_output: int = bounded(minimum=1)
    sampling_ratio: int = bounded(minimum=0)
    fill: Literal["whole_image", "repeat_last"] = "whole_image"


@dataclass(frozen=True)
class FeaturesConfig:
    """A features config file: ``detector:``, ``regions:`` and ``seed``."""

    detector: DetectorConfig
    regions: RegionsConfig
    seed: int = bounded(0, minimum=0)


def settings_from_config(config: Mapping[str, Any]) -> ExtractorSettings:
    """Read the extractor config strictly (every key must exist; one-line errors name the dotted key)."""
    parsed = from_dict(FeaturesConfig, config, "features")
    det, reg = parsed.detector, parsed.regions
    return ExtractorSettings(
        weights=None if det.weights is None else Path(det.weights).expanduser(),
        num_classes=det.num_classes, min_size=det.min_size, max_size=det.max_size,
        image_mean=det.image_mean, image_std=det.image_std, rpn_pre_nms_top_n=det.rpn_pre_nms_top_n,
        rpn_post_nms_top_n=det.rpn_post_nms_top_n, rpn_nms_thresh=det.rpn_nms_thresh,
        num_boxes=reg.num_boxes, class_nms_thresh=reg.class_nms_thresh, score_floor=reg.score_floor,
        fill=reg.fill, roi_output=reg.roi_output, sampling_ratio=reg.sampling_ratio, seed=parsed.seed,
    )


def build_detector(settings: ExtractorSettings) -> FasterRCNN:
    """torchvision Faster R-CNN ResNet-50-FPN, built without any download (frozen BN, as its checkpoints)."""
    backbone = resnet_fpn_backbone(backbone_name="resnet50", weights=None, norm_layer=FrozenBatchNorm2d, trainable_layers=0)
    return FasterRCNN(
        backbone,
        num_classes=settings.num_classes,
        min_size=settings.min_size,
        max_size=settings.max_size,
        image_mean=list(settings.image_mean),
        image_std=list(settings.image_std),
        rpn_pre_nms_top_n_test=settings.rpn_pre_nms_top_n,
        rpn_post_nms_top_n_test=settings.rpn_post_nms_top_n,
        rpn_nms_thresh=settings.rpn_nms_thresh,
    )


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a local weight file: safetensors, or a torch state dict read with ``weights_only=True``.

    A ``.pth`` holding ``{"model": state_dict}`` or ``{"state_dict": ...}`` is unwrapped; nothing is unpickled.
    """
    if not path.is_file():
        raise UserError(f"config features.detector.weights {path}: file not found")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any reader failure is a bad user file
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UserError(f"{path}: not a readable weight file ({reason})") from None
    for key in ("model", "state_dict"):
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            state = state[key]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{path}: expected a state dict of tensors")
    return dict(state)


def select_regions(proposals: torch.Tensor, class_scores: torch.Tensor, num_boxes: int,
                   nms_thresh: float, score_floor: float) -> tuple[torch.Tensor, torch.Tensor]:
    """BUTD region choice: rank proposals by their best class score that survives per-class NMS.

    `proposals` (P, 4), `class_scores` (P, C) softmax scores with background in column 0.  For every
    foreground class, NMS on the proposals with that class' scores; a proposal's confidence is the maximum
    score over the classes that kept it (0 when none did).  Returns (indices of the top ``min(P, num_boxes)``
    proposals, their confidences); ties keep the RPN order (objectness).
    """
    foreground = class_scores[:, 1:]
    confidence = torch.zeros(len(proposals), dtype=foreground.dtype, device=foreground.device)
    pairs = (foreground >= score_floor).nonzero()
    if len(pairs):
        rows, classes = pairs[:, 0], pairs[:, 1]
        scores = foreground[rows, classes]
        keep = batched_nms(proposals[rows], scores, classes, nms_thresh)
        confidence.scatter_reduce_(0, rows[keep], scores[keep], reduce="amax")
    order = torch.sort(confidence, descending=True, stable=True).indices[:num_boxes]
    return order, confidence[order]


def fill_boxes(boxes: torch.Tensor, num_boxes: int, height: int, width: int, mode: str) -> torch.Tensor:
    """Pad (K, 4) boxes to `num_boxes` rows: with whole-image boxes or by repeating the last box."""
    missing = num_boxes - len(boxes)
    if missing <= 0:
        return boxes
    if mode == "repeat_last" and len(boxes):
        extra = boxes[-1:].expand(missing, 4)
    else:
        extra = boxes.new_tensor([0.0, 0.0, float(width), float(height)]).expand(missing, 4)
    return torch.cat([boxes, extra])


@dataclass
class ExtractedBatch:
    """Per-image outputs of one batch (CPU tensors): the precomp side arrays of retrieval/data/precomp.py."""

    features: torch.Tensor  # (B, num_boxes, 2048) float32 region features
    boxes: torch.Tensor  # (B, num_boxes, 4) float32 x0, y0, x1, y1 in original-image pixels
    grid: torch.Tensor  # (B, grid², 2048) float32, row-major cells
    image_sizes: torch.Tensor  # (B, 2) int64 original width, height
    detected: torch.Tensor  # (B,) int64 real proposals among the boxes (the rest are fill)


class RegionGridExtractor(nn.Module):
    """Faster R-CNN regions + RoIAlign/grid pooling of the ResNet-50 C5 map (docs/retrieval.md)."""

    def __init__(self, settings: ExtractorSettings) -> None:
        super().__init__()
        self.settings = settings
        with torch.random.fork_rng(devices=[]):  # seeded random init without touching the caller's generator
            torch.manual_seed(settings.seed)
            self.detector = build_detector(settings)
        if settings.weights is not None:
            load_state_strict(self.detector, read_state_dict(settings.weights), settings.weights)
        self.eval()

    @torch.inference_mode()
    def forward(self, images: list[torch.Tensor]) -> ExtractedBatch:
        """`images`: RGB (3, H, W) float tensors in [0, 1] on the module's device."""
        s, det = self.settings, self.detector
        originals = [(int(im.shape[-2]), int(im.shape[-1])) for im in images]
        batch, _ = det.transform(images)
        body = det.backbone.body(batch.tensors)
        pyramid = det.backbone.fpn(body)
        proposals, _ = det.rpn(batch, pyramid)
        pooled = det.roi_heads.box_head(det.roi_heads.box_roi_pool(pyramid, proposals, batch.image_sizes))
        logits, _ = det.roi_heads.box_predictor(pooled)
        scores = F.softmax(logits, dim=-1).split([len(p) for p in proposals])
        c5 = body[C5_KEY]
        feats, boxes, grids, detected = [], [], [], []
        for i, ((height, width), (orig_h, orig_w)) in enumerate(zip(batch.image_sizes, originals)):
            order, _ = select_regions(proposals[i], scores[i], s.num_boxes, s.class_nms_thresh, s.score_floor)
            chosen = fill_boxes(proposals[i][order], s.num_boxes, height, width, s.fill)
            cells = roi_align(c5[i : i + 1], [chosen], output_size=s.roi_output, spatial_scale=1.0 / C5_STRIDE,
                              sampling_ratio=s.sampling_ratio, aligned=True)
            feats.append(cells.mean(dim=(2, 3)))  # the average-pooled 2,048-d region feature (the BUTD precomp layout)
            valid = c5[i, :, : math.ceil(height / C5_STRIDE), : math.ceil(width / C5_STRIDE)]
            grids.append(F.adaptive_avg_pool2d(valid, GRID_SIDE).flatten(1).T)
            scale = chosen.new_tensor([orig_w / width, orig_h / height, orig_w / width, orig_h / height])
            boxes.append(chosen * scale)
            detected.append(len(order))
        return ExtractedBatch(
            features=torch.stack(feats).float().cpu(),
            boxes=torch.stack(boxes).float().cpu(),
            grid=torch.stack(grids).float().cpu(),
            image_sizes=torch.tensor([[w, h] for h, w in originals], dtype=torch.int64),
            detected=torch.tensor(detected, dtype=torch.int64),
        )
