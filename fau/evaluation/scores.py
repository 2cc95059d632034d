"""Predictions of a model over a dataset and their scores.

* AU models: F1-frame, accuracy and ROC-AUC per AU at threshold 0.5 (or per-AU thresholds chosen
  on validation subjects, `fau.evaluation.thresholds`), accumulated over the whole split
  with unknown labels (−1) skipped, and their macro averages (thesis §2.2.3 and §4.4.2 for the
  metrics; threshold and aggregation: docs/fau.md, decision 'decision threshold').
* Paralysis models (ALGRNet ``task: paralysis``): per-grade F1 (one grade against the others, thesis
  Tabs 3.4–3.5, whose "Avg." is the macro mean) and per-grade accuracy (the share of that grade's
  frames predicted as it), overall accuracy (`grade_scores`).
* Models with a landmark branch: the face-alignment mean error of thesis Tab 3.6, the mean landmark
  distance normalised by the ground-truth inter-ocular distance, in % (`alignment_error`), over the
  frames that have ground-truth landmarks.

Evaluation runs on every rank: each rank scores its share of the rows and the predictions are
gathered in row order.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from fau.data.loader import AlignedFaceDataset
from fau.losses import inter_ocular_sq
from shared.distributed import DistInfo, all_gather_concat
from shared.errors import UserError
from shared.metrics import MultilabelCounts


def _per_frame_alignment_error(predicted: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean landmark distance / GT inter-ocular distance per frame (NaN where the frame has no landmarks)."""
    target = target.to(predicted.dtype)
    distance = (predicted - target).norm(dim=-1).mean(dim=-1)
    error = distance / inter_ocular_sq(target).clamp_min(1.0).sqrt()
    return torch.where(mask.to(torch.bool), error, torch.full_like(error, float("nan")))


@torch.inference_mode()
def predict_dataset(model: torch.nn.Module, dataset: AlignedFaceDataset, batch_size: int,
                    info: DistInfo) -> dict[str, np.ndarray]:
    """Per-item predictions, sharded over ranks and gathered in row order: ``labels``; ``prob`` (N, A)
    AU probabilities or ``grade_prob`` (N, G) grade probabilities; ``landmark_error`` (N,) when the
    model predicts landmarks (NaN for frames without ground truth)."""
    was_training = model.training
    model.eval()
    shard = Subset(dataset, range(info.rank, len(dataset), info.world_size))
    parts: dict[str, list[torch.Tensor]] = {}
    for batch in DataLoader(shard, batch_size=batch_size, shuffle=False):
        outputs = model(batch["image"].to(info.device))
        if "grade_logits" in outputs:
            parts.setdefault("grade_prob", []).append(torch.softmax(outputs["grade_logits"].float(), dim=-1).cpu())
        else:
            parts.setdefault("prob", []).append(torch.sigmoid(outputs["au_logits"].float()).cpu())
        if "landmarks" in outputs:
            parts.setdefault("landmark_error", []).append(_per_frame_alignment_error(
                outputs["landmarks"].float().cpu(), batch["landmarks"], batch["landmark_mask"]))
        parts.setdefault("labels", []).append(batch["labels"])
        parts.setdefault("rows", []).append(batch["index"])
    model.train(was_training)
    if not parts:
        raise UserError(f"no frames to evaluate ({len(dataset)} in the split)")
    gathered = {key: all_gather_concat(torch.cat(value).to(info.device)).cpu() for key, value in parts.items()}
    order = torch.argsort(gathered.pop("rows"))
    return {key: value[order].numpy() for key, value in gathered.items()}


def au_scores(predictions: dict[str, np.ndarray], names: list[str],
              thresholds: np.ndarray | None = None) -> dict[str, dict[str, float]]:
    """Per-AU and macro F1 / accuracy / AUC of AU predictions (module docstring); F1 and accuracy at
    0.5, or at per-AU `thresholds` (`fau.evaluation.thresholds`)."""
    counts = MultilabelCounts(len(names), 0.5 if thresholds is None else np.asarray(thresholds, dtype=np.float64))
    counts.update(predictions["prob"], predictions["labels"])
    return counts.summary(names)


def grade_scores(predictions: dict[str, np.ndarray], grades: list[str]) -> dict[str, dict[str, float]]:
    """Per-grade F1 (one vs the others) and accuracy (recall of the grade), their macro means and the
    overall accuracy under ``all``; a grade absent from the split has NaN scores and is left out of
    the macro means (module docstring)."""
    labels = predictions["labels"].reshape(-1).astype(np.int64)
    known = labels >= 0
    predicted = predictions["grade_prob"].argmax(axis=1)[known]
    labels = labels[known]
    if labels.size == 0:
        raise UserError("no frame of the split has a known paralysis grade")
    out: dict[str, dict[str, float]] = {}
    for index, grade in enumerate(grades):
        tp = int(((predicted == index) & (labels == index)).sum())
        fp = int(((predicted == index) & (labels != index)).sum())
        fn = int(((predicted != index) & (labels == index)).sum())
        present = tp + fn > 0
        out[grade] = {"f1": 2 * tp / (2 * tp + fp + fn) if present else float("nan"),
                      "accuracy": tp / (tp + fn) if present else float("nan"),
                      "frames": tp + fn}
    present = [out[g] for g in grades if out[g]["frames"] > 0]
    out["macro"] = {"f1": float(np.mean([g["f1"] for g in present])),
                    "accuracy": float(np.mean([g["accuracy"] for g in present])), "frames": int(labels.size)}
    out["all"] = {"f1": float("nan"), "accuracy": float((predicted == labels).mean()), "frames": int(labels.size)}
    return out


def alignment_error(predictions: dict[str, np.ndarray]) -> dict[str, float] | None:
    """Thesis Tab 3.6: mean error normalised by the inter-ocular distance, in %, over the frames with
    ground-truth landmarks; None when the model has no landmark branch or no frame has landmarks."""
    errors = predictions.get("landmark_error")
    if errors is None or not np.isfinite(errors).any():
        return None
    finite = errors[np.isfinite(errors)]
    return {"mean_error": float(100.0 * finite.mean()), "frames": int(finite.size)}


def score_rows(model: torch.nn.Module, dataset: AlignedFaceDataset, batch_size: int, info: DistInfo,
               names: list[str]) -> dict[str, dict[str, float]]:
    """Per-AU and macro F1 / accuracy / AUC of `model` on `dataset` (all ranks, gathered)."""
    return au_scores(predict_dataset(model, dataset, batch_size, info), names)
