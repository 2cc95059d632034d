"""`fau eval`: score a trained checkpoint on a split of a prepared dataset.

The report holds per-AU and macro F1 / accuracy / AUC (per-grade F1 / accuracy for the paralysis
task), the face-alignment mean error of thesis Tab 3.6 for models with a landmark branch
(`fau.evaluation.scores`), the protocol that
produced the checkpoint (``paper``: last epoch of the fixed schedule; ``validated``: best validation
epoch; docs/fau.md, decision 'protocol') and, for models with a language head (VL-FAU), the quality
of their descriptions (`fau.evaluation.language`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shared.errors import UserError

#: the tasks a FAU checkpoint is trained for (`fau.train.checkpoint_meta`)
TASKS: tuple[str, ...] = ("au", "paralysis")


def check_checkpoint(checkpoint: str | Path) -> dict[str, Any]:
    """The sidecar of a FAU checkpoint, refused in one line naming the file when it cannot be one: a model
    FAU does not know (a checkpoint of another task), no label list, or no ``config.model`` /
    ``config.data`` (``image_size``, ``crop``: the evaluation input, `fau.data.loader`)."""
    from fau.models.registry import MODELS
    from shared.checkpoint import checkpoint_paths, load_meta

    meta = load_meta(checkpoint)
    where = f"checkpoint {checkpoint_paths(checkpoint)[1]}"
    if meta["model"] not in MODELS:
        raise UserError(f"{where}: model {meta['model']!r} is not a FAU model (one of {', '.join(MODELS.names())}); "
                        "a checkpoint of another task?")
    if meta.get("task", "au") not in TASKS:
        raise UserError(f"{where}: task {meta.get('task')!r} is not a FAU task ({', '.join(TASKS)})")
    labels = meta.get("labels")
    if not isinstance(labels, list) or not labels or not all(isinstance(n, str) and n for n in labels):
        raise UserError(f"{where}: 'labels' must be the non-empty list of label names, got {labels!r}")
    aus = meta.get("aus")
    if aus not in (None, []) and (not isinstance(aus, list) or len(aus) != len(labels)
                            or not all(isinstance(a, int) and not isinstance(a, bool) for a in aus)):
        raise UserError(f"{where}: 'aus' must list one AU number per label ({len(labels)}) or be empty, got {aus!r}")
    prior = meta.get("prior")
    if prior is not None and (not isinstance(prior, list) or len(prior) != len(labels)
                              or not all(isinstance(row, list) and len(row) == len(labels) for row in prior)):
        raise UserError(f"{where}: 'prior' must be a {len(labels)} x {len(labels)} matrix (one row per label)")
    config = meta["config"]
    if not isinstance(config, Mapping) or not isinstance(config.get("model"), Mapping):
        raise UserError(f"{where}: config.model is missing (the model section `fau train` stores)")
    data = config.get("data")
    if not isinstance(data, Mapping):
        raise UserError(f"{where}: config.data is missing (needs image_size and crop, the evaluation input)")
    sizes = {key: data.get(key) for key in ("image_size", "crop")}
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in sizes.values()) \
            or sizes["crop"] > sizes["image_size"]:
        raise UserError(f"{where}: config.data needs positive integers image_size >= crop, got "
                        f"image_size={sizes['image_size']!r}, crop={sizes['crop']!r}")
    return meta


def load_checked(checkpoint: str | Path, device: str = "auto") -> tuple[Any, dict[str, Any]]:
    """`fau.models.load_model` after `check_checkpoint`; a config the model refuses is named with the file."""
    from fau.models import load_model
    from shared.checkpoint import checkpoint_paths

    check_checkpoint(checkpoint)
    try:
        return load_model(checkpoint, device)
    except UserError as err:
        sidecar = checkpoint_paths(checkpoint)[1]
        if str(sidecar) in str(err) or str(checkpoint) in str(err):
            raise
        raise UserError(f"checkpoint {sidecar}: {err}") from None


def checkpoint_protocol(meta: dict[str, Any]) -> str:
    """The protocol of a checkpoint's sidecar; checkpoints written before the key existed were all
    selected on validation subjects (``validated``)."""
    return str(meta.get("protocol", "validated"))


def evaluate_checkpoint(checkpoint: str | Path, data_dir: str | Path, fold: str | None = None,
                        split: str = "test", device: str = "auto", batch_size: int = 32,
                        language: bool = True) -> dict[str, Any]:
    """Score a checkpoint on a split of a prepared dataset; returns the JSON report (with the description
    scores of a language model unless `language` is False)."""
    from fau.data.loader import AlignedFaceDataset
    from fau.data.table import load_prepared
    from fau.evaluation.language import language_scores
    from fau.evaluation.scores import alignment_error, au_scores, grade_scores, predict_dataset
    from fau.evaluation.thresholds import checkpoint_thresholds, threshold_mapping
    from fau.language.vocab import language_tensors
    from shared.distributed import DistInfo

    model, meta = load_checked(checkpoint, device)
    data = load_prepared(data_dir)
    if list(data.columns) != list(meta["labels"]):
        raise UserError(f"{data_dir}: label columns {data.columns} differ from the checkpoint's {meta['labels']}")
    fold = fold or meta["fold"]
    protocol = checkpoint_protocol(meta)
    if protocol == "paper" and split == "val" and fold == meta.get("fold"):
        raise UserError(f"--split val: the paper protocol trained {checkpoint} on the validation subjects of "
                        f"fold {fold} (evaluate on --split test)")
    crop = int(meta["config"]["data"]["crop"])
    dataset = AlignedFaceDataset(data, data.indices(fold, split), int(meta["config"]["data"]["image_size"]), crop, train=False)
    info = DistInfo(device=next(model.parameters()).device)
    predictions = predict_dataset(model, dataset, batch_size, info)
    task = data.meta.get("task", "au")
    thresholds = None if task == "paralysis" else checkpoint_thresholds(meta, data.columns)
    scores = (grade_scores(predictions, list(data.meta["grades"])) if task == "paralysis"
              else au_scores(predictions, data.columns, thresholds))
    report = {"task": task, "model": meta["model"], "dataset": data.meta.get("dataset"), "synthetic": bool(data.meta.get("synthetic")),
              "aus": list(data.meta.get("aus", [])), "fold": fold, "split": split, "protocol": protocol,
              "epoch": meta.get("epoch"), "selection": (meta.get("selection") or {}).get("rule"),
              "checkpoint": str(checkpoint), "frames": int(len(dataset)), "scores": scores}
    if task != "paralysis":
        report["thresholds"] = ("0.5" if thresholds is None else
                                {"rule": "best F1 per AU on the validation subjects of the fold",
                                 **threshold_mapping(thresholds, data.columns)})
    alignment = alignment_error(predictions)
    if alignment is not None:
        report["alignment"] = alignment
    if language and getattr(model, "has_language", False):
        text_set = AlignedFaceDataset(data, dataset.indices, dataset.image_size, crop, train=False,
                                      extras=language_tensors(model, data))
        report["language"] = language_scores(model, text_set, batch_size, info.device)
    return report
