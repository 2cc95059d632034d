"""Referring-expression segmentation metrics (the IMC thesis (Chen 2023), Ch. 7): IoU, mean IoU, overall IoU,
P@K and the multi-view robustness score MVR (Eq. 7.1–7.4) with its companion drop measures."""

from __future__ import annotations

import math
import warnings
from typing import Mapping, Sequence

import numpy as np

PRECISION_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)


def _pairs(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = np.asarray(pred).astype(bool), np.asarray(gt).astype(bool)
    if pred.shape != gt.shape:
        raise ValueError(f"predicted masks {pred.shape} and ground-truth masks {gt.shape} differ in shape")
    if pred.ndim == 2:
        pred, gt = pred[None], gt[None]
    flat = (pred.shape[0], -1)
    inter = np.logical_and(pred, gt).reshape(flat).sum(axis=1)
    union = np.logical_or(pred, gt).reshape(flat).sum(axis=1)
    return inter.astype(np.int64), union.astype(np.int64)


def mask_iou(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """IoU_i = |P_i ∩ G_i| / |P_i ∪ G_i| per sample for (N, H, W) (or one (H, W)) binary masks (IMC thesis §7.3, Table 7.1).

    Two empty masks agree perfectly: IoU = 1.
    """
    inter, union = _pairs(pred, gt)
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def mean_iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """MIoU = (1/N) Σ_i IoU_i (IMC thesis §7.3, Table 7.1)."""
    return float(np.mean(mask_iou(pred, gt)))


def overall_iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """OIoU = Σ_i |P_i ∩ G_i| / Σ_i |P_i ∪ G_i| (IMC thesis §7.3, Table 7.1, cumulative over the test set)."""
    inter, union = _pairs(pred, gt)
    return float(inter.sum() / union.sum()) if union.sum() else 1.0


def precision_at(ious: np.ndarray, thresholds: Sequence[float] = PRECISION_THRESHOLDS) -> dict[float, float]:
    """P@K = percentage of samples with IoU strictly greater than K (IMC thesis §7.3, Table 7.1, "bigger than")."""
    ious = np.asarray(ious, dtype=np.float64)
    return {float(k): float(100.0 * np.mean(ious > k)) for k in thresholds}


def _view_ratios(view_iou: Mapping[tuple[int, int], float], centre_iou: float, centre: tuple[int, int]):
    if centre_iou <= 0:
        raise ValueError(f"centre IoU must be positive, got {centre_iou}")
    for (u, v), iou in view_iou.items():
        if (u, v) != centre:
            yield iou / centre_iou, abs(u - centre[0]) + abs(v - centre[1])


def mvr(view_iou: Mapping[tuple[int, int], float], centre_iou: float, centre: tuple[int, int] = (5, 5)) -> float:
    """MVR = −Σ_{(u,v) ≠ centre} Q_uv ln Q_uv / Dist(u, v) with Q_uv = IoU_uv / IoU_centre and
    Dist = |u−u½| + |v−v½| (Eq. 7.1–7.4; natural log, a fraction — ×100 for the printed %).

    The centre view is skipped (Q = 1, Dist = 0).  −Q ln Q is not monotonic, so a warning is
    emitted when any Q < 1/e (a collapse scores as "robust") or Q > 1 (a negative term); report
    `mean_relative_drop` and `weighted_relative_drop` beside it.
    """
    total = 0.0
    for q, dist in _view_ratios(view_iou, centre_iou, centre):
        if q <= 0:
            raise ValueError("a view IoU of 0 makes Q ln Q undefined in MVR")
        if q < 1 / math.e or q > 1:
            warnings.warn(f"MVR view ratio Q={q:.4f} is outside (1/e, 1]; MVR is not monotonic there", stacklevel=2)
        total += q * math.log(q) / dist
    return -total


def mean_relative_drop(view_iou: Mapping[tuple[int, int], float], centre_iou: float, centre: tuple[int, int] = (5, 5)) -> float:
    """(1/|V|) Σ_v (1 − Q_v) over the non-centre views (IMC thesis §7.3, Table 7.1, companion to MVR)."""
    drops = [1 - q for q, _ in _view_ratios(view_iou, centre_iou, centre)]
    return float(np.mean(drops))


def weighted_relative_drop(view_iou: Mapping[tuple[int, int], float], centre_iou: float, centre: tuple[int, int] = (5, 5)) -> float:
    """Σ_v (1 − Q_v) / Dist_v over the non-centre views (IMC thesis §7.3, Table 7.1, companion to MVR)."""
    return float(sum((1 - q) / dist for q, dist in _view_ratios(view_iou, centre_iou, centre)))


def box_iou_pairs(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """IoU of box i of `pred` with box i of `gt`, both (N, 4) as (x1, y1, x2, y2) in pixels (continuous
    coordinates: a box's area is (x2 − x1)(y2 − y1)).  Two empty boxes agree: IoU = 1."""
    pred, gt = np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape or pred.ndim != 2 or pred.shape[1] != 4:
        raise ValueError(f"boxes must be two (N, 4) arrays, got {pred.shape} and {gt.shape}")
    if np.any(pred[:, 2:] < pred[:, :2]) or np.any(gt[:, 2:] < gt[:, :2]):
        raise ValueError("boxes must be (x1, y1, x2, y2) with x2 >= x1 and y2 >= y1")
    wh = np.clip(np.minimum(pred[:, 2:], gt[:, 2:]) - np.maximum(pred[:, :2], gt[:, :2]), 0, None)
    inter = wh[:, 0] * wh[:, 1]
    union = np.prod(pred[:, 2:] - pred[:, :2], axis=1) + np.prod(gt[:, 2:] - gt[:, :2], axis=1) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 1.0)


def box_accuracy(pred: np.ndarray, gt: np.ndarray, threshold: float = 0.5) -> float:
    """Acc@0.5: the fraction of samples whose predicted box has IoU bigger than `threshold` with the
    ground truth (IMC thesis Table 7.2, "Accuracy of BBox IoU bigger than threshold=0.5")."""
    return float(np.mean(box_iou_pairs(pred, gt) > threshold))
