"""Reports of `fau eval`: three folds aggregated as mean ± std, the published F1 beside ours on the
real datasets (BP4D / DISFA; thesis Tabs 3.2–3.3, 4.2, 4.4, 5.1–5.2), and the plain-text tables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import yaml

from fau.evaluation.language import LANGUAGE_METRICS
from shared.errors import UserError

PAPER_RESULTS = Path(__file__).resolve().parents[1] / "results" / "paper_f1.yaml"
REAL_DATASETS = ("bp4d", "disfa")


def paper_f1(dataset: str | None, model: str, aus: Sequence[int] | None = None) -> dict[str, float] | None:
    """The published per-AU F1 (%) of `model` on a real dataset (evaluated on its AU set), or None."""
    table = yaml.safe_load(PAPER_RESULTS.read_text())
    if dataset not in table or model not in table[dataset]:
        return None
    if aus is not None and list(aus) != list(table[dataset]["aus"]):
        return None
    return {f"AU{au}": value for au, value in zip(table[dataset]["aus"], table[dataset][model])}


def _metrics(scores: Mapping[str, Any]) -> list[str]:
    """The metrics of a report's scores, in table order (AU: F1, accuracy, AUC; grades: F1, accuracy)."""
    first = next(iter(scores.values()))
    return [m for m in ("f1", "accuracy", "auc") if m in first]


def _mean_std(values: np.ndarray) -> dict[str, float]:
    finite = np.isfinite(values)
    if not finite.any():
        return {"mean": float("nan"), "std": float("nan")}
    return {"mean": float(values[finite].mean()), "std": float(values[finite].std())}


def aggregate(reports: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Mean ± std over folds of every per-AU and macro score (values in %)."""
    if not reports:
        raise UserError("--aggregate needs at least one report")
    names = [n for n in reports[0]["scores"]]
    models = {r["model"] for r in reports}
    datasets = {r["dataset"] for r in reports}
    if len(models) > 1 or len(datasets) > 1:
        raise UserError(f"--aggregate: reports mix models {sorted(models)} / datasets {sorted(map(str, datasets))}")
    protocols = {r.get("protocol", "validated") for r in reports}
    if len(protocols) > 1:
        raise UserError(f"--aggregate: reports mix protocols {sorted(protocols)} (aggregate one protocol at a time)")
    out: dict[str, Any] = {"model": reports[0]["model"], "dataset": reports[0]["dataset"],
                           "protocol": protocols.pop(), "folds": [r["fold"] for r in reports], "scores": {}}
    for name in names:
        out["scores"][name] = {}
        for metric in _metrics(reports[0]["scores"]):
            values = np.array([100.0 * r["scores"][name][metric] for r in reports], dtype=np.float64)
            out["scores"][name][metric] = _mean_std(values)
    if all("alignment" in r for r in reports):
        out["alignment"] = {"mean_error": _mean_std(np.array([r["alignment"]["mean_error"] for r in reports]))}
    if "task" in reports[0]:
        out["task"] = reports[0]["task"]
    real = not any(r.get("synthetic", True) for r in reports)
    if real and out["dataset"] in REAL_DATASETS:
        out["paper_f1"] = paper_f1(out["dataset"], out["model"], reports[0].get("aus"))
    return out


PROTOCOL_LABELS = {"paper": "paper protocol (last epoch of the fixed schedule, all training subjects)",
                   "validated": "validated protocol (best epoch on held-out training subjects; ours)"}


def protocol_label(protocol: str) -> str:
    """How a table names the protocol that produced its numbers."""
    return PROTOCOL_LABELS.get(protocol, f"protocol {protocol}")


def format_report(report: Mapping[str, Any]) -> str:
    """A plain-text table of one report (single fold) or an aggregate (mean ± std, paper column)."""
    scores = report["scores"]
    paper = report.get("paper_f1") or {}
    lines = [f"{report['model']} on {report.get('dataset')} "
             + (f"fold {report['fold']} ({report['frames']} frames)" if "fold" in report else f"folds {', '.join(report['folds'])}")
             + f", {protocol_label(report.get('protocol', 'validated'))}"]
    metrics = _metrics(scores)
    titles = {"f1": "F1", "accuracy": "Acc", "auc": "AUC"}
    first = "grade" if report.get("task") == "paralysis" else "AU"
    header = f"{first:<8}" + "".join(f"{titles[m]:>14}" for m in metrics) + (f"{'paper F1':>10}" if paper else "")
    lines.append(header)
    for name, values in scores.items():
        cells = []
        for metric in metrics:
            value = values[metric]
            cells.append(f"{value['mean']:6.1f} ± {value['std']:4.1f}" if isinstance(value, dict) else f"{100 * value:13.1f}")
        paper_cell = ""
        if paper:
            paper_value = paper.get(name, float(np.mean(list(paper.values()))) if name == "macro" else None)
            paper_cell = f"{paper_value:10.1f}" if paper_value is not None else f"{'':>10}"
        lines.append(f"{name:<8}" + "".join(f"{c:>14}" for c in cells) + paper_cell)
    alignment = report.get("alignment")
    if alignment:
        value = alignment["mean_error"]
        shown = f"{value['mean']:.2f} ± {value['std']:.2f}" if isinstance(value, dict) else f"{value:.2f}"
        frames = f" over {alignment['frames']} frames" if "frames" in alignment else ""
        lines.append(f"landmark mean error (Tab 3.6, % of the inter-ocular distance): {shown}{frames}")
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


def cue_groups(names: Sequence[str]) -> dict[str, list[str]]:
    """The AU columns of `names` (``AU12`` …) split by the kind of their SynFACS cue
    (`fau.synth.CUE_KIND`): ``{"geometric": [...], "appearance": [...]}``, in column order; AUs
    without a kind are left out."""
    from fau.synth.cues import APPEARANCE, CUE_KIND, GEOMETRIC

    groups: dict[str, list[str]] = {GEOMETRIC: [], APPEARANCE: []}
    for name in names:
        kind = CUE_KIND.get(int(name[2:])) if name.startswith("AU") and name[2:].isdigit() else None
        if kind is not None:
            groups[kind].append(name)
    return groups


def group_scores(scores: Mapping[str, Mapping[str, float]], groups: Mapping[str, Sequence[str]]) -> dict[str, dict[str, float]]:
    """Mean of each per-AU metric over every group's AUs (NaN, e.g. the AUC of an AU absent from the
    split, is left out; an empty group is NaN)."""
    out: dict[str, dict[str, float]] = {}
    for group, members in groups.items():
        out[group] = {}
        for metric in ("f1", "accuracy", "auc"):
            values = np.array([scores[name][metric] for name in members], dtype=np.float64)
            finite = values[np.isfinite(values)]
            out[group][metric] = float(finite.mean()) if finite.size else float("nan")
    return out
