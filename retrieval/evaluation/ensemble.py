"""Saved similarity matrices and ensembles by averaging them (retrieval-models.md §1.5 "Ensembles";
anchors-retrieval.md §3.1 item 7: the I-T + T-I and region + grid "*" rows)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from shared.errors import UserError
from shared.io import write_npy


def save_sims(path: str | os.PathLike, sims: np.ndarray) -> None:
    """Atomically write an (images × captions) matrix as float32 `.npy`."""
    sims = np.asarray(sims)
    if sims.ndim != 2:
        raise ValueError(f"a similarity matrix is 2-D (images x captions), got shape {sims.shape}")
    write_npy(path, sims.astype(np.float32, copy=False))


def load_sims(path: str | os.PathLike, mmap: bool = True) -> np.ndarray:
    """Load a saved matrix (memory-mapped by default); one-line `UserError` on a bad file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such similarity file")
    try:
        sims = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except ValueError as err:
        raise UserError(f"{path}: not a .npy array ({str(err).splitlines()[0]})") from None
    if sims.ndim != 2:
        raise UserError(f"{path}: expected a 2-D images x captions matrix, got shape {sims.shape}")
    if not np.issubdtype(sims.dtype, np.floating):
        raise UserError(f"{path}: expected a float matrix, got dtype {sims.dtype}")
    return sims


def average_sims(paths: Sequence[str | os.PathLike]) -> np.ndarray:
    """Mean of several saved matrices of one shape (float32); the ensemble score of §1.5."""
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
