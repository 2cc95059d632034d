"""`fau eval`: score a trained checkpoint on a split of a prepared dataset.

The report holds per-AU and macro F1 / accuracy / AUC (`fau.evaluation.scores`) and, for models with
a language head (VL-FAU), the quality of their descriptions (`fau.evaluation.language`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fau.data.loader import AlignedFaceDataset
from fau.data.table import load_prepared
from fau.evaluation.language import language_scores
from fau.evaluation.scores import score_rows
from fau.language.vocab import language_tensors
from fau.models import load_model
from shared.distributed import DistInfo
from shared.errors import UserError


def evaluate_checkpoint(checkpoint: str | Path, data_dir: str | Path, fold: str | None = None,
                        split: str = "test", device: str = "auto", batch_size: int = 32) -> dict[str, Any]:
    """Score a checkpoint on a split of a prepared dataset; returns the JSON report."""
    model, meta = load_model(checkpoint, device)
    data = load_prepared(data_dir)
    if list(data.columns) != list(meta["labels"]):
        raise UserError(f"{data_dir}: label columns {data.columns} differ from the checkpoint's {meta['labels']}")
    fold = fold or meta["fold"]
    crop = int(meta["config"]["data"]["crop"])
    dataset = AlignedFaceDataset(data, data.indices(fold, split), int(meta["config"]["data"]["image_size"]), crop, train=False)
    info = DistInfo(device=next(model.parameters()).device)
    scores = score_rows(model, dataset, batch_size, info, data.columns)
    report = {"model": meta["model"], "dataset": data.meta.get("dataset"), "synthetic": bool(data.meta.get("synthetic")),
              "aus": list(data.meta.get("aus", [])), "fold": fold, "split": split,
              "checkpoint": str(checkpoint), "frames": int(len(dataset)), "scores": scores}
    if getattr(model, "has_language", False):
        text_set = AlignedFaceDataset(data, dataset.indices, dataset.image_size, crop, train=False,
                                      extras=language_tensors(model, data))
        report["language"] = language_scores(model, text_set, batch_size, info.device)
    return report
