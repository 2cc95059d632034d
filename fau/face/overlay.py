"""A PNG that shows an aligned face with its landmarks, AU centres and AU attention maps.

A check of the face pipeline on the astronaut photo you can look at. Left panel: numbered landmarks and labelled AU centres (AUs that
share a region get one joint label); right panel: the max over AUs of the JAA-Net attention maps.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from fau.face.align import AlignedFace
from shared.io import atomic_path


def _joint_labels(centres: np.ndarray, labels: Sequence[str]) -> list[tuple[np.ndarray, str]]:
    """One (point, "AU12/14/15") entry per distinct centre; labels of coincident centres joined."""
    joined: dict[tuple[float, float], list[str]] = {}
    for pair, label in zip(centres, labels):
        for point in pair:
            joined.setdefault((round(float(point[0]), 2), round(float(point[1]), 2)), []).append(label)
    entries = []
    for (x, y), names in joined.items():
        text = names[0] + "".join("/" + name.removeprefix("AU") for name in names[1:])
        entries.append((np.array([x, y]), text))
    return entries


def draw_alignment_overlay(
    aligned: AlignedFace,
    centres: Any,
    path: str | os.PathLike,
    labels: Sequence[str] | None = None,
) -> None:
    """Write a two-panel PNG of `aligned` with landmarks, AU `centres` (A, 2, 2) and attention maps.

    `centres` are in the aligned image's pixels (e.g. `au_centres(aligned.landmarks, "bp4d")`);
    `labels` name the A entries (default ``AU?1..A``). The file is written atomically.
    """
    from matplotlib.figure import Figure

    from fau.aus import attention_maps

    centres = np.asarray(centres, dtype=np.float32)
    labels = list(labels) if labels is not None else [f"AU?{i + 1}" for i in range(len(centres))]
    size = aligned.image.shape[0]
    figure = Figure(figsize=(12, 6.3), dpi=110, layout="constrained")
    left, right = figure.subplots(1, 2)
    left.imshow(aligned.image)
    points = np.asarray(aligned.landmarks)
    left.scatter(points[:, 0], points[:, 1], s=8, c="lime")
    for index, (x, y) in enumerate(points):
        left.annotate(str(index), (x, y), fontsize=5, color="yellow", xytext=(1, -1), textcoords="offset points")
    for point, text in _joint_labels(centres, labels):
        left.scatter([point[0]], [point[1]], s=40, marker="x", c="red")
        left.annotate(text, point, fontsize=7, color="red", xytext=(3, 3), textcoords="offset points")
    left.set_title(f"aligned {size}x{size}: {len(points)} landmarks, AU centres")
    maps = attention_maps(centres, map_size=52, crop=size).amax(dim=0).numpy()
    right.imshow(aligned.image)
    right.imshow(maps, extent=(0, size, size, 0), cmap="jet", alpha=0.45, vmin=0.0, vmax=1.0)
    right.set_title("JAA-Net attention maps (max over AUs)")
    for axis in (left, right):
        axis.set_axis_off()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")


def astronaut_overlay(path: str | os.PathLike, dataset: str = "bp4d") -> None:
    """Run the face pipeline on skimage's astronaut photo and draw its overlay to `path`."""
    from skimage.data import astronaut

    from fau.aus import au_centres, au_names, resolve_aus
    from fau.face.pipeline import FacePipeline

    face = FacePipeline(max_faces=1).process(astronaut())[0]
    centres = au_centres(face.aligned.landmarks, dataset)
    draw_alignment_overlay(face.aligned, centres, path, labels=au_names(resolve_aus(dataset)))


if __name__ == "__main__":
    import sys

    astronaut_overlay(sys.argv[1] if len(sys.argv) > 1 else "astronaut_overlay.png")
