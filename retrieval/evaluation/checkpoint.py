"""Checkpoint evaluation shared by every retrieval model: `retrieval evaluate` (and the dev split in training).

A checkpoint is rebuilt from its sidecar (model name, config, vocabulary or tokenizer folder), the
split's images and captions are each encoded once, and the similarity matrix is scored under a
protocol (F30K 1K, COCO 1K as 5 folds, COCO 5K, or ``full``) by `retrieval.evaluation`.  The matrix
can be saved for ensembles (HiRE*, 3SHNet region+grid); on SynScenes the hard subset is scored too;
on real data the published number of the same model is printed beside ours.  A matrix holding NaN
or ±inf is a one-line `UserError` naming the checkpoint and split (training: the epoch).
"""

from __future__ import annotations

from pathlib import Path
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch
import yaml
from torch.utils.data import DataLoader

from retrieval.data.pairs import CaptionStream, ImageStream, TextEncoding, check_model_inputs
from retrieval.data.precomp import PrecompSplit, load_split, resolve_precomp_dir
from retrieval.evaluation import evaluate_protocol, hard_subset_metrics, load_hard_groups, save_sims
from retrieval.evaluation.metrics import is_collapsed
from retrieval.evaluation.similarity import PairwiseModel, compute_similarity, model_device
from retrieval.evaluation.tiles import Shard, TileJournal
from retrieval.models import load_model
from shared.errors import UserError
from shared.metrics.ranking import check_finite

PAPER_RESULTS = Path(__file__).resolve().parents[1] / "results" / "paper_results.yaml"
PAPER_KEYS = ("i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10", "rsum")
REAL_DATASETS = ("f30k", "coco")
#: tile memory budget of pairwise models per device type: on CPU, tiles past ~32 MB of working memory
#: run slower (fresh large temporaries are page-faulted on every call; HiRE tiny: 2.8x at 512 MB)
PAIRWISE_TILE_MB = {"cpu": 32.0, "cuda": 512.0}


@dataclass(frozen=True)
class DevEvaluation:
    """The dev scores of one epoch: metrics, and whether the matrix collapsed (`is_collapsed`)."""

    metrics: dict[str, float]
    collapsed: bool
    score_min: float
    score_max: float


def dev_evaluation(model: torch.nn.Module, split: PrecompSplit, text: TextEncoding, batch_size: int,
                   progress: bool = True, label: str = "dev") -> DevEvaluation:
    """Exact evaluation of `model` on a split (every image and caption encoded once).

    A NaN or ±inf score is a one-line `UserError` naming `label` (training passes the epoch).
    """
    sims = split_similarity(model, split, text, batch_size, progress)
    lo, hi = check_finite(sims, label)
    metrics = evaluate_protocol(sims, "full", source=label)
    return DevEvaluation(metrics, is_collapsed(lo, hi), lo, hi)


def split_similarity(model: torch.nn.Module, split: PrecompSplit, text: TextEncoding, batch_size: int,
                     progress: bool = True, shard: Shard = Shard(), journal: TileJournal | None = None,
                     tile_mb: float | None = None) -> np.ndarray:
    """The (images × captions) similarity matrix of a split; a pairwise model's tiles are shared out
    over the ranks of `shard` and kept in `journal` (`retrieval.evaluation.tiles`)."""
    images = ImageStream(split, model.image_inputs())
    captions = CaptionStream(split.captions, text)
    image_loader = DataLoader(images, batch_size=batch_size, collate_fn=images.collate)
    caption_loader = DataLoader(captions, batch_size=batch_size, collate_fn=captions.collate)
    options = {}
    if isinstance(model, PairwiseModel):
        options["memory_budget_mb"] = tile_mb or PAIRWISE_TILE_MB.get(model_device(model).type, PAIRWISE_TILE_MB["cuda"])
        options.update(shard=shard, journal=journal)
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        sims = compute_similarity(model, image_loader, caption_loader, progress=progress, **options)
    model.train(was_training)
    return sims


def paper_row(dataset: str | None, protocol: str, meta: Mapping[str, Any]) -> dict[str, float] | None:
    """The published metrics of the same model on a real dataset and protocol, or None."""
    if dataset not in REAL_DATASETS:
        return None
    table = yaml.safe_load(PAPER_RESULTS.read_text()).get(protocol, {})
    variant = (meta["config"].get("model") or {}).get("variant")
    key = f"{meta['model']}_{variant}" if variant and variant != "region" else meta["model"]
    return dict(zip(PAPER_KEYS, table[key])) if key in table else None


def check_semantic_edges(model: Any, data: Any, precomp: Any, split: str) -> None:
    """A model whose config asks for scene-graph edges (HiRE ``semantic_edges: true``, the thesis §7.4.1)
    needs ``{split}_scene_graphs.jsonl``: its absence is a one-line error, never a silent IoU-only graph."""
    config = getattr(model, "config", None)
    if not getattr(config, "semantic_edges", False) or "region_graph" not in model.image_inputs():
        return
    if getattr(data, "scene_graphs", None) is None:
        raise UserError(f"{precomp.file(split, 'scene_graphs.jsonl')}: missing; model.semantic_edges=true builds the "
                        f"visual graph from IoU and scene-graph edges (the thesis §7.4.1) — add the scene graphs, or set "
                        f"model.semantic_edges=false for IoU-only edges on purpose")


def evaluate_checkpoint(checkpoint: str | Path, data_dir: str | Path, split: str = "test", protocol: str = "full",
                        device: str = "auto", name: str | None = None, save: str | Path | None = None,
                        batch_size: int = 128, progress: bool = True, shard: Shard = Shard(),
                        journal: str | Path | None = None, tile_mb: float | None = None) -> dict[str, Any] | None:
    """Score a checkpoint on a split; returns the JSON report (metrics, hard subset, paper row).

    Under torchrun pass this process's `shard`: the ranks share a pairwise model's tiles, and
    only rank 0 scores, saves and returns the report (the others return None).  `journal` keeps
    finished tiles on disk so a rerun continues (`retrieval.evaluation.tiles`).
    """
    model, meta, text = load_model(checkpoint, device)
    precomp = resolve_precomp_dir(data_dir, name)
    data = load_split(precomp, split, feature_dim=None, dev_max_images=None)
    check_semantic_edges(model, data, precomp, split)
    check_model_inputs(data, model, f"{precomp.path} {split}")
    tiles = None
    if journal is not None:
        tiles = TileJournal(journal, {"checkpoint_save_id": meta.get("save_id"), "data": str(precomp.path.resolve()),
                                      "split": split, "batch_size": batch_size})
        tiles.check()  # a journal of another evaluation is refused before any encoding
    sims = split_similarity(model, data, text, batch_size, progress and shard.rank == 0, shard, tiles, tile_mb)
    if shard.rank != 0:
        return None
    label = f"{checkpoint} on {precomp.name} {split}"
    check_finite(sims, label)  # before saving: a NaN matrix is refused, not written
    if save is not None:
        save_sims(save, sims)
    report: dict[str, Any] = {"model": meta["model"], "checkpoint": str(checkpoint), "dataset": precomp.name,
                              "split": split, "protocol": protocol, "images": int(sims.shape[0]),
                              "metrics": evaluate_protocol(sims, protocol, source=label)}
    hard_file = precomp.file(split, "hard.json")
    if hard_file.is_file():
        report["hard"] = hard_subset_metrics(sims, load_hard_groups(hard_file), source=label)
    paper = paper_row(_dataset_family(precomp.name), protocol, meta)
    if paper is not None:
        report["paper"] = paper
    if tiles is not None:
        tiles.remove()  # the matrix is complete (and saved if asked): the journal has done its job
    return report


def _dataset_family(name: str) -> str | None:
    lowered = name.lower()
    if lowered.startswith(("f30k", "flickr")):
        return "f30k"
    if lowered.startswith("coco"):
        return "coco"
    return None


def format_report(report: Mapping[str, Any]) -> str:
    """Our metrics (and the paper's, when known) as a plain-text table."""
    rows = [("ours", report["metrics"])]
    if "paper" in report:
        rows.append(("paper", report["paper"]))
    if "hard" in report:
        rows.append(("hard subset", report["hard"]["subset"]))
    header = f"{report['model']} on {report['dataset']} {report['split']} ({report['protocol']}, {report['images']} images)"
    lines = [header, f"{'':<12}" + "".join(f"{k:>9}" for k in PAPER_KEYS)]
    for label, metrics in rows:
        lines.append(f"{label:<12}" + "".join(f"{metrics[k]:9.1f}" for k in PAPER_KEYS))
    if "hard" in report:
        hard = report["hard"]
        lines.append(f"hard groups: within-group R@1 i2t {hard['group_i2t_r1']:.1f}, t2i {hard['group_t2i_r1']:.1f} "
                     f"(chance {hard['group_chance_r1']:.1f})")
    return "\n".join(lines)
