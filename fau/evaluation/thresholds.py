"""Per-AU decision thresholds chosen on held-out training subjects (``train.threshold: validated``).

F1-frame depends on where the probabilities are cut. The thesis reports F1 without saying where
(docs/fau.md, decision 'decision threshold'): the paper configs cut at 0.5. With rare AUs a model
trained with cross-entropy ranks well but seldom crosses 0.5 on new subjects (the SynFACS tiny runs:
validation AUC 0.85, F1 at 0.5 0.18), so the ``validated`` rule picks, per AU, the cut with the best
F1 on the validation subjects of the fold — never on the test subjects — stores it in the
checkpoint's sidecar, and `fau eval` / `fau predict` apply it. The default run's baselines get the
same rule on the same rows (`fau.evaluation.baselines`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

#: the cut of the ``fixed`` rule (and of an AU without a positive validation label)
FIXED_THRESHOLD = 0.5


def best_f1_thresholds(prob: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(C,) thresholds: for each column the cut with the highest F1 on (`prob`, `labels`), −1 labels skipped.

    A frame is predicted active when its probability is >= the threshold. The candidate cuts lie
    halfway between consecutive distinct scores (a cut never separates equal scores, so ties cannot
    help); among equal F1 the highest cut (fewest positives) wins. A column without a positive or
    without a negative label keeps `FIXED_THRESHOLD`. Constant scores give the all-active cut, whose
    F1 is the chance level 2p / (1 + p) of an AU with occurrence p.
    """
    prob, labels = np.asarray(prob, dtype=np.float64), np.asarray(labels)
    if prob.shape != labels.shape or prob.ndim != 2:
        raise ValueError(f"prob {prob.shape} and labels {labels.shape} must both be (N, C)")
    if not np.isfinite(prob).all():
        raise ValueError("probabilities must be finite to choose thresholds")
    out = np.full(prob.shape[1], FIXED_THRESHOLD)
    for c in range(prob.shape[1]):
        keep = labels[:, c] >= 0
        scores, positive = prob[keep, c], labels[keep, c] == 1
        if not positive.any() or positive.all():
            continue
        order = np.argsort(-scores, kind="mergesort")
        scores, positive = scores[order], positive[order]
        run_end = np.r_[scores[1:] != scores[:-1], True]          # cut after each run of equal scores
        tp = np.cumsum(positive)[run_end]
        fp = np.cumsum(~positive)[run_end]
        fn = positive.sum() - tp
        f1 = 2 * tp / (2 * tp + fp + fn)
        best = int(np.argmax(f1))                                 # first maximum = highest cut
        values = scores[run_end]
        out[c] = values[best] if best + 1 == len(values) else 0.5 * (values[best] + values[best + 1])
    return out


def threshold_mapping(thresholds: Sequence[float], names: Sequence[str]) -> dict[str, float]:
    """The sidecar / report form: {AU name: threshold}."""
    return {str(name): float(t) for name, t in zip(names, thresholds)}


def checkpoint_thresholds(meta: dict, labels: Sequence[str]) -> np.ndarray | None:
    """The validated thresholds a checkpoint's sidecar carries, in `labels` order, or None when its
    run cut at 0.5 (``train.threshold: fixed``, every paper-protocol run and older checkpoints)."""
    train = (meta.get("config") or {}).get("train") or {}
    chosen = (meta.get("val") or {}).get("thresholds")
    if train.get("threshold", "fixed") != "validated" or not chosen:
        return None
    return np.array([float(chosen.get(name, FIXED_THRESHOLD)) for name in labels])
