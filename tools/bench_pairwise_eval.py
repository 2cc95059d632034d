"""Benchmark: our tiled pairwise scorer vs a per-caption loop in the public code's style.

Same model, same run, same encoded features: a randomly initialised pairwise model (default HiRE
image-to-text, tiny config) scores ``--images`` random images (``--regions`` BUTD-shaped regions,
VSSG adjacency of random boxes) against ``5 × --images`` random captions (BERT ids, lengths
``--caption-length``/2 … ``--caption-length``) twice:

* ours: `retrieval.evaluation.similarity.pairwise_similarity` — every item encoded once, then one
  batched `forward_sim` per (image block × caption block) tile sized by ``--budget-mb``;
* loop: SCAN / DIME ``shard_xattn`` style (docs/retrieval.md), written here: the same encoded
  features, then for every caption, for every shard of ``--shard`` images, the caption is repeated
  over the shard and the model's aligned scorer (`score_pairs`, the equations applied pair by pair)
  scores it — one Python iteration per caption and shard.

The two matrices must agree to 1e-5 (asserted).  Printed: seconds, the ratio, the peak resident
memory added by each method (VmHWM reset through /proc/self/clear_refs before it), and two COCO-5K
projections (5,000 × 25,000 = 1.25e8 pairs): our measured pairs/s on this CPU, and the matmul FLOPs
of one pair (``torch.utils.flop_counter``; element-wise work not counted) for the measured model and
for the paper config (D = 1024) divided by ``--gpu-tflops`` sustained float32 TFLOP/s on one GPU.

    .venv/bin/python tools/bench_pairwise_eval.py [--images 200] [--threads 1] [--json OUT]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from retrieval.evaluation.checkpoint import PAIRWISE_TILE_MB
from retrieval.evaluation.similarity import pairwise_similarity
from retrieval.models import MODELS, build_model
from retrieval.models.base import PairwiseRetrievalModel
from retrieval.parsing.region_graph import region_adjacency
from retrieval.models import CONFIG_DIR
from shared.config import load_config
from shared.io import write_json

COCO5K_PAIRS = 5000 * 25000
BERT_IDS = (1000, 30000)  # word-piece ids from the (MiniLM / BERT) vocabulary body
ENCODE_BATCH = 128
TOLERANCE = 1e-5


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := current RSS (Linux ≥ 4.0)


def random_split(n_images: int, regions: int, caption_length: int, seed: int) -> tuple[dict, dict]:
    """Images (regions, full mask, VSSG adjacency of random boxes) and 5 captions per image."""
    g = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    corner = rng.uniform(0, 60, (n_images, regions, 2))
    boxes = np.concatenate([corner, corner + rng.uniform(5, 40, (n_images, regions, 2))], axis=-1)
    images = {"regions": torch.randn(n_images, regions, 2048, generator=g),
              "region_mask": torch.ones(n_images, regions, dtype=torch.bool),
              "region_graph": torch.from_numpy(region_adjacency(boxes))}
    n_caps = 5 * n_images
    lengths = torch.randint(max(3, caption_length // 2), caption_length + 1, (n_caps,), generator=g)
    valid = torch.arange(caption_length).unsqueeze(0) < lengths.unsqueeze(1)
    texts = {"input_ids": torch.randint(*BERT_IDS, (n_caps, caption_length), generator=g) * valid,
             "attention_mask": valid.long()}
    return images, texts


def batches(data: dict[str, torch.Tensor], keys: tuple[str, ...] | None = None) -> list[dict[str, torch.Tensor]]:
    """Loader-style batches of ENCODE_BATCH items (captions trimmed to their batch's longest)."""
    n = next(iter(data.values())).shape[0]
    out = []
    for start in range(0, n, ENCODE_BATCH):
        batch = {k: v[start:start + ENCODE_BATCH] for k, v in data.items() if keys is None or k in keys}
        if "attention_mask" in batch:
            longest = int(batch["attention_mask"].sum(1).max())
            batch = {k: v[:, :longest] for k, v in batch.items()}
        out.append(batch)
    return out


def loop_similarity(model: PairwiseRetrievalModel, image_blocks: list[dict], text_blocks: list[dict], shard: int) -> np.ndarray:
    """Public-code style: items encoded once, then per caption and image shard one aligned scoring call."""
    with torch.inference_mode():
        images = [model.encode_images(block) for block in image_blocks]
        image_feats = {k: torch.cat([b[k] for b in images]) for k in images[0]}
        captions = [{k: v[j:j + 1] for k, v in block.items()} for block in map(model.encode_texts, text_blocks)
                    for j in range(next(iter(block.values())).shape[0])]
        n_images = next(iter(image_feats.values())).shape[0]
        sims = np.zeros((n_images, len(captions)), dtype=np.float32)
        for j, caption in enumerate(captions):
            for start in range(0, n_images, shard):
                shard_feats = {k: v[start:start + shard] for k, v in image_feats.items()}
                size = next(iter(shard_feats.values())).shape[0]
                repeated = {k: v.expand(size, *v.shape[1:]) for k, v in caption.items()}
                sims[start:start + size, j] = model.score_pairs(shard_feats, repeated).float().cpu().numpy()
    return sims


def measure(fn) -> tuple[Any, float, float]:
    """(result, wall seconds, peak RSS added in MB) of one call."""
    before = _status_kb("VmRSS")
    _reset_peak()
    began = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - began
    return result, seconds, (_status_kb("VmHWM") - before) / 1024


def flops_per_pair(model: PairwiseRetrievalModel, regions: int, caption_length: int, seed: int) -> float:
    """Matmul FLOPs of `forward_sim` per pair on a 4 × 4 tile (element-wise work not counted)."""
    images, texts = random_split(4, regions, caption_length, seed)
    texts = {k: v[:4] for k, v in texts.items()}
    model.eval()
    with torch.inference_mode():
        fi, ft = model.encode_images({k: images[k] for k in model.image_inputs()}), model.encode_texts(texts)
        with FlopCounterMode(display=False) as counter:
            model.forward_sim(fi, ft)
    return counter.get_total_flops() / 16


def build(name: str, config_name: str, paper_bert_layers: int | None = None) -> tuple[PairwiseRetrievalModel, dict]:
    config = load_config(CONFIG_DIR / f"{config_name}.yaml")
    if paper_bert_layers is not None:  # FLOPs of forward_sim do not involve BERT: keep it small
        config["model"]["bert"] = {**config["model"].get("bert", {}), "pretrained": False,
                                   "arch": {"num_hidden_layers": paper_bert_layers}}
    model = build_model(name, config, pretrained=False)
    if not isinstance(model, PairwiseRetrievalModel):
        raise SystemExit(f"{name} is not a pairwise model")
    return model, config


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    pairwise = [n for n in MODELS.names()  # pairwise models with an aligned one-pair-at-a-time scorer
                if issubclass(MODELS.get(n).cls, PairwiseRetrievalModel) and hasattr(MODELS.get(n).cls, "score_pairs")]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="hire_i2t", choices=pairwise, help="pairwise model (default hire_i2t)")
    parser.add_argument("--config", default=None, help="packaged config (default: the model's tiny config)")
    parser.add_argument("--paper-config", default=None, help="config for the FLOP projection (default: the model's coco config)")
    parser.add_argument("--images", type=int, default=200, help="images (captions = 5x; the issue asks 1000 if feasible)")
    parser.add_argument("--regions", type=int, default=36, help="regions per image (BUTD: 36)")
    parser.add_argument("--caption-length", type=int, default=20, help="longest caption (word pieces)")
    parser.add_argument("--shard", type=int, default=128, help="image shard of the loop (SCAN shard_size 128)")
    parser.add_argument("--budget-mb", type=float, default=PAIRWISE_TILE_MB["cpu"],
                        help=f"tile memory budget of our scorer (default {PAIRWISE_TILE_MB['cpu']:g}, the evaluator's on CPU)")
    parser.add_argument("--gpu-tflops", type=float, default=10.0,
                        help="sustained float32 TFLOP/s assumed for one GPU (default 10)")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, metavar="OUT", help="write every measurement as JSON")
    args = parser.parse_args(argv)
    for option in ("images", "regions", "shard", "threads"):
        if getattr(args, option) < 1:
            parser.error(f"--{option} must be at least 1")
    if args.caption_length < 4 or args.budget_mb <= 0 or args.gpu_tflops <= 0:
        parser.error("--caption-length must be >= 4, --budget-mb and --gpu-tflops > 0")
    return args


def main(argv: list[str] | None = None) -> int:
    """Score the split both ways, assert equal scores, print times, memory and projections."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    config_name = args.config or MODELS.get(args.model).config_name("tiny")
    torch.manual_seed(args.seed)
    model, _ = build(args.model, config_name)
    model.eval()
    images, texts = random_split(args.images, args.regions, args.caption_length, args.seed)
    image_blocks, text_blocks = batches(images, model.image_inputs()), batches(texts)
    ours, ours_s, ours_mb = measure(lambda: pairwise_similarity(model, image_blocks, text_blocks,
                                                                memory_budget_mb=args.budget_mb, progress=False))
    loop, loop_s, loop_mb = measure(lambda: loop_similarity(model, image_blocks, text_blocks, args.shard))
    max_diff = float(np.abs(ours - loop).max())
    assert max_diff <= TOLERANCE, f"tile and loop scores differ by {max_diff}"
    pairs = ours.size
    measured_flops = flops_per_pair(model, args.regions, args.caption_length, args.seed)
    paper_name = args.paper_config or MODELS.get(args.model).config_name("coco")
    paper_model, paper_config = build(args.model, paper_name, paper_bert_layers=1)
    paper_flops = flops_per_pair(paper_model, args.regions, args.caption_length, args.seed)
    report = {
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "torch": torch.__version__, "threads": torch.get_num_threads(), "model": args.model, "config": config_name,
        "images": args.images, "captions": 5 * args.images, "pairs": pairs, "max_abs_diff": max_diff,
        "ours_seconds": ours_s, "loop_seconds": loop_s, "speedup": loop_s / ours_s,
        "ours_peak_mb": ours_mb, "loop_peak_mb": loop_mb,
        "ours_pairs_per_s": pairs / ours_s, "loop_pairs_per_s": pairs / loop_s,
        "coco5k_cpu_hours_ours": COCO5K_PAIRS / (pairs / ours_s) / 3600,
        "coco5k_cpu_hours_loop": COCO5K_PAIRS / (pairs / loop_s) / 3600,
        "flops_per_pair": measured_flops, "paper_config": paper_name, "paper_flops_per_pair": paper_flops,
        "coco5k_gpu_seconds": COCO5K_PAIRS * measured_flops / (args.gpu_tflops * 1e12),
        "coco5k_gpu_seconds_paper": COCO5K_PAIRS * paper_flops / (args.gpu_tflops * 1e12),
    }
    print(f"{args.model} ({config_name}), {args.images} images x {5 * args.images} captions = {pairs:,} pairs, "
          f"{args.regions} regions, captions <= {args.caption_length} word pieces; "
          f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    print(f"identical scores: max |ours - loop| = {max_diff:.2e} (<= {TOLERANCE})")
    print(f"{'method':<44}{'seconds':>10}{'pairs/s':>12}{'peak +MB':>10}")
    print(f"{'ours: tiles of forward_sim':<44}{ours_s:>10.2f}{pairs / ours_s:>12.0f}{ours_mb:>10.1f}")
    print(f"{'loop: per caption x shard of ' + str(args.shard) + ' (public style)':<44}{loop_s:>10.2f}"
          f"{pairs / loop_s:>12.0f}{loop_mb:>10.1f}")
    print(f"speed-up: {loop_s / ours_s:.1f}x")
    print(f"COCO 5K (1.25e8 pairs) on this CPU: ours {report['coco5k_cpu_hours_ours']:.2f} h, "
          f"loop {report['coco5k_cpu_hours_loop']:.2f} h")
    print(f"COCO 5K on one GPU at {args.gpu_tflops:g} TFLOP/s (matmul FLOPs only): {config_name} "
          f"{measured_flops / 1e6:.2f} MFLOP/pair -> {report['coco5k_gpu_seconds']:.0f} s; {paper_name} "
          f"{paper_flops / 1e6:.1f} MFLOP/pair -> {report['coco5k_gpu_seconds_paper'] / 60:.1f} min")
    if args.json is not None:
        write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
