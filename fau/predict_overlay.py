"""The per-face PNG of `fau predict --overlay DIR`: what the model saw and what it predicted.

Top left: the model's input crop (aligned, resized, centre-cropped) with the 68 detected landmarks
and the AU centres — the model's own region centres when its explanation has them (ALGRNet /
MGRR-Net ``region_centres``: JAA-Net rule + learned offsets, thesis §3.2.2), else the JAA-Net rule
centres from the detected landmarks. Top right: a bar chart of the AU probabilities, active AUs in
red, each AU's threshold marked. Below: one panel per AU with the model's attention map for that AU
(``model.explain``: ALGRNet/MGRR-Net ``region_maps``, VL-FAU ``dair_maps``), min-max scaled per
AU (blue low, red high), blended over the crop; the tiles are composed in NumPy into one image
(one axes per AU made matplotlib's layout take seconds per face).
"""

from __future__ import annotations

import math
import os
from typing import Sequence

import numpy as np

from fau.predict import FacePrediction
from shared.io import atomic_path

GRID_COLUMNS = 5


def overlay_centres(prediction: FacePrediction, aus: Sequence[int]) -> np.ndarray | None:
    """(A, 2, 2) AU centres in crop pixels: the model's, or the JAA-Net rule's from the landmarks."""
    if prediction.centres is not None:
        return prediction.centres
    if prediction.face.crop_landmarks is None:
        return None
    from fau.aus import au_centres

    return au_centres(prediction.face.crop_landmarks, list(aus))


def map_mosaic(crop: np.ndarray, maps: np.ndarray, columns: int = GRID_COLUMNS,
               gap: int = 4) -> np.ndarray:
    """One RGB uint8 image tiling `crop` blended with each (h, w) map of `maps` (A, h, w), `columns`
    tiles per row (jet colours, min-max scaled per map, 50 % over the crop; white gaps)."""
    import cv2
    from matplotlib import colormaps

    size = crop.shape[0]
    rows = math.ceil(len(maps) / columns)
    mosaic = np.full((rows * (size + gap) - gap, columns * (size + gap) - gap, 3), 255, dtype=np.uint8)
    for index, amap in enumerate(maps):
        scaled = cv2.resize(amap.astype(np.float32), (size, size), interpolation=cv2.INTER_LINEAR)
        scaled = (scaled - scaled.min()) / max(float(scaled.max() - scaled.min()), 1e-6)
        colour = colormaps["jet"](scaled)[..., :3] * 255.0
        tile = (0.5 * crop + 0.5 * colour).round().astype(np.uint8)
        y, x = (index // columns) * (size + gap), (index % columns) * (size + gap)
        mosaic[y: y + size, x: x + size] = tile
    return mosaic


def draw_prediction_overlay(prediction: FacePrediction, aus: Sequence[int], thresholds: Sequence[float],
                            path: str | os.PathLike, title: str = "") -> None:
    """Write the overlay PNG of one face (module docstring) atomically to `path`."""
    from matplotlib.figure import Figure

    crop = prediction.face.crop
    size = crop.shape[0]
    names = list(prediction.aus)
    probs = np.array([prediction.aus[n] for n in names])
    active = set(prediction.active)
    maps = prediction.maps
    rows = math.ceil(len(names) / GRID_COLUMNS) if maps is not None else 0
    figure = Figure(figsize=(11, 5.0 + 2.1 * rows), dpi=80)
    heights = [5.0] + ([2.1 * rows] if rows else [])
    grid = figure.add_gridspec(len(heights), 2, height_ratios=heights, width_ratios=[1.0, 1.3],
                               left=0.06, right=0.98, top=0.95, bottom=0.04, hspace=0.22, wspace=0.15)
    face_axis = figure.add_subplot(grid[0, 0])
    face_axis.imshow(crop)
    if prediction.face.crop_landmarks is not None:
        points = prediction.face.crop_landmarks
        face_axis.scatter(points[:, 0], points[:, 1], s=6, c="lime")
    centres = overlay_centres(prediction, aus)
    if centres is not None:
        for name, pair in zip(names, centres):
            face_axis.scatter(pair[:, 0], pair[:, 1], s=30, marker="x", c="red")
            face_axis.annotate(name, pair[0], fontsize=6, color="red", xytext=(2, 2), textcoords="offset points")
    face_axis.set_xlim(-0.5, size - 0.5)
    face_axis.set_ylim(size - 0.5, -0.5)
    face_axis.set_title(f"model input {size}x{size}: landmarks (green), AU centres (red)", fontsize=9)
    face_axis.set_axis_off()

    bars = figure.add_subplot(grid[0, 1])
    positions = np.arange(len(names))
    bars.barh(positions, probs, color=["tab:red" if n in active else "tab:gray" for n in names])
    bars.scatter(thresholds, positions, marker="|", s=120, c="black", label="threshold")
    bars.set_yticks(positions, names, fontsize=8)
    bars.invert_yaxis()
    bars.set_xlim(0.0, 1.0)
    bars.set_xlabel("probability (red = active)")
    bars.legend(loc="lower right", fontsize=8)
    bars.set_title(title or "AU probabilities", fontsize=9)

    if maps is not None:
        mosaic_axis = figure.add_subplot(grid[1, :])
        mosaic_axis.imshow(map_mosaic(crop, maps))
        step = size + 4
        for index, name in enumerate(names):
            mosaic_axis.text((index % GRID_COLUMNS) * step + 2, (index // GRID_COLUMNS) * step + 2,
                             f"{name} {prediction.aus[name]:.2f}", fontsize=8, va="top",
                             color="tab:red" if name in active else "black", backgroundcolor="white")
        mosaic_axis.set_title("per-AU attention maps (blue low, red high; min-max scaled per AU)", fontsize=9)
        mosaic_axis.set_axis_off()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
