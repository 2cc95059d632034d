"""R@K on the SynScenes hard subset ("SynScenes"; groups from retrieval/synth/hard.py).

The hard subset is the set of test images that belong to hard groups (base, colour swap,
direction swap, both) and their captions.  Two views are reported:

* `subset`: the standard metrics (`metrics.METRIC_KEYS`) on the sub-matrix hard images × their
  captions, so every image competes with its group twins (and the other hard images);
* `group_i2t_r1` / `group_t2i_r1`: R@1 inside each group only (chance = 100 / group size),
  where a bag-of-words model cannot win because twin captions are permutations of each other.

Both views rank with the shared kernel (`shared.metrics.positive_ranks`), so a tie with a
distractor counts against the query, as everywhere else: a bag-of-words text encoder gives twin
captions identical embeddings, and optimistic ties would hand it the twins for free (a BoW probe on
the default SynScenes scored subset i2t R@1 34 % with optimistic ties, 11 % on the full test set).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from retrieval.evaluation.metrics import evaluate_sims
from shared.errors import UserError
from shared.metrics.ranking import check_finite, positive_ranks


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

    A hit needs the query's best positive to score strictly higher than every group distractor
    (the kernel's pessimistic rule): a model that cannot separate the twins (a bag-of-words text
    encoder gives twin captions the same embedding) scores 0 instead of collecting tie credit.
    """
    n_groups, size = groups.shape
    c = captions_per_image
    caps = groups[:, :, None] * c + np.arange(c)  # (G, S, C)
    block = np.asarray(sims)[groups[:, :, None, None], caps[:, None, :, :]]  # (G, S img, S cap-owner, C)
    own = np.arange(size)
    i2t_pos = np.broadcast_to(own[:, None] * c + np.arange(c), (n_groups, size, c)).reshape(-1, c)
    i2t = positive_ranks(block.reshape(n_groups * size, size * c), i2t_pos, assume_finite=True)
    per_caption = block.transpose(0, 2, 3, 1).reshape(n_groups * size * c, size)  # (G·S cap-owner·C, S img)
    t2i = positive_ranks(per_caption, np.tile(np.repeat(own, c), n_groups), assume_finite=True)
    return float(100 * np.mean(i2t < 1)), float(100 * np.mean(t2i < 1))


def hard_subset_metrics(sims: np.ndarray, groups: np.ndarray, captions_per_image: int = 5,
                        source: str = "similarity matrix") -> dict:
    """Metrics of a test (N, C·N) matrix on the hard subset (see module docstring).

    A NaN or ±inf score in the matrix is a one-line `UserError` naming `source`.
    """
    n_images = sims.shape[0]
    if groups.max() >= n_images:
        raise UserError(f"hard groups refer to image {int(groups.max())} but the matrix has {n_images} images")
    check_finite(sims, source)
    images = np.unique(groups)
    caps = (images[:, None] * captions_per_image + np.arange(captions_per_image)).ravel()
    sub = np.asarray(sims)[np.ix_(images, caps)]
    group_i2t, group_t2i = group_recall_at_1(sims, groups, captions_per_image)
    return {
        "n_images": int(images.size),
        "n_groups": int(groups.shape[0]),
        "subset": evaluate_sims(sub, captions_per_image, assume_finite=True),
        "group_i2t_r1": group_i2t,
        "group_t2i_r1": group_t2i,
        "group_chance_r1": 100.0 / groups.shape[1],
    }
