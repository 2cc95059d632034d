"""3SHNet export: regions sorted by VSeM salience α (thesis Eq. 8.2–8.3), each with its top VSpM cells β
(Eq. 8.7–8.9) on the downsampled segmentation map."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from retrieval.data.precomp import GRID_SIDE, PrecompSplit
from retrieval.explain.common import image_batch
from shared.explain import explain

TOP_CELLS = 5


def _attention_shape(model: torch.nn.Module, seg_shape: Sequence[int]) -> tuple[int, int]:
    """(H', W') of the VSpM key map: the Conv2d's output size on the (H, W) segmentation map (Eq. 8.5)."""
    conv = model.vspm.conv[0]
    return tuple(int((size + 2 * conv.padding[d] - conv.kernel_size[d]) // conv.stride[d] + 1)
                 for d, size in enumerate(seg_shape))


def shnet_regions(salience: np.ndarray, attention: np.ndarray, map_shape: tuple[int, int],
                  boxes: np.ndarray | None, grid: bool) -> list[dict[str, Any]]:
    """One image's regions sorted by VSeM salience α (Eq. 8.3), each with its top VSpM cells β (Eq. 8.9).

    `salience` (K,), `attention` (K, H'W'), `boxes` (K, 4) or None; grid cells carry their (row, col)
    on the 7 × 7 backbone grid instead of a box.
    """
    width = map_shape[1]
    regions = []
    for k in np.argsort(-salience, kind="stable"):
        top = np.argsort(-attention[k], kind="stable")[:TOP_CELLS]
        entry: dict[str, Any] = {"index": int(k)}
        if grid:
            entry["cell"] = [int(k) // GRID_SIDE, int(k) % GRID_SIDE]
        elif boxes is not None:
            entry["box"] = [float(x) for x in boxes[k]]
        entry["salience"] = float(salience[k])
        entry["attention"] = [{"row": int(c) // width, "col": int(c) % width, "weight": float(attention[k, c])}
                              for c in top]
        regions.append(entry)
    return regions


def _explain_shnet(model: torch.nn.Module, split: PrecompSplit, indices: Sequence[int], context: dict[str, Any]
                   ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    out = explain(model, image_batch(model, split, indices), None, name="3shnet")
    salience = out["salience"].cpu().numpy()
    attention = out["spatial_attention"].cpu().numpy()
    map_shape = _attention_shape(model, split.seg_maps.shape[1:])
    grid = model.variant == "grid"
    boxes = None if grid or split.boxes is None else split.boxes
    header = {"variant": model.variant, "segmentation_map": list(split.seg_maps.shape[1:]),
              "attention_map": list(map_shape), "attention_stride": list(model.vspm.conv[0].stride),
              "boxes": None if grid else (split.boxes is not None)}
    images = [{"regions": shnet_regions(salience[row], attention[row], map_shape,
                                        None if boxes is None else np.asarray(boxes[i]), grid)}
              for row, i in enumerate(indices)]
    return header, images
