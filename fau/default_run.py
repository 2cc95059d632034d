"""The main job on the embedded default (`make train-fau`): SynFACS → prepare → train → eval → table.

Every registered model is trained with its ``<model>_tiny`` config on one fold of the synthetic
data and evaluated on that fold's held-out test subjects, next to two baselines measured in the
same run (`fau.evaluation.baselines`); models with a language head (VL-FAU) add their description quality
(teacher-forced word top-5 accuracy, local / global, and the share of local descriptions whose
active/inactive state matches the label; results.json also keeps one sample description).  Writes
``OUT/results.json`` and ``OUT/f1_by_au.png`` and returns the results; the command prints the table
(`format_table`).  Each stage is skipped when its output is complete, so a second call only re-evaluates.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Sequence

from fau.data.prepare import prepare
from fau.data.table import META_FILE, load_prepared
from fau.evaluation.baselines import run_baselines
from fau.evaluation.checkpoint import evaluate_checkpoint
from fau.models import MODELS
from fau.synth.generate import generate
from fau.train import train
from shared.io import atomic_path, write_json

log = logging.getLogger(__name__)

RAW_DONE = "synfacs_report.json"
#: frames per SynFACS sequence in this job (the generator's default is 48): 15 subjects × 4 tasks × 24
#: = 1,440 frames keep three models' training within the job's CPU budget
FRAMES_PER_SEQUENCE = 24


def ensure_data(out: Path, seed: int, progress: bool) -> Path:
    """Generate and prepare SynFACS under `out` unless already done; return the prepared folder."""
    raw, prepared = out / "synfacs" / "raw", out / "synfacs" / "prepared"
    if not (raw / RAW_DONE).is_file():
        generate(raw, n_frames=FRAMES_PER_SEQUENCE, seed=seed, workers=2, overwrite=raw.exists(), progress=progress)
    if not (prepared / META_FILE).is_file():
        prepare("bp4d", raw, prepared, aus=None, progress=progress)
    return prepared


def train_and_score(model: str, prepared: Path, fold: str, out: Path, device: str,
                    overrides: Sequence[str], progress: bool) -> dict[str, Any]:
    """Train one model with its tiny config (resuming if interrupted) and score the test part."""
    run_dir = out / model
    config = MODELS.load_config(model, None, overrides)
    began = time.time()
    best = train(model, prepared, fold, config, run_dir, device=device, show_progress=progress)
    seconds = time.time() - began
    report = evaluate_checkpoint(best, prepared, fold, "test", device)
    write_json(run_dir / "eval.json", report)
    result = {"scores": report["scores"], "seconds": seconds, "checkpoint": str(best)}
    if "language" in report:
        result["language"] = report["language"]
    return result


def _language_cells(language: dict[str, Any] | None) -> str:
    """Word top-5 accuracy "local/global" and description-state accuracy (%), or dashes."""
    def pct(key: str) -> str:
        value = (language or {}).get(key)
        return "-" if value is None else f"{100 * value:.1f}"

    return f"{pct('word_top5_local') + '/' + pct('word_top5_global'):>12}{pct('description_state'):>7}"


def format_table(results: dict[str, dict[str, Any]], names: list[str]) -> str:
    """Per-AU F1 (%), macro F1 / accuracy / AUC, time and, for language models, word top-5 accuracy
    (local/global) and description-state accuracy (%), per model, one row each."""
    header = (f"{'model':<11}" + "".join(f"{n:>6}" for n in names) + f"{'F1':>7}{'Acc':>7}{'AUC':>7}{'time s':>8}"
              + f"{'word@5 L/G':>12}{'desc':>7}")
    lines = [header, "-" * len(header)]
    for model, result in results.items():
        scores = result["scores"]
        cells = "".join(f"{100 * scores[n]['f1']:6.1f}" for n in names)
        macro = scores["macro"]
        lines.append(f"{model:<11}{cells}{100 * macro['f1']:7.1f}{100 * macro['accuracy']:7.1f}"
                     f"{100 * macro['auc']:7.1f}{result['seconds']:8.1f}" + _language_cells(result.get("language")))
    return "\n".join(lines)


def plot_f1(results: dict[str, dict[str, Any]], names: list[str], path: Path) -> None:
    """Grouped bar chart of per-AU F1 for every model and baseline (PNG, written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    labels = names + ["macro"]
    width = 0.8 / max(len(results), 1)
    fig, ax = plt.subplots(figsize=(max(8, 0.7 * len(labels) * max(len(results), 1) / 2), 4))
    for i, (model, result) in enumerate(results.items()):
        values = [100 * result["scores"][n]["f1"] for n in labels]
        ax.bar(np.arange(len(labels)) + i * width, values, width, label=model)
    ax.set_xticks(np.arange(len(labels)) + width * (len(results) - 1) / 2, labels, rotation=45)
    ax.set_ylabel("F1 (%)")
    ax.set_title("SynFACS test subjects: F1 per AU")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def run_default(out: str | Path = "runs/fau-default", fold: str = "part3", device: str = "auto",
                models: Sequence[str] | None = None, overrides: Sequence[str] = (), seed: int = 0,
                progress: bool = True) -> dict[str, Any]:
    """The whole main job; returns the results dict also written to ``OUT/results.json`` (with the
    chart's path under ``chart``)."""
    out = Path(out)
    began = time.time()
    prepared = ensure_data(out, seed, progress)
    data = load_prepared(prepared)
    results: dict[str, dict[str, Any]] = {}
    for model in MODELS.names() if models is None else models:
        log.info("== training %s (tiny config, fold %s)", model, fold)
        results[model] = train_and_score(model, prepared, fold, out, device, overrides, progress)
    results.update(run_baselines(data, fold, seed))
    names = data.columns
    summary = {"dataset": str(prepared), "fold": fold, "labels": names, "results": results,
               "seconds": round(time.time() - began, 1)}
    write_json(out / "results.json", summary)
    plot_f1(results, names, out / "f1_by_au.png")
    return {**json.loads(json.dumps(summary)), "results_file": str(out / "results.json"),
            "chart": str(out / "f1_by_au.png")}
