"""Tiny retrieval datasets written at test time: SCAN / VSE∞ precomp trees and a Karpathy JSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SHAPES = ("cube", "sphere", "cylinder", "cone")
COLOURS = ("red", "blue", "green", "yellow")
SIZES = ("small", "large")
RELATIONS = ("left of", "right of", "behind", "in front of", "next to")
DEFAULT_SPLITS = {"train": 4, "dev": 3, "test": 2}


def caption(rng: np.random.Generator) -> str:
    """One SynScenes-like caption: 'a small red cube left of a blue sphere'."""
    s1, s2 = rng.choice(SHAPES, 2, replace=False)
    c1, c2 = rng.choice(COLOURS, 2, replace=False)
    size = rng.choice(SIZES)
    return f"a {size} {c1} {s1} {rng.choice(RELATIONS)} a {c2} {s2}"


def write_split(folder: Path, split: str, n_images: int, *, dim: int, regions: int, rng: np.random.Generator, side: bool) -> None:
    """All files of one split: features, 5 captions per image, ids and (optionally) every side array."""
    np.save(folder / f"{split}_ims.npy", rng.standard_normal((n_images, regions, dim)).astype(np.float32))
    (folder / f"{split}_caps.txt").write_text("".join(caption(rng) + "\n" for _ in range(5 * n_images)), encoding="utf-8")
    (folder / f"{split}_ids.txt").write_text("".join(f"{1000 + i}\n" for i in range(n_images)), encoding="utf-8")
    if not side:
        return
    x0 = rng.uniform(0, 40, (n_images, regions, 1))
    y0 = rng.uniform(0, 30, (n_images, regions, 1))
    w = rng.uniform(4, 24, (n_images, regions, 1))
    h = rng.uniform(4, 18, (n_images, regions, 1))
    np.save(folder / f"{split}_boxes.npy", np.concatenate([x0, y0, x0 + w, y0 + h], axis=-1).astype(np.float32))
    np.save(folder / f"{split}_image_sizes.npy", np.tile(np.array([[64, 48]], dtype=np.int64), (n_images, 1)))
    np.save(folder / f"{split}_grid.npy", rng.standard_normal((n_images, 49, dim)).astype(np.float32))
    np.save(folder / f"{split}_segmentations.npy", rng.standard_normal((n_images, 133, 7, 7)).astype(np.float32))
    np.save(folder / f"{split}_seg_maps.npy", rng.integers(0, 133, (n_images, 64, 64)).astype(np.uint8))
    np.save(folder / f"{split}_cat_onehots.npy", (rng.random((n_images, 133)) < 0.05).astype(np.float32))
    lines = [json.dumps({"edges": [[0, "left of", 1], [2, "on", 3]]}) for _ in range(n_images)]
    (folder / f"{split}_scene_graphs.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_precomp(
    root: Path,
    *,
    name: str = "tiny",
    layout: str = "scan",
    splits: dict[str, int] | None = None,
    dim: int = 16,
    regions: int = 36,
    side: bool = True,
    seed: int = 0,
) -> Path:
    """Write a tiny dataset under `root` in the SCAN (``NAME_precomp``) or VSE∞ (``NAME/precomp``) layout."""
    folder = root / f"{name}_precomp" if layout == "scan" else root / name / "precomp"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for split, n_images in (splits or DEFAULT_SPLITS).items():
        write_split(folder, split, n_images, dim=dim, regions=regions, rng=rng, side=side)
    return folder


def write_karpathy(path: Path, splits: dict[str, int], *, seed: int = 0, sentences: int = 5) -> Path:
    """A Karpathy-style JSON with `splits` = {karpathy split label: number of images}."""
    rng = np.random.default_rng(seed)
    images = []
    for label, count in splits.items():
        for _ in range(count):
            k = len(images)
            images.append(
                {
                    "filename": f"img_{k:05d}.jpg",
                    "split": label,
                    "cocoid": 500000 + k,
                    "filepath": "val2014",
                    "sentences": [{"raw": caption(rng).capitalize() + ".", "tokens": []} for _ in range(sentences)],
                }
            )
    path.write_text(json.dumps({"images": images, "dataset": "coco"}), encoding="utf-8")
    return path
