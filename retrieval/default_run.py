"""The main job on the embedded default (`make train-retrieval`): SynScenes → parse → train → evaluate → table.

Every registered model is trained with its tiny config (3SHNet twice: region and grid features),
evaluated on the test split and on its hard subset (distractors that differ only in attribute
binding or relation direction), and the ensemble rows average saved test matrices, as the thesis
does: 3SHNet region + grid, and HiRE* = HiRE image-to-text + text-to-image (`ENSEMBLES`).
Writes ``OUT/results.json``, ``OUT/results.md`` and ``OUT/rsum.png`` and returns the results; the command
prints the table (`format_table`, with the chance rSum of the test split) and every row's provenance
(`format_provenance`; `shared.provenance`: config file and overrides, SHA-256 of the resolved config,
training and data seeds, code version, protocol).
Each stage is skipped when its output is complete, so a second call only re-evaluates.

Two sizes (`MODES`): ``full`` (`make train-retrieval`) and ``fast`` (a smaller SynScenes, fewer
epochs, every model; the end-to-end test of `make test`).  ``data_only`` stops after generating and
parsing the data and writes no results (`make train-retrieval MODEL=x` uses it).
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from retrieval.data.precomp import resolve_precomp_dir
from retrieval.evaluation import average_sims, evaluate_protocol, hard_subset_metrics, load_hard_groups
from retrieval.evaluation.checkpoint import evaluate_checkpoint
from retrieval.models import MODELS
from retrieval.train import train
from shared.errors import UserError
from shared.io import atomic_open, atomic_path, write_json
from shared.provenance import code_version, config_sha256, describe_version
from shared.rows import check_jobs, jobs_note, run_rows

log = logging.getLogger(__name__)

DONE = "dataset_synscenes.json"
#: written next to the data once it is complete: the mode's SynScenes sizes and seed
DATA_SPEC = "default_run_data.json"
CAPTIONS_PER_IMAGE = 5


@dataclass(frozen=True)
class Mode:
    """One size of the default run: the SynScenes splits it generates and the overrides of every tiny
    config (applied before the user's)."""

    n_train: int
    n_dev: int
    n_test: int
    overrides: tuple[str, ...] = ()


#: ``full``: the job's SynScenes (the generator's own default is 3000/200/1000).  ``fast`` (our
#: decision, for the end-to-end test): 300/50/100 images, 3 epochs, 50 dev images; about 135 CPU s
#: for every row on the shared 2-core machine, each row at least 2x the chance rSum (31.6).
MODES = {
    "full": Mode(1000, 200, 500),
    "fast": Mode(300, 50, 100, ("train.epochs=3", "data.dev_max_images=50")),
}
#: ensemble row → the rows whose test similarity matrices it averages (docs/retrieval.md, "Ensembles")
ENSEMBLES = {"3shnet_region+grid": ("3shnet", "3shnet_grid"), "hire*": ("hire_i2t", "hire_t2i")}


def ensure_data(out: Path, seed: int, progress: bool, mode: Mode = MODES["full"]) -> Path:
    """Generate SynScenes and its parse caches under `out` unless already done.

    A folder holding data of another size or seed is refused (one line) rather than mixed."""
    from retrieval.parsing import create_backend
    from retrieval.parsing.cache import ParseCache, build_caches
    from retrieval.synth.generate import generate

    data = out / "synscenes"
    spec = {"generator": "SynScenes", "seed": seed, "n_train": mode.n_train, "n_dev": mode.n_dev, "n_test": mode.n_test}
    if (data / DATA_SPEC).is_file():
        held = json.loads((data / DATA_SPEC).read_text())
        if held != spec:
            raise UserError(f"{data}: holds SynScenes {held}, this run needs {spec}; choose another --out "
                            "or remove that folder")
    elif (data / DONE).is_file() and mode != MODES["full"]:
        # data of a run from before the size was recorded: only the full size existed then
        raise UserError(f"{data}: holds SynScenes of an older full run, this run needs {spec}; choose another "
                        "--out or remove that folder")
    if not (data / DONE).is_file():
        generate(data, seed=seed, progress=progress, n_train=mode.n_train, n_dev=mode.n_dev, n_test=mode.n_test)
    precomp = resolve_precomp_dir(data)
    build_caches(ParseCache(precomp, "spacy"), precomp.splits(), lambda: create_backend("spacy"), progress=progress)
    if not (data / DATA_SPEC).is_file():
        write_json(data / DATA_SPEC, spec)
    return data


#: extra rows: row name → (model, its registered config); 3SHNet also runs on the grid features
EXTRA_ROWS = {"3shnet_grid": ("3shnet", "tiny_grid")}


def chance_recall(n_images: int, k: int, captions_per_image: int = CAPTIONS_PER_IMAGE) -> tuple[float, float]:
    """R@K (%) of a random ranking on a test split of `n_images` images: image-to-text (any of the
    image's captions among K of all captions drawn at random) and text-to-image (K / images)."""
    total = captions_per_image * n_images
    k_i2t = min(k, total)
    miss = math.comb(total - captions_per_image, k_i2t) / math.comb(total, k_i2t)
    return 100.0 * (1.0 - miss), 100.0 * min(k, n_images) / n_images


def chance_rsum(n_images: int, captions_per_image: int = CAPTIONS_PER_IMAGE) -> float:
    """rSum (R@1 + R@5 + R@10, both directions, max 600) of a random ranking on `n_images` images."""
    return sum(sum(chance_recall(n_images, k, captions_per_image)) for k in (1, 5, 10))


def runs(models: Sequence[str] | None) -> list[tuple[str, str, str]]:
    """(row name, model, config key of the model) for every model; 3SHNet adds its grid variant."""
    out = []
    for model in MODELS.names() if models is None else models:
        model = MODELS.get(model).name
        out.append((model, model, "tiny"))
        out += [(row, model, config) for row, (owner, config) in EXTRA_ROWS.items() if owner == model]
    return out


def format_table(results: dict[str, dict[str, Any]], chance: float | None = None) -> str:
    """R@1/5/10 both directions, rSum, hard-subset rSum and training time per row; with `chance`, a last
    row with the rSum of a random ranking on the same test split."""
    keys = ("i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10", "rsum")
    header = f"{'model':<17}" + "".join(f"{k:>8}" for k in keys) + f"{'hard rSum':>11}{'train s':>9}"
    lines = [header, "-" * len(header)]
    for name, result in results.items():
        metrics = result["metrics"]
        hard = (result.get("hard") or {}).get("subset", {}).get("rsum", float("nan"))
        seconds = result.get("seconds")
        lines.append(f"{name:<17}" + "".join(f"{metrics[k]:8.1f}" for k in keys) + f"{hard:11.1f}"
                     + (f"{seconds:9.0f}" if seconds is not None else f"{'':>9}"))
    if chance is not None:
        lines.append(f"{'chance':<17}" + f"{'':>48}{chance:8.1f}")
    return "\n".join(lines)


def format_provenance(summary: dict[str, Any]) -> str:
    """The run's code version, data and protocol, and per row its config, hash and seed."""
    lines = [f"code {describe_version(summary['code_version'])}; {summary['mode']} mode; SynScenes seed "
             f"{summary['data_seed']}, test split {summary['test_images']} images" + jobs_note(summary)]
    lines += [f"protocol: {p}" for p in sorted({r["provenance"]["protocol"] for r in summary["results"].values()})]
    for name, result in summary["results"].items():
        prov = result["provenance"]
        overrides = f" {' '.join(prov['overrides'])}" if prov.get("overrides") else ""
        sha = f"sha256 {prov['config_sha256'][:12]}" if prov.get("config_sha256") else ""
        seed = f"seed {prov['seed']}" if prov.get("seed") is not None else ""
        lines.append(f"  {name:<17} {prov['config']}{overrides}  {sha}  {seed}".rstrip())
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


#: the protocol of every trained row (`retrieval train` selection, `retrieval evaluate` protocol)
PROTOCOL = ("full test split (R@K over every image and caption; hard subset: the distractor groups), "
            "weights of the epoch with the best dev {select}")


def write_markdown(summary: dict[str, Any], path: Path) -> None:
    """The table, the provenance and the chart as Markdown (for the README), written atomically."""
    text = ("# `make train-retrieval`: SynScenes test split\n\n```\n"
            + format_table(summary["results"], summary["chance_rsum"]) + "\n```\n\n```\n"
            + format_provenance(summary) + "\n```\n\n![rSum per model](rsum.png)\n")
    with atomic_open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def train_row(row: str, model: str, config_name: str | None, data: str, out: str, device: str,
              overrides: Sequence[str], progress: bool, version: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """One row: train `model` with its `config_name` config, evaluate the best epoch on the test split and
    its hard subset (``OUT/ROW/eval.json``, ``test_sims.npy``); returns (the row, the test split's images)."""
    stem = MODELS.get(model).config_name(config_name)
    log.info("== training %s (%s)", row, stem)
    config = MODELS.load_config(model, config_name, overrides)
    start = time.time()
    best = train(model, Path(data), config, Path(out) / row, device=device, show_progress=progress)
    seconds = time.time() - start
    report = evaluate_checkpoint(best, Path(data), "test", "full", device, save=Path(out) / row / "test_sims.npy",
                                 progress=progress)
    write_json(Path(out) / row / "eval.json", report)
    provenance = {"config": f"{stem}.yaml", "overrides": list(overrides), "config_sha256": config_sha256(config),
                  "seed": config["train"]["seed"], "code_version": version,
                  "protocol": PROTOCOL.format(select=config["train"].get("select_by", "rsum"))}
    log.info("== %s done: rSum %.1f (%.0f s)", row, report["metrics"]["rsum"], seconds)
    return ({"metrics": report["metrics"], "hard": report.get("hard"), "seconds": seconds, "provenance": provenance},
            report["images"])


def run_default(out: str | Path = "runs/retrieval-default", device: str = "auto", models: Sequence[str] | None = None,
                overrides: Sequence[str] = (), seed: int = 0, progress: bool = True, mode: str = "full",
                data_only: bool = False, jobs: int = 1) -> dict[str, Any]:
    """The whole main job; returns the results also written to ``OUT/results.json``.  With `data_only`,
    only generates and parses the data and returns ``{"data": folder}``; no result file is touched.
    `jobs` rows train at a time (`shared.rows.run_rows`; the table records it)."""
    if mode not in MODES:
        raise UserError(f"mode {mode!r}: choose one of {', '.join(MODES)}")
    check_jobs(jobs)
    planned = runs(models)
    if not planned and not data_only:
        raise UserError("--models: name at least one model (--data-only prepares the data without training)")
    out = Path(out)
    began = time.time()
    data = ensure_data(out, seed, progress, MODES[mode])
    if data_only:
        return {"data": str(data)}
    overrides = [*MODES[mode].overrides, *overrides]
    version = code_version()
    rows = run_rows(train_row, [(row, model, config_name, str(data), str(out), device, overrides,
                                 progress and jobs == 1, version) for row, model, config_name in planned],
                    jobs, show_progress=progress)
    results: dict[str, dict[str, Any]] = {}
    test_images = 0
    for (row, _, _), (result, images) in zip(planned, rows):
        results[row], test_images = result, images
    hard_file = resolve_precomp_dir(data).file("test", "hard.json")
    for row, members in ENSEMBLES.items():
        if set(members) <= set(results):
            sims = average_sims([out / member / "test_sims.npy" for member in members])
            results[row] = {"metrics": evaluate_protocol(sims, "full"),
                            "hard": hard_subset_metrics(sims, load_hard_groups(hard_file)),
                            "provenance": {"config": "mean of the test similarities of " + " + ".join(members),
                                           "code_version": version,
                                           "protocol": results[members[0]]["provenance"]["protocol"]}}
    summary = {"data": str(data), "mode": mode, "data_seed": seed, "jobs": jobs, "test_images": test_images,
               "chance_rsum": chance_rsum(test_images), "code_version": version, "results": results,
               "seconds": round(time.time() - began, 1)}
    plot_rsum(results, out / "rsum.png")
    write_markdown(summary, out / "results.md")
    write_json(out / "results.json", summary)
    return {**json.loads(json.dumps(summary)), "results_file": str(out / "results.json"), "chart": str(out / "rsum.png")}
