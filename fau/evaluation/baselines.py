"""Two non-neural reference points measured in the same run as the models (the `make train-fau` table).

* ``majority``: every AU predicted as its most frequent training value (probability = the
  training occurrence rate, so AUC is 0.5 and F1 is 0 for AUs active less than half the time).
* ``landmarks``: one logistic regression per AU on the aligned 49-point landmark coordinates
  (98 numbers, centred and scaled by the training statistics), class-balanced — what geometry
  alone can tell.  Unknown labels (−1) are left out of fitting and scoring.

Both fit on the fold's training subjects. ``threshold="validated"`` cuts their probabilities per AU
where F1 is best on the fold's validation subjects, the rule of the models they sit next to
(`fau.evaluation.thresholds`; the majority predictor then becomes "every frame active" wherever that
beats "none": the chance F1 of each AU); ``"fixed"`` cuts at 0.5.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression

from fau.data.table import PreparedDataset
from fau.evaluation.thresholds import FIXED_THRESHOLD, best_f1_thresholds, threshold_mapping
from shared.errors import UserError
from shared.metrics import MultilabelCounts


def landmark_features(data: PreparedDataset, rows: np.ndarray) -> np.ndarray:
    """(N, 98) aligned landmark coordinates of `rows` (missing landmarks become 0 after scaling)."""
    return data.landmarks[rows].reshape(len(rows), -1).astype(np.float64)


def majority_baseline(data: PreparedDataset, fold: str, rows: np.ndarray | None = None) -> np.ndarray:
    """Probabilities of the majority predictor (the training occurrence rate per AU) for `rows`
    (default: the fold's test rows)."""
    labels = data.labels()
    train = data.indices(fold, "train")
    rows = data.indices(fold, "test") if rows is None else rows
    known = labels[train] >= 0
    rate = np.where(known, labels[train] == 1, 0).sum(0) / np.maximum(known.sum(0), 1)
    prob = np.where(rate >= 0.5, np.maximum(rate, 0.5), np.minimum(rate, 0.499))
    return np.repeat(prob[None, :], len(rows), axis=0)


class LandmarkBaseline:
    """Per-AU logistic regression on aligned landmarks (scikit-learn, balanced class weights)."""

    def __init__(self, seed: int = 0, max_iter: int = 500) -> None:
        self.seed, self.max_iter = seed, max_iter
        self.mean: np.ndarray | None = None
        self.scale: np.ndarray | None = None
        self.models: list[LogisticRegression | float] = []

    def fit(self, features: np.ndarray, labels: np.ndarray) -> "LandmarkBaseline":
        finite = np.isfinite(features).all(1)
        self.mean = features[finite].mean(0)
        self.scale = features[finite].std(0) + 1e-6
        x = self._scale(features)
        self.models = []
        for c in range(labels.shape[1]):
            keep = (labels[:, c] >= 0) & finite
            y = labels[keep, c]
            if y.min() == y.max():  # a constant AU in training: predict its value
                self.models.append(float(y[0]))
                continue
            clf = LogisticRegression(max_iter=self.max_iter, class_weight="balanced", random_state=self.seed)
            self.models.append(clf.fit(x[keep], y))
        return self

    def _scale(self, features: np.ndarray) -> np.ndarray:
        return np.nan_to_num((features - self.mean) / self.scale)

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        x = self._scale(features)
        columns = [np.full(len(x), m) if isinstance(m, float) else m.predict_proba(x)[:, 1] for m in self.models]
        return np.stack(columns, axis=1)


def run_baselines(data: PreparedDataset, fold: str, seed: int = 0,
                  threshold: str = "fixed") -> dict[str, dict[str, Any]]:
    """Score both baselines on the fold's test subjects: {name: {"scores": summary, "seconds": t}},
    plus ``thresholds`` {AU: cut} with ``threshold="validated"`` (module docstring)."""
    if threshold not in ("fixed", "validated"):
        raise ValueError(f"threshold must be 'fixed' or 'validated', got {threshold!r}")
    labels = data.labels().astype(np.int64)
    train, val, test = data.indices(fold, "train"), data.indices(fold, "val"), data.indices(fold, "test")
    if threshold == "validated" and len(val) == 0:
        raise UserError(f"{data.root}: fold {fold} has no validation subjects to choose thresholds on")
    out: dict[str, dict[str, Any]] = {}
    began = time.time()
    probs = {"majority": (majority_baseline(data, fold, val), majority_baseline(data, fold))}
    out["majority"] = {"seconds": time.time() - began}
    began = time.time()
    model = LandmarkBaseline(seed).fit(landmark_features(data, train), labels[train])
    probs["landmarks"] = (model.predict_proba(landmark_features(data, val)) if len(val) else None,
                          model.predict_proba(landmark_features(data, test)))
    out["landmarks"] = {"seconds": time.time() - began}
    for name, (val_prob, test_prob) in probs.items():
        cuts = best_f1_thresholds(val_prob, labels[val]) if threshold == "validated" else FIXED_THRESHOLD
        counts = MultilabelCounts(labels.shape[1], cuts)
        counts.update(test_prob, labels[test])
        out[name]["scores"] = counts.summary(data.columns)
        if threshold == "validated":
            out[name]["thresholds"] = threshold_mapping(cuts, data.columns)
    return out
