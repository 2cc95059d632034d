"""The main job on the embedded default (`make train-fau`): SynFACS → prepare → train → eval → table.

Every registered model is trained with its ``<model>_tiny`` config on one fold of the synthetic
data and evaluated on that fold's held-out test subjects, next to two baselines measured in the
same run (`fau.evaluation.baselines`); models with a language head (VL-FAU) add their description quality
(teacher-forced word top-5 accuracy, local / global, and the share of local descriptions whose
active/inactive state matches the label; results.json also keeps one sample description).  Writes
``OUT/results.json``, ``OUT/results.md`` and ``OUT/f1_by_au.png`` and returns the results; the command
prints the table (`format_table`).  Each stage is skipped when its output is complete, so a second call
only re-evaluates.

Every row of results.json carries its provenance (`shared.provenance`): the config file and overrides,
the SHA-256 of the resolved config, the training and data seeds, the code version and the protocol.
The table also reads the AUs by cue kind (`fau.synth.CUE_KIND`): mean F1 / AUC over the AUs whose
SynFACS cue is mostly geometric and over those whose cue is mostly appearance.

Two sizes (`MODES`): ``full`` (`make train-fau`) and ``fast`` (fewer subjects and frames, fewer epochs,
every model; the end-to-end test of `make test`).  ``data_only`` stops after preparing the data and
writes no results (`make train-fau MODEL=x` uses it, so it never overwrites the default run's table).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from fau.data.prepare import prepare
from fau.data.table import META_FILE, load_prepared
from fau.evaluation.baselines import run_baselines
from fau.evaluation.checkpoint import evaluate_checkpoint
from fau.evaluation.report import cue_groups, group_scores
from fau.models import MODELS
from fau.synth.generate import generate
from fau.train import train
from shared.errors import UserError
from shared.io import atomic_open, atomic_path, write_json
from shared.provenance import code_version, config_sha256, describe_version
from shared.rows import check_jobs, jobs_note, run_rows

log = logging.getLogger(__name__)

RAW_DONE = "synfacs_report.json"
#: written next to the data once it is complete: the mode's SynFACS size and seed
DATA_SPEC = "default_run_data.json"


@dataclass(frozen=True)
class Mode:
    """One size of the default run: the SynFACS it generates and the overrides of every tiny config."""

    subjects: int
    sequences: int
    frames: int                      # per sequence
    overrides: tuple[str, ...] = ()  # applied before the user's overrides


#: ``full``: BP4D's shape, 41 subjects × 8 tasks ("41 participants ... recorded in 8 different emotional
#: sessions", thesis §2.2.3), 4 frames per task = 1,312 frames, within the job's CPU budget.  Neighbouring
#: frames of a SynFACS task repeat one expression episode (8 frames: the same expression, only occluders
#: move), so distinct tasks, not frames, are what a model learns from: 15 subjects × 4 tasks × 24 frames
#: (1,440 frames, 60 tasks, the earlier default) let the neural models memorise their subjects and lose
#: to the landmark baseline on new ones (fold part3, validated thresholds: ALGRNet 41.2, MGRR-Net 41.5,
#: landmarks 46.2 F1); 41 × 8 × 4 (328 tasks): ALGRNet 61.4, MGRR-Net 56.6, landmarks 47.9, majority
#: 26.1 F1 (tiny configs).  ``fast`` (our decision, for the end-to-end
#: test): 12 subjects × 4 tasks × 8 frames = 384 frames, 8 epochs on the paper protocol (every training
#: subject, the last epoch, cut at 0.5): with one validation subject the validated protocol picks an
#: epoch at random, and the test asks whether each model learns (its fit on the training subjects), which
#: needs the last epoch; at 4 epochs ALGRNet and VL-FAU had not yet fitted them (fit AUC 52, 51).
MODES = {
    "full": Mode(41, 8, 4),
    "fast": Mode(12, 4, 8, ("train.epochs=8", "train.protocol=paper", "train.threshold=fixed")),
}

#: with ``--jobs 2`` these rows start first (the longest on the 2-core machine: VL-FAU's 40 epochs took
#: ~600 s, ALGRNet ~360 s, MGRR-Net ~330 s), so the other two share the second process
START_FIRST = ("vlfau",)


def ensure_data(out: Path, seed: int, progress: bool, mode: Mode = MODES["full"]) -> Path:
    """Generate and prepare SynFACS under `out` unless already done; return the prepared folder.

    A folder holding data of another size or seed is refused (one line) rather than mixed."""
    root = out / "synfacs"
    raw, prepared = root / "raw", root / "prepared"
    spec = {"generator": "SynFACS", "seed": seed, "subjects": mode.subjects, "sequences": mode.sequences,
            "frames_per_sequence": mode.frames}
    if (root / DATA_SPEC).is_file():
        held = json.loads((root / DATA_SPEC).read_text())
        if held != spec:
            raise UserError(f"{root}: holds SynFACS {held}, this run needs {spec}; choose another --out "
                            "or remove that folder")
    elif (raw / RAW_DONE).is_file() and mode != MODES["full"]:
        # data of a run from before the size was recorded: only the full size existed then
        raise UserError(f"{root}: holds SynFACS of an older full run, this run needs {spec}; choose another "
                        "--out or remove that folder")
    if not (raw / RAW_DONE).is_file():
        generate(raw, n_subjects=mode.subjects, n_sequences=mode.sequences, n_frames=mode.frames, seed=seed,
                 workers=2, overwrite=raw.exists(), progress=progress)
    if not (prepared / META_FILE).is_file():
        prepare("bp4d", raw, prepared, aus=None, progress=progress)
    if not (root / DATA_SPEC).is_file():
        write_json(root / DATA_SPEC, spec)
    return prepared


def train_and_score(model: str, prepared: Path, fold: str, out: Path, device: str,
                    overrides: Sequence[str], progress: bool) -> dict[str, Any]:
    """Train one model with its tiny config (resuming if interrupted) and score the test part."""
    log.info("== training %s (tiny config, fold %s)", model, fold)
    run_dir = out / model
    config = MODELS.load_config(model, None, overrides)
    began = time.time()
    best = train(model, prepared, fold, config, run_dir, device=device, show_progress=progress)
    seconds = time.time() - began
    report = evaluate_checkpoint(best, prepared, fold, "test", device)
    write_json(run_dir / "eval.json", report)
    # the same weights on the subjects they were trained on: how well the model fits (the gap to the
    # test row is what does not carry over to new subjects; a model that learns nothing stays at 0.5)
    fit = evaluate_checkpoint(best, prepared, fold, "train", device, language=False)["scores"]["macro"]
    protocol = report.get("protocol", "validated")
    rule = THRESHOLD_RULES[config["train"].get("threshold", "fixed")]
    result = {"scores": report["scores"], "fit": {"f1": fit["f1"], "auc": fit["auc"]}, "seconds": seconds,
              "checkpoint": str(best),
              "provenance": {"config": MODELS.config_path(model).name, "overrides": list(overrides),
                             "config_sha256": config_sha256(config), "seed": config["train"]["seed"],
                             "protocol": f"{protocol}: {PROTOCOLS.get(protocol, protocol)}; {rule}"}}
    if isinstance(report.get("thresholds"), dict):
        result["thresholds"] = report["thresholds"]
    if "language" in report:
        result["language"] = report["language"]
    log.info("== %s done: F1 %.1f, AUC %.1f (%.0f s)", model, 100 * report["scores"]["macro"]["f1"],
             100 * report["scores"]["macro"]["auc"], seconds)
    return result


#: how each protocol picks the scored weights (the `protocol` of `fau eval` reports)
PROTOCOLS = {"validated": "the epoch with the best validation macro F1 (held-out training subjects), "
                          "scored on the fold's test subjects",
             "paper": "the last epoch of the fixed schedule, scored on the fold's test subjects"}
BASELINE_PROTOCOL = "fit on the fold's training subjects, scored on its test subjects"
#: the baselines' parameters (`fau.evaluation.baselines`), hashed like a model config
BASELINE_CONFIGS = {"majority": {"predictor": "training occurrence rate per AU"},
                    "landmarks": {"predictor": "logistic regression per AU on the 98 aligned landmark "
                                               "coordinates", "class_weight": "balanced", "max_iter": 500}}


#: how each threshold rule cuts the probabilities (`fau.evaluation.thresholds`)
THRESHOLD_RULES = {"validated": "AU thresholds with the best F1 on the validation subjects",
                   "fixed": "AU threshold 0.5"}


def threshold_rule(models: Sequence[str], overrides: Sequence[str]) -> str:
    """The models' ``train.threshold`` rule, which the baselines then follow; ``fixed`` if they differ."""
    rules = {MODELS.load_config(m, None, overrides)["train"].get("threshold", "fixed") for m in models}
    return rules.pop() if len(rules) == 1 else "fixed"


def baseline_provenance(name: str, seed: int, rule: str = "fixed") -> dict[str, Any]:
    config = BASELINE_CONFIGS[name]
    return {"config": f"baseline {name}", "overrides": [], "config_sha256": config_sha256(config), "seed": seed,
            "protocol": f"{BASELINE_PROTOCOL}; {THRESHOLD_RULES[rule]}"}


def _language_cells(language: dict[str, Any] | None) -> str:
    """Word top-5 accuracy "local/global" and description-state accuracy (%), or dashes."""
    def pct(key: str) -> str:
        value = (language or {}).get(key)
        return "-" if value is None else f"{100 * value:.1f}"

    return f"{pct('word_top5_local') + '/' + pct('word_top5_global'):>12}{pct('description_state'):>7}"


def _pair(first: float, second: float) -> str:
    return f"{100 * first:.1f}/{100 * second:.1f}"


def format_table(results: dict[str, dict[str, Any]], names: list[str]) -> str:
    """Per-AU F1 (%), macro F1 / accuracy / AUC, the macro AUC on the training subjects (fit AUC; models
    only), mean F1 and AUC over the AUs with a mostly geometric
    (geo) and a mostly appearance (app) SynFACS cue, time and, for language models, word top-5
    accuracy (local/global) and description-state accuracy (%), per model, one row each."""
    groups = cue_groups(names)
    header = (f"{'model':<11}" + "".join(f"{n:>6}" for n in names) + f"{'F1':>7}{'Acc':>7}{'AUC':>7}{'fit AUC':>8}"
              + f"{'geo F1/AUC':>12}{'app F1/AUC':>12}{'time s':>8}{'word@5 L/G':>12}{'desc':>7}")
    lines = [header, "-" * len(header)]
    for model, result in results.items():
        scores = result["scores"]
        cells = "".join(f"{100 * scores[n]['f1']:6.1f}" for n in names)
        macro = scores["macro"]
        by_group = group_scores(scores, groups)
        group_cells = "".join(f"{_pair(by_group[g]['f1'], by_group[g]['auc']):>12}" for g in groups)
        fit = f"{100 * result['fit']['auc']:8.1f}" if "fit" in result else f"{'-':>8}"
        lines.append(f"{model:<11}{cells}{100 * macro['f1']:7.1f}{100 * macro['accuracy']:7.1f}"
                     f"{100 * macro['auc']:7.1f}{fit}{group_cells}{result['seconds']:8.1f}" + _language_cells(result.get("language")))
    return "\n".join(lines)


def format_provenance(summary: dict[str, Any]) -> str:
    """The AUs of each cue kind, the run's code version, data and protocol, and per row its config, hash
    and seed."""
    version = describe_version(summary["code_version"])
    groups = summary["cue_groups"]
    lines = ["geo: " + " ".join(groups["geometric"]) + "   app: " + " ".join(groups["appearance"])
             + "   (SynFACS cue kinds, fau.synth.CUE_KIND)",
             f"code {version}; {summary['mode']} mode; SynFACS seed {summary['data_seed']}, fold {summary['fold']}"
             + jobs_note(summary)]
    protocols = sorted({r["provenance"]["protocol"] for r in summary["results"].values()})
    lines += [f"protocol: {p}" for p in protocols]
    for model, result in summary["results"].items():
        prov = result["provenance"]
        overrides = f" {' '.join(prov['overrides'])}" if prov["overrides"] else ""
        lines.append(f"  {model:<11} {prov['config']}{overrides}  sha256 {prov['config_sha256'][:12]}  seed {prov['seed']}")
    return "\n".join(lines)


def plot_f1(results: dict[str, dict[str, Any]], names: list[str], path: Path) -> None:
    """Grouped bar chart of per-AU F1 for every model and baseline, the AUs ordered by cue kind
    (geometric, then appearance) with each group's mean F1 after it (PNG, written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    groups = cue_groups(names)
    labels = [*groups["geometric"], "geo mean", *groups["appearance"], "app mean", "macro"]
    width = 0.8 / max(len(results), 1)
    fig, ax = plt.subplots(figsize=(min(18, 4 + 0.12 * len(labels) * max(len(results), 1)), 4.5))
    for i, (model, result) in enumerate(results.items()):
        by_group = group_scores(result["scores"], groups)
        values = [100 * (by_group["geometric" if n == "geo mean" else "appearance"]["f1"] if n.endswith(" mean")
                         else result["scores"][n]["f1"]) for n in labels]
        ax.bar(np.arange(len(labels)) + i * width, values, width, label=model)
    split = len(groups["geometric"]) + 0.5
    ax.axvline(split + width * (len(results) - 1) / 2, color="grey", lw=0.8, ls="--")
    ax.text(0, 1.01, "mostly geometric cue", transform=ax.get_xaxis_transform(), fontsize=8)
    ax.text(split + 0.6, 1.01, "mostly appearance cue", transform=ax.get_xaxis_transform(), fontsize=8)
    ax.set_xticks(np.arange(len(labels)) + width * (len(results) - 1) / 2, labels, rotation=45)
    ax.set_ylabel("F1 (%)")
    ax.set_ylim(0, 100)
    ax.set_title("SynFACS test subjects: F1 per AU, by cue kind", pad=14)
    ax.legend(fontsize=8, ncol=max(1, len(results) // 3))
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def write_markdown(summary: dict[str, Any], path: Path) -> None:
    """The table, the provenance and the chart as Markdown (for the README), written atomically."""
    text = ("# `make train-fau`: SynFACS test subjects\n\n```\n" + format_table(summary["results"], summary["labels"])
            + "\n```\n\n```\n" + format_provenance(summary) + "\n```\n\n![F1 per AU](f1_by_au.png)\n")
    with atomic_open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def run_default(out: str | Path = "runs/fau-default", fold: str = "part3", device: str = "auto",
                models: Sequence[str] | None = None, overrides: Sequence[str] = (), seed: int = 0,
                progress: bool = True, mode: str = "full", data_only: bool = False, jobs: int = 1) -> dict[str, Any]:
    """The whole main job; returns the results dict also written to ``OUT/results.json`` (with the
    chart's path under ``chart``).  With `data_only`, only generates and prepares the data and returns
    ``{"prepared": folder}``; no result file is touched.  `jobs` models train at a time
    (`shared.rows.run_rows`; the summary records it)."""
    if mode not in MODES:
        raise UserError(f"mode {mode!r}: choose one of {', '.join(MODES)}")
    check_jobs(jobs)
    names = MODELS.names() if models is None else [MODELS.get(m).name for m in models]
    if not names and not data_only:
        raise UserError("--models: name at least one model (--data-only prepares the data without training)")
    out = Path(out)
    began = time.time()
    prepared = ensure_data(out, seed, progress, MODES[mode])
    if data_only:
        return {"prepared": str(prepared)}
    data = load_prepared(prepared)
    overrides = [*MODES[mode].overrides, *overrides]
    rows = run_rows(train_and_score, [(model, prepared, fold, out, device, overrides, progress and jobs == 1)
                                      for model in names], jobs, show_progress=progress,
                    start_first=[names.index(m) for m in START_FIRST if m in names])
    results: dict[str, dict[str, Any]] = dict(zip(names, rows))
    rule = threshold_rule(names, overrides)
    for name, result in run_baselines(data, fold, seed, rule).items():
        results[name] = {**result, "provenance": baseline_provenance(name, seed, rule)}
    for result in results.values():
        result["provenance"]["code_version"] = code_version()
    labels = data.columns
    summary = {"dataset": str(prepared), "mode": mode, "data_seed": seed, "fold": fold, "jobs": jobs, "labels": labels,
               "cue_groups": cue_groups(labels), "code_version": code_version(), "results": results,
               "seconds": round(time.time() - began, 1)}
    plot_f1(results, labels, out / "f1_by_au.png")
    write_markdown(summary, out / "results.md")
    write_json(out / "results.json", summary)
    return {**json.loads(json.dumps(summary)), "results_file": str(out / "results.json"),
            "chart": str(out / "f1_by_au.png")}
