"""R@K on the SynScenes hard subset (issue 8 "SynScenes"; groups from retrieval/synth/hard.py).

The hard subset is the set of test images that belong to hard groups (base, colour swap,
direction swap, both) and their captions.  Two views are reported:

* `subset`: the standard metrics (`metrics.METRIC_KEYS`) on the sub-matrix hard images × their
  captions, so every image competes with its group twins (and the other hard images);
* `group_i2t_r1` / `group_t2i_r1`: R@1 inside each group only (chance = 100 / group size),
  where a bag-of-words model cannot win because twin captions are permutations of each other.

In both views a tie with a distractor counts against the query (unlike the optimistic rule of the
full-test metrics): a bag-of-words text encoder gives twin captions identical embeddings, and
optimistic ties would hand it the twins for free (a BoW probe on the default SynScenes scored
subset i2t R@1 34 % with optimistic ties, 11 % on the full test set).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from retrieval.evaluation.metrics import evaluate_sims
from shared.errors import UserError


def load_hard_groups(path: str | os.PathLike) -> np.ndarray:
    """(G, S) int64 test-image indices of the groups in a `{split}_hard.json` file."""
    path = Path(path)
    try:
        groups = json.loads(path.read_text(encoding="utf-8"))["groups"]
        table = np.array([g["images"] for g in groups], dtype=np.int64)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UserError(f"{path}: not a hard-subset file ({type(err).__name__}: {err})") from None
    if table.ndim != 2 or table.size == 0:
        raise UserError(f"{path}: expected a non-empty list of equal-size groups")
    return table


def group_recall_at_1(sims: np.ndarray, groups: np.ndarray, captions_per_image: int = 5) -> tuple[float, float]:
    """(i2t, t2i) R@1 in percent when each query ranks only its own group's items.

    A hit needs the query's best positive to score strictly higher than every group distractor:
    ties count as misses, so a model that cannot separate the twins (a bag-of-words text encoder
    gives twin captions the same embedding) scores 0 instead of collecting tie credit.
    """
    n_groups, size = groups.shape
    c = captions_per_image
    caps = groups[:, :, None] * c + np.arange(c)  # (G, S, C)
    block = np.asarray(sims)[groups[:, :, None, None], caps[:, None, :, :]]  # (G, S img, S cap-owner, C)
    own = np.eye(size, dtype=bool)[None, :, :, None]
    best_own = np.where(own, block, -np.inf).max(axis=(2, 3))  # (G, S)
    best_other = np.where(own, -np.inf, block).max(axis=(2, 3))
    i2t_hits = best_own > best_other
    per_caption = block.transpose(0, 2, 3, 1)  # (G, S cap-owner, C, S img)
    own_score = np.take_along_axis(per_caption, np.arange(size)[None, :, None, None].repeat(c, axis=2), axis=3)[..., 0]
    other = np.where(np.eye(size, dtype=bool)[None, :, None, :], -np.inf, per_caption).max(axis=3)
    t2i_hits = own_score > other
    return float(100 * i2t_hits.mean()), float(100 * t2i_hits.mean())


def hard_subset_metrics(sims: np.ndarray, groups: np.ndarray, captions_per_image: int = 5) -> dict:
    """Metrics of a test (N, C·N) matrix on the hard subset (see module docstring)."""
    n_images = sims.shape[0]
    if groups.max() >= n_images:
        raise UserError(f"hard groups refer to image {int(groups.max())} but the matrix has {n_images} images")
    images = np.unique(groups)
    caps = (images[:, None] * captions_per_image + np.arange(captions_per_image)).ravel()
    sub = np.asarray(sims)[np.ix_(images, caps)]  # a copy
    if not np.issubdtype(sub.dtype, np.floating):
        sub = sub.astype(np.float64)
    view, diag = sub.reshape(images.size, images.size, captions_per_image), (np.arange(images.size),) * 2
    view[diag] = np.nextafter(view[diag], -np.inf)  # one ulp down: "strictly higher" now counts ties too
    group_i2t, group_t2i = group_recall_at_1(sims, groups, captions_per_image)
    return {
        "n_images": int(images.size),
        "n_groups": int(groups.shape[0]),
        "subset": evaluate_sims(sub, captions_per_image),
        "group_i2t_r1": group_i2t,
        "group_t2i_r1": group_t2i,
        "group_chance_r1": 100.0 / groups.shape[1],
    }
