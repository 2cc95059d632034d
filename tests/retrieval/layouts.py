"""Rewrite a tiny precomp split into the one-row-per-caption layout of the released F30K dev split."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

CAPTIONS_PER_IMAGE = 5


def repeat_per_caption(folder: Path, split: str, side_arrays: Sequence[str] = (), ids: bool = True,
                       scene_graphs: bool = False) -> None:
    """Repeat every row of ``{split}_ims.npy`` (and of the named side arrays) 5 times, one row per caption;
    with `ids` / `scene_graphs`, one id / scene-graph line per caption too."""
    for stem in ("ims", *side_arrays):
        path = folder / f"{split}_{stem}.npy"
        np.save(path, np.repeat(np.load(path), CAPTIONS_PER_IMAGE, axis=0))
    for wanted, stem in ((ids, "ids.txt"), (scene_graphs, "scene_graphs.jsonl")):
        path = folder / f"{split}_{stem}"
        if wanted and path.is_file():
            lines = path.read_text(encoding="utf-8").splitlines()
            path.write_text("".join(f"{line}\n" for line in lines for _ in range(CAPTIONS_PER_IMAGE)), encoding="utf-8")
