"""The rank kernel of retrieval evaluation, with pessimistic ties.

Recall@K is "the percentage of ground-truth instances successfully matched among the top K
rankings" (Ge, 2024, PhD thesis "Towards context-aware image semantic representation via modality
relational reasoning and embedding", §2.3.3; rSum is its Eq. 2.1).  The public VSE++/SCAN code
reads the rank of a query off ``argsort(scores)[::-1]``, so where a positive ties with a negative the
result depends on the sort's tie order.  This kernel fixes the rule instead, against the query:

    rank(q) = #{ negative gallery items g of q : s(q, g) >= s(q, best positive of q) }

(0-based).  Other positives of the same query never count against it (image→text: the other four
captions of the image).  A tie between the best positive and a negative is a miss, so a degenerate
score matrix cannot be flattered: a constant matrix gives every query the worst rank (the number
of its negatives).  Where scores are distinct this equals the argsort loop's rank.

Scores must be finite: NaN compares false with everything (a NaN row would rank first) and a
+inf positive outranks every negative, so `positive_ranks` refuses them (`check_finite`).  Work is
chunked over queries; there is no per-query Python loop.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from shared.errors import UserError

ArrayLike = np.ndarray | torch.Tensor
RANGE_CHUNK_ELEMENTS = 2**24  # scores per (min, max) reduction step (64 MB of float32)


def _as_tensor(scores: ArrayLike) -> torch.Tensor:
    if isinstance(scores, torch.Tensor):
        return scores
    with warnings.catch_warnings():  # a read-only memory map is wrapped, not copied; nothing writes to it
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.as_tensor(np.asarray(scores))


def _torch_reducible(array: np.ndarray) -> bool:
    return array.dtype.isnative and array.dtype in (np.float16, np.float32, np.float64)


def score_range(scores: ArrayLike) -> tuple[float, float]:
    """(min, max) of a score matrix in one streamed pass without a copy of the matrix.

    NaN anywhere makes both NaN (the reduction propagates it) and an infinite entry shows up as an
    infinite min or max, so the pair also answers "is every score finite?".  A NumPy array (also a
    read-only memory map) is wrapped, not copied, and reduced in row blocks of about
    `RANGE_CHUNK_ELEMENTS` scores; a transposed view is reduced in memory order.  Dtypes torch cannot
    wrap (big-endian, long double, integers) are reduced by NumPy, block by block.
    """
    if isinstance(scores, torch.Tensor):
        sims = scores if scores.is_floating_point() else scores.double()
    else:
        array = np.asarray(scores)
        if not _torch_reducible(array):
            return _numpy_range(array)
        sims = _as_tensor(array)
    if sims.numel() == 0:
        raise ValueError("score_range of an empty matrix")
    if sims.ndim == 2 and not sims.is_contiguous() and sims.T.is_contiguous():
        sims = sims.T  # min and max do not depend on the order: read memory front to back
    rows = max(1, RANGE_CHUNK_ELEMENTS // max(1, sims[0].numel()))
    lo, hi = float("inf"), float("-inf")
    for start in range(0, sims.shape[0], rows):
        block_lo, block_hi = (float(v) for v in torch.aminmax(sims[start : start + rows]))
        if np.isnan(block_lo) or np.isnan(block_hi):
            return float("nan"), float("nan")
        lo, hi = min(lo, block_lo), max(hi, block_hi)
    return lo, hi


def _numpy_range(array: np.ndarray) -> tuple[float, float]:
    if array.size == 0:
        raise ValueError("score_range of an empty matrix")
    rows = max(1, RANGE_CHUNK_ELEMENTS // max(1, array.size // max(1, array.shape[0])))
    lo, hi = np.inf, -np.inf
    for start in range(0, array.shape[0], rows):
        block = array[start : start + rows]
        block_lo, block_hi = float(np.min(block)), float(np.max(block))  # np.min / np.max propagate NaN
        if np.isnan(block_lo) or np.isnan(block_hi):
            return float("nan"), float("nan")
        lo, hi = min(lo, block_lo), max(hi, block_hi)
    return lo, hi


def _first_nonfinite(scores: ArrayLike) -> tuple[int, int, float]:
    """(row, column, value) of the first non-finite score, scanning row blocks (error path only)."""
    array = scores.detach().cpu().double().numpy() if isinstance(scores, torch.Tensor) else np.asarray(scores)
    rows = max(1, RANGE_CHUNK_ELEMENTS // max(1, array.shape[1]))
    for start in range(0, array.shape[0], rows):
        bad = np.argwhere(~np.isfinite(array[start : start + rows]))
        if len(bad):
            row, col = start + int(bad[0][0]), int(bad[0][1])
            return row, col, float(array[row, col])
    raise AssertionError("no non-finite score found")


def check_finite(scores: ArrayLike, label: str) -> tuple[float, float]:
    """Return (min, max) of `scores`; a one-line `UserError` naming `label` if any is NaN or ±inf.

    `label` says where the matrix came from (a ``.npy`` file, "epoch 3 dev", a checkpoint and split).
    """
    lo, hi = score_range(scores)
    if np.isfinite(lo) and np.isfinite(hi):
        return lo, hi
    row, col, value = _first_nonfinite(scores)
    raise UserError(f"{label}: the score matrix holds {value} at row {row}, column {col} "
                    f"(scores must be finite; NaN or inf cannot be ranked)")


def _as_positive_table(positives: ArrayLike, n_queries: int, n_gallery: int) -> torch.Tensor:
    table = positives if isinstance(positives, torch.Tensor) else torch.as_tensor(np.array(positives))  # small: copied
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
    if table.shape[1] > 1:
        ordered = table.sort(dim=1).values
        if bool(((ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] >= 0)).any()):
            raise ValueError("a query lists the same positive twice")
    return table


def positive_ranks(scores: ArrayLike, positives: ArrayLike, chunk_size: int = 1024,
                   assume_finite: bool = False) -> np.ndarray:
    """0-based pessimistic rank of the best positive for each query row of `scores` (see module doc).

    scores:    (Q, G) similarity matrix, higher is better (numpy or torch, any device; integer
               scores are compared as float64).
    positives: (Q,) gallery index per query, or (Q, P) distinct indices with -1 as padding
               (e.g. image→text: the 5 captions of each image).
    assume_finite: skip the finiteness check because the caller already ran `check_finite` on
               this matrix (it names the matrix in its error); otherwise a non-finite score is a
               `UserError`.
    Returns an int64 array (Q,): the number of negatives scoring >= the best positive.  Retrieval
    recall R@K is ``100 * mean(ranks < K)``.
    """
    sims = _as_tensor(scores)
    if sims.ndim != 2:
        raise ValueError(f"scores must be a 2-D matrix, got shape {tuple(sims.shape)}")
    if not sims.is_floating_point():
        sims = sims.double()
    n_queries, n_gallery = sims.shape
    table = _as_positive_table(positives, n_queries, n_gallery).to(sims.device)
    if not assume_finite and n_queries and n_gallery:
        check_finite(sims, "scores")
    ranks = torch.empty(n_queries, dtype=torch.int64)
    for start in range(0, n_queries, chunk_size):
        block = sims[start : start + chunk_size]
        idx = table[start : start + chunk_size]
        valid = idx >= 0
        pos_scores = torch.gather(block, 1, idx.clamp(min=0)).masked_fill(~valid, float("-inf"))
        best = pos_scores.max(dim=1, keepdim=True).values
        at_or_above = torch.count_nonzero(block >= best, dim=1)
        positives_at_or_above = torch.count_nonzero(valid & (pos_scores >= best), dim=1)
        ranks[start : start + block.shape[0]] = (at_or_above - positives_at_or_above).cpu()
    return ranks.numpy()


BLOCK_ELEMENTS = 2**20  # scores per row block of `grouped_ranks` (8 MB of float64: the block stays in cache)


def grouped_ranks(scores: np.ndarray, group: int, block_rows: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Pessimistic ranks of both directions of an (N, G·N) matrix whose column j belongs to row j // G.

    rows:    rank(i) = #{ j not in row i's G columns : s[i, j] >= max of s[i, Gi .. Gi+G-1] }
    columns: rank(j) = #{ i != j // G : s[i, j] >= s[j // G, j] }

    the same numbers as `positive_ranks` of the matrix (positives = each row's G columns) and of its
    transpose (positive = the column's row), but in one front-to-back pass over row blocks of the
    matrix in its own dtype: no transposed (strided) pass and no float conversion, so a read-only
    memory map of a saved ``.npy`` is read once, in file order.  The column ranks are accumulated
    per block as counts of rows at or above each column's positive score (read first from the G-wide
    band along the diagonal).  `scores` is anything 2-D that slices by rows into arrays (an array or
    a memory map); its scores must be finite (`check_finite`), since NaN compares false.
    Returns (row ranks (N,), column ranks (G·N,)), int64, 0-based.
    """
    n_rows, n_cols = scores.shape
    if group < 1 or n_cols != group * n_rows:
        raise ValueError(f"grouped_ranks needs an N x {group}N matrix, got {n_rows} x {n_cols}")
    step = block_rows or max(1, BLOCK_ELEMENTS // max(1, n_cols))
    own = np.empty((n_rows, group), dtype=np.asarray(scores[:1]).dtype)  # s[i, Gi .. Gi+G-1]
    for start in range(0, n_rows, step):
        stop = min(n_rows, start + step)
        band = np.asarray(scores[start:stop, group * start : group * stop]).reshape(stop - start, stop - start, group)
        own[start:stop] = band[np.arange(stop - start), np.arange(stop - start)]
    best_row = own.max(axis=1)
    own_at_or_above = np.count_nonzero(own >= best_row[:, None], axis=1)  # the row's own columns (>= 1)
    best_col = own.reshape(-1)  # s[j // G, j]
    row_ranks = np.empty(n_rows, dtype=np.int64)
    col_counts = np.zeros(n_cols, dtype=np.int64)
    for start in range(0, n_rows, step):
        block = np.asarray(scores[start : start + step])
        row_ranks[start : start + len(block)] = np.count_nonzero(block >= best_row[start : start + len(block), None], axis=1)
        col_counts += np.count_nonzero(block >= best_col[None, :], axis=0)
    return row_ranks - own_at_or_above, col_counts - 1  # a column's own positive is at or above itself
