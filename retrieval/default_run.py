"""The main job on the embedded default (`make train-retrieval`): SynScenes → parse → train → evaluate → table.

Every registered model is trained with its tiny config (3SHNet twice: region and grid features),
evaluated on the test split and on its hard subset (distractors that differ only in attribute
binding or relation direction), and the ensemble rows average saved test matrices, as the thesis
does: 3SHNet region + grid, and HiRE* = HiRE image-to-text + text-to-image (`ENSEMBLES`).
Writes ``OUT/results.json`` and ``OUT/rsum.png`` and returns the results; the command prints the table
(`format_table`).
Each stage is skipped when its output is complete, so a second call only re-evaluates.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from retrieval.data.precomp import resolve_precomp_dir
from retrieval.evaluation import average_sims, evaluate_protocol, hard_subset_metrics, load_hard_groups
from retrieval.evaluation.checkpoint import evaluate_checkpoint
from retrieval.models import MODELS
from retrieval.train import train
from shared.io import atomic_path, write_json

log = logging.getLogger(__name__)

#: default SynScenes size of this job (the generator's own default is 3000/200/1000)
SIZES = {"n_train": 1000, "n_dev": 200, "n_test": 500}
DONE = "dataset_synscenes.json"
#: ensemble row → the rows whose test similarity matrices it averages (docs/retrieval.md, "Ensembles")
ENSEMBLES = {"3shnet_region+grid": ("3shnet", "3shnet_grid"), "hire*": ("hire_i2t", "hire_t2i")}


def ensure_data(out: Path, seed: int, progress: bool) -> Path:
    """Generate SynScenes and its parse caches under `out` unless already done."""
    from retrieval.parsing import create_backend
    from retrieval.parsing.cache import ParseCache, build_caches
    from retrieval.synth.generate import generate

    data = out / "synscenes"
    if not (data / DONE).is_file():
        generate(data, seed=seed, progress=progress, **SIZES)
    precomp = resolve_precomp_dir(data)
    build_caches(ParseCache(precomp, "spacy"), precomp.splits(), lambda: create_backend("spacy"), progress=progress)
    return data


#: extra rows: row name → (model, its registered config); 3SHNet also runs on the grid features
EXTRA_ROWS = {"3shnet_grid": ("3shnet", "tiny_grid")}


def runs(models: Sequence[str] | None) -> list[tuple[str, str, str]]:
    """(row name, model, config key of the model) for every model; 3SHNet adds its grid variant."""
    out = []
    for model in MODELS.names() if models is None else models:
        model = MODELS.get(model).name
        out.append((model, model, "tiny"))
        out += [(row, model, config) for row, (owner, config) in EXTRA_ROWS.items() if owner == model]
    return out


def format_table(results: dict[str, dict[str, Any]]) -> str:
    keys = ("i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10", "rsum")
    header = f"{'model':<17}" + "".join(f"{k:>8}" for k in keys) + f"{'hard rSum':>11}{'train s':>9}"
    lines = [header, "-" * len(header)]
    for name, result in results.items():
        metrics = result["metrics"]
        hard = result.get("hard", {}).get("subset", {}).get("rsum", float("nan"))
        seconds = result.get("seconds")
        lines.append(f"{name:<17}" + "".join(f"{metrics[k]:8.1f}" for k in keys) + f"{hard:11.1f}"
                     + (f"{seconds:9.0f}" if seconds is not None else f"{'':>9}"))
    return "\n".join(lines)


def plot_rsum(results: dict[str, dict[str, Any]], path: Path) -> None:
    """Bar chart of test rSum and hard-subset rSum per model (PNG, written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    full = [results[n]["metrics"]["rsum"] for n in names]
    hard = [results[n].get("hard", {}).get("subset", {}).get("rsum", 0.0) for n in names]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(names)), 4))
    ax.bar(x - 0.2, full, 0.4, label="test rSum")
    ax.bar(x + 0.2, hard, 0.4, label="hard-subset rSum")
    ax.set_xticks(x, names, rotation=30)
    ax.set_ylabel("rSum (max 600)")
    ax.set_title("SynScenes test split")
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def run_default(out: str | Path = "runs/retrieval-default", device: str = "auto", models: Sequence[str] | None = None,
                overrides: Sequence[str] = (), seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """The whole main job; returns the results also written to ``OUT/results.json``."""
    out = Path(out)
    began = time.time()
    data = ensure_data(out, seed, progress)
    results: dict[str, dict[str, Any]] = {}
    for row, model, config_name in runs(models):
        log.info("== training %s (%s)", row, MODELS.get(model).config_name(config_name))
        config = MODELS.load_config(model, config_name, overrides)
        start = time.time()
        best = train(model, data, config, out / row, device=device, show_progress=progress)
        seconds = time.time() - start
        report = evaluate_checkpoint(best, data, "test", "full", device, save=out / row / "test_sims.npy",
                                     progress=progress)
        write_json(out / row / "eval.json", report)
        results[row] = {"metrics": report["metrics"], "hard": report.get("hard"), "seconds": seconds}
    hard_file = resolve_precomp_dir(data).file("test", "hard.json")
    for row, members in ENSEMBLES.items():
        if set(members) <= set(results):
            sims = average_sims([out / member / "test_sims.npy" for member in members])
            results[row] = {"metrics": evaluate_protocol(sims, "full"),
                            "hard": hard_subset_metrics(sims, load_hard_groups(hard_file))}
    summary = {"data": str(data), "results": results, "seconds": round(time.time() - began, 1)}
    write_json(out / "results.json", summary)
    if results:
        plot_rsum(results, out / "rsum.png")
    return json.loads(json.dumps(summary))
