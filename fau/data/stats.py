"""Training-set label statistics: AU class-balance weights and the AU co-occurrence prior.

Labels are int (N, C) matrices with 1 active, 0 inactive and -1 unknown; unknown entries are
ignored everywhere (per AU for the weights, per AU pair for the prior).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

WeightNorm = Literal["sum_to_n", "sum_to_one"]


def occurrence_rates(labels: np.ndarray) -> np.ndarray:
    """Per-AU occurrence rate r_i = #active / #known (NaN for an AU with no known label)."""
    labels = np.asarray(labels)
    known = (labels >= 0).sum(axis=0)
    active = (labels == 1).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(known > 0, active / np.maximum(known, 1), np.nan)


def class_weights(labels: np.ndarray, norm: WeightNorm = "sum_to_n") -> np.ndarray:
    """AU class-balance weights: "the data balance weights ... employed in Shao et al. (2018)" (thesis
    §3.2.1, eq. 3.2), as JAA-Net's ``write_AU_weight.py`` computes them.

    w_i = n * (1/r_i) / sum_j (1/r_j) with r_i the occurrence rate of AU i among its known labels
    (``sum_to_n``, default; docs/fau.md, decision 'class-weight normalisation'), or
    w_i = (1/r_i) / sum_j (1/r_j) (``sum_to_one``, VL-FAU's eq. 5.9 as printed). An AU that never occurs is counted as if it occurred once (r_i = 1/#known),
    so its weight stays finite; an AU with no known label at all gets weight 0 (1/r_i := 0).
    """
    labels = np.asarray(labels)
    known = (labels >= 0).sum(axis=0).astype(np.float64)
    active = np.maximum((labels == 1).sum(axis=0), 1).astype(np.float64)
    inverse = np.where(known > 0, known / active, 0.0)
    total = inverse.sum()
    if total == 0:
        raise ValueError("no known labels: class weights are undefined")
    scale = labels.shape[1] if norm == "sum_to_n" else 1.0
    return scale * inverse / total


def grade_weights(grades: np.ndarray, n_grades: int = 4) -> np.ndarray:
    """Paralysis-grade weights: inverse class frequency normalised to mean 1 ("obtained by counting the
    different classes in the training set", thesis eq. 3.3; docs/fau.md, decision 'paralysis grade
    weights'); an absent grade counts once."""
    counts = np.maximum(np.bincount(np.asarray(grades, dtype=np.int64), minlength=n_grades), 1)
    inverse = 1.0 / counts[:n_grades]
    return n_grades * inverse / inverse.sum()


def conditional_agreement(labels: np.ndarray) -> np.ndarray:
    """P_ij = 1/2 (P(a_i=1 | a_j=1) + P(a_i=0 | a_j=0)) (MGRR-Net, thesis eq. 4.1).

    Each pair uses the frames where both AUs are known. A conditional whose condition never
    holds (AU j never active, or never inactive) has no evidence and is set to 0.5.
    """
    labels = np.asarray(labels)
    known = (labels >= 0).astype(np.float64)
    on = (labels == 1).astype(np.float64)
    off = (labels == 0).astype(np.float64)
    both_on = on.T @ on              # [i, j] = #(a_i=1, a_j=1)
    both_off = off.T @ off           # [i, j] = #(a_i=0, a_j=0)
    j_on = known.T @ on              # [i, j] = #(a_i known, a_j=1)
    j_off = known.T @ off            # [i, j] = #(a_i known, a_j=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        p11 = np.where(j_on > 0, both_on / j_on, 0.5)
        p00 = np.where(j_off > 0, both_off / j_off, 0.5)
    return 0.5 * (p11 + p00)


def cooccurrence_prior(labels: np.ndarray) -> np.ndarray:
    """MGRR-Net prior adjacency A_ij = |2 (P_ij - 0.5)| (thesis eq. 4.2, "following X. Niu ... (2019)").

    Asymmetric as defined; the diagonal is the formula's value (1 for an AU seen both active and
    inactive) — the model decides whether to zero it (docs/fau.md, decision 'prior adjacency').
    """
    return np.abs(2.0 * (conditional_agreement(labels) - 0.5))
