"""SynScenes on disk: the SCAN precomp layout plus side arrays (docs/retrieval.md,
docs/retrieval.md), a Karpathy-style JSON, rendered PNGs and the ground-truth scenes.

    OUT/synscenes_precomp/{split}_ims.npy            (N, 36, 2048) float32 region features
                          {split}_caps.txt           5 consecutive captions per image
                          {split}_ids.txt            image ids (OUT/images/{id:06d}.png)
                          {split}_boxes.npy          (N, 36, 4) float32 x0, y0, x1, y1 pixels
                          {split}_image_sizes.npy    (N, 2) int64 w, h
                          {split}_grid.npy           (N, 49, 2048) float32 7×7 grid features
                          {split}_segmentations.npy  (N, 133, 7, 7) float32 pooled logits
                          {split}_seg_maps.npy       (N, 64, 64) uint8 class ids
                          {split}_cat_onehots.npy    (N, 133) float32
                          {split}_scene_graphs.jsonl {"edges": [[subj_region, "rel", obj_region], ...]}
                          {split}_hard.json          hard groups (test split)
    OUT/dataset_synscenes.json  Karpathy style (split "val" = dev)
    OUT/scenes.json             ground truth per image
    OUT/images/{id:06d}.png

Every file is written atomically (big arrays through a memory map on the temporary file).
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from shared.io import atomic_open, atomic_path

PRECOMP = "synscenes_precomp"
KARPATHY_SPLIT = {"train": "train", "dev": "val", "test": "test"}


def precomp_dir(out: str | os.PathLike) -> Path:
    """OUT/synscenes_precomp."""
    return Path(out) / PRECOMP


def image_filename(image_id: int) -> str:
    """PNG name of an image id under OUT/images."""
    return f"{image_id:06d}.png"


@contextlib.contextmanager
def npy_memmap(path: str | os.PathLike, shape: Sequence[int], dtype) -> Iterator[np.memmap]:
    """A writable `.npy` memory map that appears at `path` only when the block succeeds."""
    with atomic_path(path) as tmp:
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=tuple(shape))
        yield array
        array.flush()
        del array


def write_lines(path: str | os.PathLike, lines: Iterable[str]) -> None:
    """One string per line (utf-8), atomically."""
    with atomic_open(path, "w", encoding="utf-8") as handle:
        for line in lines:
            handle.write(f"{line}\n")


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> None:
    """One compact JSON object per line, atomically."""
    write_lines(path, (json.dumps(row, separators=(",", ":")) for row in rows))


def karpathy_entry(image_id: int, split: str, captions: Sequence[str], tokens: Sequence[Sequence[str]]) -> dict:
    """One `images[]` entry of a Karpathy-style dataset JSON (the public codes "Raw-image route")."""
    sentids = [image_id * len(captions) + k for k in range(len(captions))]
    return {
        "filepath": "images",
        "filename": image_filename(image_id),
        "imgid": image_id,
        "id": image_id,
        "split": KARPATHY_SPLIT[split],
        "sentids": sentids,
        "sentences": [
            {"raw": raw, "tokens": list(toks), "imgid": image_id, "sentid": sid}
            for raw, toks, sid in zip(captions, tokens, sentids)
        ],
    }
