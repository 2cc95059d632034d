"""Sharded, resumable scoring of a pairwise model's (image × caption) tiles.

Under ``torchrun --nproc_per_node N -m retrieval evaluate ...`` the tiles of `pairwise_similarity`
are dealt round-robin to the ranks (tile k goes to rank k mod N); each rank writes its tiles into a
matrix of zeros and one all-reduce (sum) joins them, so the result is bit for bit the matrix one
process computes (each pair is scored by exactly one rank with the same tile shape, and x + 0 = x).

With a journal folder (``--journal DIR``) every finished tile is written there atomically as
``i{row}_t{col}.npy`` before the next one starts; a rerun after a crash loads the finished tiles and
scores only the rest.  ``manifest.json`` names what the tiles belong to (checkpoint save id, data,
split, matrix and tile shape); a journal of another evaluation is refused in one line rather than
mixed in.  The folder must be visible to every rank (one machine, or a shared file system); it is
removed after the matrix is complete.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from shared.errors import UserError
from shared.io import open_npy, write_json, write_npy

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Shard:
    """This process's share of the tiles: rank `rank` of `world` (one process: 0 of 1)."""

    rank: int = 0
    world: int = 1

    def mine(self, steps: list[tuple[int, int]]) -> list[tuple[int, int]]:
        return steps[self.rank::self.world]


class TileJournal:
    """Finished tiles of one evaluation, kept on disk so a rerun continues (module docstring)."""

    def __init__(self, folder: str | Path, identity: Mapping[str, Any]):
        self.folder, self.identity = Path(folder), dict(identity)

    def check(self, identity: Mapping[str, Any] | None = None) -> None:
        """Refuse a journal whose manifest names another evaluation (called before any encoding with
        the checkpoint/data/split identity, and again once the tile shape is known)."""
        identity = self.identity if identity is None else identity
        manifest = self.folder / MANIFEST
        if self.folder.exists() and not self.folder.is_dir():
            raise UserError(f"--journal {self.folder}: exists and is not a folder")
        if not manifest.is_file():
            return
        try:
            found = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise UserError(f"--journal {self.folder}: {MANIFEST} is unreadable; remove the folder") from None
        keys = set(identity) if "tile" not in identity else set(found) | set(identity)
        differs = sorted(k for k in keys if not isinstance(found, dict) or found.get(k) != identity.get(k))
        if differs:
            raise UserError(f"--journal {self.folder}: holds tiles of another evaluation (differs in "
                            f"{', '.join(differs)}); remove it or pass another folder")

    def open(self, tile: tuple[int, int], shape: tuple[int, int], create: bool) -> "TileJournal":
        """Check (and, on rank 0, create) the manifest for this matrix and tile shape."""
        identity = {**self.identity, "tile": list(tile), "shape": list(shape)}
        manifest = self.folder / MANIFEST
        self.check(identity)
        if not manifest.is_file() and create:
            self.folder.mkdir(parents=True, exist_ok=True)
            write_json(manifest, identity)
        self.identity = identity
        return self

    def _path(self, row: int, col: int) -> Path:
        return self.folder / f"i{row}_t{col}.npy"

    def load(self, row: int, col: int, shape: tuple[int, int]) -> np.ndarray | None:
        """A finished tile of this shape, or None (absent; an unreadable leftover is scored again)."""
        path = self._path(row, col)
        if not path.is_file():
            return None
        try:
            block = np.asarray(open_npy(path))
        except UserError as err:
            log.warning("%s; scoring the tile again", err)
            return None
        return block if block.shape == shape and block.dtype == np.float32 else None

    def save(self, row: int, col: int, block: np.ndarray) -> None:
        write_npy(self._path(row, col), np.ascontiguousarray(block, dtype=np.float32))

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
