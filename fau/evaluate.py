"""Evaluation shared by every FAU model: `fau eval` and `fau eval --aggregate`.

Scores are F1-frame, accuracy and ROC-AUC per AU at threshold 0.5, accumulated over the whole test
part with unknown labels (−1) skipped, and their macro averages (fau-models.md §1.4–1.5).  Three
folds are aggregated as mean ± std, with the published number beside ours when the data is the
real dataset (BP4D / DISFA).  Models with a language head (VL-FAU) add the quality of their
descriptions (Tab 5.4): teacher-forced top-5 word accuracy of the local and global decoders, and the
fraction of greedy local descriptions whose active/inactive state matches the label.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import yaml
from torch.utils.data import DataLoader, Subset

from fau.data.loader import AlignedFaceDataset
from fau.data.table import PreparedDataset, load_prepared
from fau.models import build_model
from shared.checkpoint import load_checkpoint, load_state_strict
from shared.device import resolve_device
from shared.distributed import DistInfo, all_gather_concat
from shared.errors import UserError
from shared.metrics import MultilabelCounts

PAPER_RESULTS = Path(__file__).resolve().parent / "results" / "paper_f1.yaml"
REAL_DATASETS = ("bp4d", "disfa")


def load_model(checkpoint: str | Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild a trained FAU model from its checkpoint (weights checked tensor by tensor)."""
    tensors, meta = load_checkpoint(checkpoint)
    prior = np.asarray(meta["prior"], dtype=np.float32) if meta.get("prior") is not None else None
    model = build_model(meta["model"], meta["config"]["model"], num_aus=len(meta["labels"]), prior=prior)
    wanted = getattr(getattr(model, "vocab", None), "version", None)
    if wanted is not None and meta.get("template_version") not in (None, wanted):
        raise UserError(f"{checkpoint}: trained with language template {meta['template_version']!r}, "
                        f"but model.language.template now gives {wanted!r}")
    load_state_strict(model, tensors, checkpoint)
    return model.to(resolve_device(device) if isinstance(device, str) else device).eval(), meta


@torch.inference_mode()
def predict_dataset(model: torch.nn.Module, dataset: AlignedFaceDataset, batch_size: int,
                    info: DistInfo) -> tuple[np.ndarray, np.ndarray]:
    """AU probabilities and labels for every item, sharded over ranks and gathered in row order."""
    was_training = model.training
    model.eval()
    shard = Subset(dataset, range(info.rank, len(dataset), info.world_size))
    probs, labels, rows = [], [], []
    for batch in DataLoader(shard, batch_size=batch_size, shuffle=False):
        outputs = model(batch["image"].to(info.device))
        probs.append(torch.sigmoid(outputs["au_logits"].float()).cpu())
        labels.append(batch["labels"])
        rows.append(batch["index"])
    model.train(was_training)
    if not probs:
        raise UserError(f"no frames to evaluate ({len(dataset)} in the split)")
    prob, label, row = (all_gather_concat(torch.cat(x).to(info.device)).cpu() for x in (probs, labels, rows))
    order = torch.argsort(row)
    return prob[order].numpy(), label[order].numpy()


def language_tensors(model: torch.nn.Module, data: PreparedDataset) -> dict[str, torch.Tensor] | None:
    """Per-row language-target tensors (``encode_language``) for a model whose ``has_language`` is
    true (VL-FAU with LLGA or GLGA), None for the others; the prepared targets must come from the
    template version the model's vocabulary is built from."""
    if not getattr(model, "has_language", False):
        return None
    version, wanted = data.meta.get("template_version"), model.vocab.version
    if version != wanted:
        raise UserError(f"{data.root}: language targets were built with template {version!r}, "
                        f"the model's vocabulary with {wanted!r} (re-run `fau prepare` or set model.language.template)")
    return model.encode_language(data.language(), data.columns)


LANGUAGE_METRICS = ("word_top5_local", "word_top5_global", "description_state")


@torch.inference_mode()
def language_scores(model: torch.nn.Module, dataset: AlignedFaceDataset, batch_size: int,
                    device: torch.device) -> dict[str, Any]:
    """Description quality of a language-head model over `dataset` (whose items carry the model's
    token targets): each metric of ``model.language_statistics`` as a fraction, and the generated
    description of the first item as a sample."""
    model.eval()
    totals: dict[str, list[float]] = {}
    sample = None
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        batch = {k: v.to(device) for k, v in batch.items()}
        outputs = model(batch["image"])
        for name, (hits, count) in model.language_statistics(outputs, batch).items():
            total = totals.setdefault(name, [0.0, 0.0])
            total[0] += hits
            total[1] += count
        if sample is None:
            sample = model.describe({k: v[:1] for k, v in outputs.items()}, dataset.data.columns)[0]
    scores: dict[str, Any] = {name: (hits / count if count else float("nan")) for name, (hits, count) in totals.items()}
    scores["sample"] = sample
    return scores


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
    probs, labels = predict_dataset(model, dataset, batch_size, info)
    counts = MultilabelCounts(len(data.columns))
    counts.update(probs, labels)
    report = {"model": meta["model"], "dataset": data.meta.get("dataset"), "synthetic": bool(data.meta.get("synthetic")),
              "aus": list(data.meta.get("aus", [])), "fold": fold, "split": split,
              "checkpoint": str(checkpoint), "frames": int(len(dataset)), "scores": counts.summary(data.columns)}
    if getattr(model, "has_language", False):
        text_set = AlignedFaceDataset(data, dataset.indices, dataset.image_size, crop, train=False,
                                      extras=language_tensors(model, data))
        report["language"] = language_scores(model, text_set, batch_size, info.device)
    return report


def paper_f1(dataset: str | None, model: str, aus: Sequence[int] | None = None) -> dict[str, float] | None:
    """The published per-AU F1 (%) of `model` on a real dataset (evaluated on its AU set), or None."""
    table = yaml.safe_load(PAPER_RESULTS.read_text())
    if dataset not in table or model not in table[dataset]:
        return None
    if aus is not None and list(aus) != list(table[dataset]["aus"]):
        return None
    return {f"AU{au}": value for au, value in zip(table[dataset]["aus"], table[dataset][model])}


def aggregate(reports: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Mean ± std over folds of every per-AU and macro score (values in %)."""
    if not reports:
        raise UserError("--aggregate needs at least one report")
    names = [n for n in reports[0]["scores"]]
    models = {r["model"] for r in reports}
    datasets = {r["dataset"] for r in reports}
    if len(models) > 1 or len(datasets) > 1:
        raise UserError(f"--aggregate: reports mix models {sorted(models)} / datasets {sorted(map(str, datasets))}")
    out: dict[str, Any] = {"model": reports[0]["model"], "dataset": reports[0]["dataset"],
                           "folds": [r["fold"] for r in reports], "scores": {}}
    for name in names:
        out["scores"][name] = {}
        for metric in ("f1", "accuracy", "auc"):
            values = np.array([100.0 * r["scores"][name][metric] for r in reports], dtype=np.float64)
            out["scores"][name][metric] = {"mean": float(np.nanmean(values)) if np.isfinite(values).any() else float("nan"),
                                           "std": float(np.nanstd(values)) if np.isfinite(values).any() else float("nan")}
    real = not any(r.get("synthetic", True) for r in reports)
    if real and out["dataset"] in REAL_DATASETS:
        out["paper_f1"] = paper_f1(out["dataset"], out["model"], reports[0].get("aus"))
    return out


def format_report(report: Mapping[str, Any]) -> str:
    """A plain-text table of one report (single fold) or an aggregate (mean ± std, paper column)."""
    scores = report["scores"]
    paper = report.get("paper_f1") or {}
    lines = [f"{report['model']} on {report.get('dataset')} "
             + (f"fold {report['fold']} ({report['frames']} frames)" if "fold" in report else f"folds {', '.join(report['folds'])}")]
    header = f"{'AU':<8}{'F1':>14}{'Acc':>14}{'AUC':>14}" + (f"{'paper F1':>10}" if paper else "")
    lines.append(header)
    for name, values in scores.items():
        cells = []
        for metric in ("f1", "accuracy", "auc"):
            value = values[metric]
            cells.append(f"{value['mean']:6.1f} ± {value['std']:4.1f}" if isinstance(value, dict) else f"{100 * value:13.1f}")
        paper_cell = ""
        if paper:
            paper_value = paper.get(name, float(np.mean(list(paper.values()))) if name == "macro" else None)
            paper_cell = f"{paper_value:10.1f}" if paper_value is not None else f"{'':>10}"
        lines.append(f"{name:<8}" + "".join(f"{c:>14}" for c in cells) + paper_cell)
    language = report.get("language")
    if language:
        names = {"word_top5_local": "word top-5 accuracy, local", "word_top5_global": "word top-5 accuracy, global",
                 "description_state": "local descriptions with the labelled state"}
        lines += [f"{names[key]}: {100 * language[key]:.1f}%" for key in LANGUAGE_METRICS if key in language]
        sample = language.get("sample")
        if sample:
            lines.append(f"sample global: {sample['global']}")
            lines += [f"sample {label}: {text}" for label, text in list(sample["local"].items())[:2]]
    return "\n".join(lines)
