"""Multi-label classification metrics for AU recognition (the thesis reports F1-frame, e.g. Tab. 3.2; docs/fau.md).

Labels are 1 (present), 0 (absent) or -1 (unknown: BP4D's code 9); unknown entries are skipped.
F1 and accuracy use a threshold (0.5 by default, or one per class) and accumulate TP/FP/FN/TN over a whole
split before dividing ("F1-frame"), never averaging per batch.  ROC-AUC is computed from all
scores of the split by the Mann-Whitney rank statistic with tied scores given their mean rank,
which equals scikit-learn's `roc_auc_score`.  Macro averages are plain means over classes.
Where a quantity is undefined, the convention follows scikit-learn with ``zero_division=0`` for
F1, and NaN for the AUC of a class with a single label value (left out of the macro mean).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor


def _to_numpy(x: ArrayLike) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _check(scores: np.ndarray, labels: np.ndarray) -> None:
    if scores.shape != labels.shape or scores.ndim != 2:
        raise ValueError(f"scores {scores.shape} and labels {labels.shape} must both be (N, C)")
    bad = ~np.isin(labels, (-1, 0, 1))
    if bad.any():
        raise ValueError(f"labels must be -1, 0 or 1; found {np.unique(labels[bad])[:5]}")


@dataclass
class MultilabelCounts:
    """Running TP/FP/FN/TN per class plus the scores needed for ROC-AUC, over a whole split."""

    num_classes: int
    threshold: float | np.ndarray = 0.5            # one value, or (C,) per class
    tp: np.ndarray = field(init=False)
    fp: np.ndarray = field(init=False)
    fn: np.ndarray = field(init=False)
    tn: np.ndarray = field(init=False)
    _scores: list[np.ndarray] = field(init=False, default_factory=list)
    _labels: list[np.ndarray] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        if np.ndim(self.threshold) not in (0, 1) or np.size(self.threshold) not in (1, self.num_classes):
            raise ValueError(f"threshold must be one value or {self.num_classes} values, got {np.shape(self.threshold)}")
        zeros = np.zeros(self.num_classes, dtype=np.int64)
        self.tp, self.fp, self.fn, self.tn = zeros.copy(), zeros.copy(), zeros.copy(), zeros.copy()

    def update(self, scores: ArrayLike, labels: ArrayLike) -> None:
        """Add a batch: `scores` are probabilities in [0, 1], `labels` in {-1, 0, 1}; both (N, C)."""
        s, y = _to_numpy(scores), _to_numpy(labels).astype(np.int64)
        _check(s, y)
        if s.shape[1] != self.num_classes:
            raise ValueError(f"expected {self.num_classes} classes, got {s.shape[1]}")
        pred = s >= np.asarray(self.threshold, dtype=np.float64)
        pos, neg = y == 1, y == 0
        self.tp += (pred & pos).sum(0)
        self.fp += (pred & neg).sum(0)
        self.fn += (~pred & pos).sum(0)
        self.tn += (~pred & neg).sum(0)
        self._scores.append(s)
        self._labels.append(y)

    def f1(self) -> np.ndarray:
        denom = 2 * self.tp + self.fp + self.fn
        return np.divide(2 * self.tp, denom, out=np.zeros(self.num_classes), where=denom > 0)

    def accuracy(self) -> np.ndarray:
        total = self.tp + self.fp + self.fn + self.tn
        return np.divide(self.tp + self.tn, total, out=np.zeros(self.num_classes), where=total > 0)

    def auc(self) -> np.ndarray:
        if not self._scores:
            return np.full(self.num_classes, np.nan)
        return _roc_auc(np.concatenate(self._scores), np.concatenate(self._labels))

    def summary(self, names: list[str] | None = None) -> dict[str, dict[str, float]]:
        """Per-class and macro F1 / accuracy / AUC as a JSON-ready dict (values in [0, 1])."""
        names = names or [str(i) for i in range(self.num_classes)]
        f1, acc, auc = self.f1(), self.accuracy(), self.auc()
        out = {name: {"f1": float(f1[i]), "accuracy": float(acc[i]), "auc": float(auc[i])} for i, name in enumerate(names)}
        out["macro"] = {"f1": float(f1.mean()), "accuracy": float(acc.mean()), "auc": _nanmean(auc)}
        return out


def _nanmean(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else float("nan")


def _roc_auc(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-class ROC-AUC by the rank-sum statistic, skipping labels of -1."""
    out = np.full(scores.shape[1], np.nan)
    for c in range(scores.shape[1]):
        keep = labels[:, c] >= 0
        s, y = scores[keep, c], labels[keep, c]
        n_pos = int(y.sum())
        n_neg = y.size - n_pos
        if n_pos == 0 or n_neg == 0:
            continue
        order = np.argsort(s, kind="mergesort")
        sorted_s = s[order]
        ranks = np.empty(s.size, dtype=np.float64)
        # mean 1-based rank for each run of tied scores
        _, first, counts = np.unique(sorted_s, return_index=True, return_counts=True)
        mean_rank = first + (counts + 1) / 2.0
        ranks[order] = np.repeat(mean_rank, counts)
        out[c] = (ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)
    return out


def multilabel_f1(scores: ArrayLike, labels: ArrayLike, threshold: float = 0.5) -> tuple[np.ndarray, float]:
    """Per-class F1 at `threshold` over the whole input, and its macro mean (-1 labels skipped)."""
    counts = MultilabelCounts(np.shape(labels)[1], threshold)
    counts.update(scores, labels)
    f1 = counts.f1()
    return f1, float(f1.mean())


def multilabel_accuracy(scores: ArrayLike, labels: ArrayLike, threshold: float = 0.5) -> tuple[np.ndarray, float]:
    """Per-class accuracy at `threshold`, and its macro mean (-1 labels skipped)."""
    counts = MultilabelCounts(np.shape(labels)[1], threshold)
    counts.update(scores, labels)
    acc = counts.accuracy()
    return acc, float(acc.mean())


def multilabel_auc(scores: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, float]:
    """Per-class ROC-AUC (NaN where a class has one label value) and the mean over defined classes."""
    s, y = _to_numpy(scores), _to_numpy(labels).astype(np.int64)
    _check(s, y)
    auc = _roc_auc(s, y)
    return auc, _nanmean(auc)
