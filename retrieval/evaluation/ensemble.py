"""Saved similarity matrices and ensembles by averaging them: HiRE*'s rows are the "averaged
similarity scores of image-to-text version and text-to-image version" (Ge, 2024, PhD thesis, §7.6,
Tables 7.1-7.3); 3SHNet's region + grid rows combine a region and a grid model (§8.4.2).

Every loaded matrix must be finite: a NaN or ±inf score is a one-line `UserError` naming the
file that holds it, before any averaging (the average would hide which file it came from)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from shared.errors import UserError
from shared.io import open_npy, write_npy
from shared.metrics.ranking import check_finite


def save_sims(path: str | os.PathLike, sims: np.ndarray) -> None:
    """Atomically write an (images × captions) matrix as float32 `.npy`."""
    sims = np.asarray(sims)
    if sims.ndim != 2:
        raise ValueError(f"a similarity matrix is 2-D (images x captions), got shape {sims.shape}")
    write_npy(path, sims.astype(np.float32, copy=False))


def load_sims(path: str | os.PathLike, mmap: bool = True) -> np.ndarray:
    """Load a saved matrix (memory-mapped by default); one-line `UserError` on a bad file.

    The file is read once, in row blocks, to refuse NaN / ±inf scores (named by the path).
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such similarity file")
    sims = open_npy(path)
    if not mmap:
        sims = np.array(sims)
    if sims.ndim != 2:
        raise UserError(f"{path}: expected a 2-D images x captions matrix, got shape {sims.shape}")
    if not np.issubdtype(sims.dtype, np.floating):
        raise UserError(f"{path}: expected a float matrix, got dtype {sims.dtype}")
    if sims.size == 0:
        raise UserError(f"{path}: the similarity matrix is empty (shape {sims.shape})")
    check_finite(sims, str(path))
    return sims


def average_sims(paths: Sequence[str | os.PathLike]) -> np.ndarray:
    """Mean of several saved matrices of one shape (float32); the ensemble score."""
    if not paths:
        raise UserError("average_sims needs at least one similarity file")
    first = load_sims(paths[0])
    total = np.array(first, dtype=np.float32)
    for path in paths[1:]:
        sims = load_sims(path)
        if sims.shape != first.shape:
            raise UserError(f"{path}: shape {sims.shape} does not match {paths[0]} shape {first.shape}")
        total += sims
    total /= len(paths)
    return total
