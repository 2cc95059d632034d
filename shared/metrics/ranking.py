"""The rank kernel of retrieval evaluation (retrieval-models.md §1.5, anchors-retrieval.md §3.1).

Given a score matrix (queries × gallery) and, per query, the gallery indices of its positives,
the rank of a query is the 0-based position of its best-scoring positive in the descending
ordering of the gallery.  It is computed as the number of gallery items that score strictly
higher than the best positive, so ties are counted in the query's favour and the result never
depends on a sort's tie order.  The public code's argsort-based loop gives the same ranks when
scores are distinct.  Work is chunked over queries; there is no per-query Python loop.
"""

from __future__ import annotations

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor


def _as_positive_table(positives: ArrayLike, n_queries: int, n_gallery: int) -> torch.Tensor:
    table = torch.as_tensor(np.asarray(positives) if not isinstance(positives, torch.Tensor) else positives)
    if table.dtype not in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8):
        raise ValueError(f"positives must hold integer gallery indices, got {table.dtype}")
    table = table.long()
    if table.ndim == 1:
        table = table[:, None]
    if table.ndim != 2 or table.shape[0] != n_queries:
        raise ValueError(f"positives must be (Q,) or (Q, P) with Q={n_queries}, got {tuple(table.shape)}")
    valid = table >= 0
    if not bool(valid.any(dim=1).all()):
        raise ValueError("every query needs at least one positive (a row of positives is all -1)")
    if bool((table >= n_gallery).any()):
        raise ValueError(f"a positive index is outside the gallery of {n_gallery} items")
    return table


def positive_ranks(scores: ArrayLike, positives: ArrayLike, chunk_size: int = 1024) -> np.ndarray:
    """0-based rank of the best positive for each query row of `scores`.

    scores:    (Q, G) similarity matrix, higher is better (numpy or torch, any device).
    positives: (Q,) gallery index per query, or (Q, P) indices with -1 as padding
               (e.g. image→text: the 5 captions of each image).
    Returns an int64 array (Q,).  Retrieval recall R@K is ``100 * mean(ranks < K)``.
    """
    sims = torch.as_tensor(scores) if not isinstance(scores, torch.Tensor) else scores
    if sims.ndim != 2:
        raise ValueError(f"scores must be a 2-D matrix, got shape {tuple(sims.shape)}")
    n_queries, n_gallery = sims.shape
    table = _as_positive_table(positives, n_queries, n_gallery).to(sims.device)
    ranks = torch.empty(n_queries, dtype=torch.int64)
    for start in range(0, n_queries, chunk_size):
        block = sims[start : start + chunk_size]
        idx = table[start : start + chunk_size]
        pos_scores = torch.gather(block, 1, idx.clamp(min=0))
        pos_scores = pos_scores.masked_fill(idx < 0, float("-inf"))
        best = pos_scores.max(dim=1, keepdim=True).values
        ranks[start : start + block.shape[0]] = torch.count_nonzero(block > best, dim=1).cpu()
    return ranks.numpy()
