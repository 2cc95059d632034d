"""HiRE's visual region graph: IoU > μ spatial edges plus optional scene-graph (semantic) edges.

Sources: docs/retrieval.md#hire (VSSG, μ = 0.4; semantic edges from a visual scene graph, labels
unused; closure "high IoU with i and a relation with p → edge (i, p)") and decision 'scene-graph edges' (scene-graph
boxes map to the region of maximum IoU, skipped below 0.5; symmetric edges).  Everything is
vectorised over images and region pairs; boxes are ``x0, y0, x1, y1``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

IOU_THRESHOLD = 0.4
MATCH_MIN_IOU = 0.5


def box_iou(boxes_a: np.ndarray, boxes_b: np.ndarray | None = None) -> np.ndarray:
    """Pairwise IoU of (..., R, 4) and (..., S, 4) boxes → (..., R, S); zero-area boxes give 0."""
    a = np.asarray(boxes_a, dtype=np.float64)
    b = a if boxes_b is None else np.asarray(boxes_b, dtype=np.float64)
    x0 = np.maximum(a[..., :, None, 0], b[..., None, :, 0])
    y0 = np.maximum(a[..., :, None, 1], b[..., None, :, 1])
    x1 = np.minimum(a[..., :, None, 2], b[..., None, :, 2])
    y1 = np.minimum(a[..., :, None, 3], b[..., None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = np.clip(a[..., 2] - a[..., 0], 0, None) * np.clip(a[..., 3] - a[..., 1], 0, None)
    area_b = np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)
    union = area_a[..., :, None] + area_b[..., None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def scene_graph_adjacency(edges: Sequence[Sequence[tuple[int, str, int]]], n_regions: int) -> np.ndarray:
    """(N, R, R) bool: symmetric region pairs that share a visual scene-graph relation (labels dropped)."""
    adjacency = np.zeros((len(edges), n_regions, n_regions), dtype=bool)
    rows = [(n, s, o) for n, image_edges in enumerate(edges) for s, _, o in image_edges]
    if rows:
        n, s, o = np.asarray(rows).T
        adjacency[n, s, o] = True
        adjacency[n, o, s] = True
    return adjacency


def region_adjacency(
    boxes: np.ndarray,
    *,
    threshold: float = IOU_THRESHOLD,
    semantic: np.ndarray | None = None,
    closure: bool = True,
    self_loops: bool = True,
) -> np.ndarray:
    """Region graph of (N, R, 4) or (R, 4) boxes → bool (N, R, R) or (R, R), docs/retrieval.md#hire.

    Spatial edge (i, j) iff IoU > `threshold` (strict).  `semantic` (same shape as the output, e.g. from
    `scene_graph_adjacency`) adds scene-graph edges, and with `closure` the edges (i, p) where i overlaps
    j spatially and j is related to p.  The diagonal is set by `self_loops`.
    """
    spatial = box_iou(boxes) > threshold
    adjacency = spatial.copy()
    if semantic is not None:
        semantic = np.asarray(semantic, dtype=bool)
        if semantic.shape != spatial.shape:
            raise ValueError(f"semantic adjacency {semantic.shape} does not match {spatial.shape}")
        adjacency |= semantic
        if closure:
            s, e = spatial.astype(np.float32), semantic.astype(np.float32)
            adjacency |= (s @ e) > 0
            adjacency |= (e @ s) > 0
    diagonal = np.arange(adjacency.shape[-1])
    adjacency[..., diagonal, diagonal] = self_loops
    return adjacency


def match_boxes_to_regions(object_boxes: np.ndarray, region_boxes: np.ndarray, min_iou: float = MATCH_MIN_IOU) -> np.ndarray:
    """Region index of maximum IoU for each scene-graph object box (M, 4) → (M,) int64, -1 below `min_iou` (decision 'scene-graph edges')."""
    if len(object_boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    iou = box_iou(object_boxes, region_boxes)
    best = iou.argmax(axis=1)
    return np.where(iou[np.arange(len(best)), best] >= min_iou, best, -1).astype(np.int64)
