"""Benchmark: search backends and the 3SHNet speed protocol, ratios within one run.

1. **ANN vs exact** — ``--ann-size`` synthetic l2-normalised ``--dim``-d gallery vectors and
   ``--ann-queries`` queries from the same distribution (``--clusters`` Gaussian clusters of std
   ``--spread`` around N(0, 1) centres in an ``--intrinsic``-d subspace, plus isotropic noise: real
   embeddings are clustered, and uniform vectors on the 1,024-d sphere have no near neighbours for
   any index to find).  Exact search
   (`retrieval.search.backends.ExactBackend`, chunked matmul) gives the ground truth and its
   queries/s; FAISS IVF (``nprobe`` swept) and HNSW (``efSearch`` swept) report the queries/s of the
   cheapest setting with recall@10 ≥ ``--target-recall`` (0.98) and its ratio to exact.
2. **3SHNet §8.4.4 protocol** (docs/retrieval.md: cached features, time = similarity +
   ranking) — a ``--images`` × 5·``--images`` (5K × 25K) split of cached l2-normalised embeddings
   of each two-tower config's ``model.embed_dim`` (tiny and paper configs); t2i = every caption
   searches the images, i2t = every image searches the captions, top-10 by exact search;
   queries/s per direction.
3. **Pairwise two-stage vs full** — a real pairwise model (``--pairwise-model`` hire_i2t or
   hire_t2i, the BERT-input ones; default image-to-text; tiny config, random weights: speed does
   not depend on training) over cached encoded features of a ``--images`` × 5·``--images`` split
   of random BUTD-shaped images and BERT captions (``tools/bench_pairwise_eval.random_split``):
   full = `pairwise_similarity` tiles of ``--pairwise-queries`` queries against the whole split,
   two-stage = two-tower top-``--shortlist`` (100) then `rerank_shortlist`; queries/s both ways.

Throughput is queries over the median of ``--repeats`` timed runs after one warm-up.

    .venv/bin/python tools/bench_search.py [--quick] [--parts 1 2 3] [--threads 1] [--json OUT]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_pairwise_eval import batches, random_split  # noqa: E402
from bench_pairwise_eval import build as build_pairwise  # noqa: E402

from retrieval.evaluation.similarity import FeatureBank, pairwise_similarity  # noqa: E402
from retrieval.models import MODELS  # noqa: E402
from retrieval.models.base import PairwiseRetrievalModel  # noqa: E402
from retrieval.search.backends import BackendSpec, ExactBackend, FaissBackend, ivf_cells  # noqa: E402
from retrieval.search.index import SearchResult  # noqa: E402
from retrieval.search.rerank import rerank_shortlist  # noqa: E402
from shared.benchmark import per_second, time_steps  # noqa: E402
from shared.config import load_config  # noqa: E402
from shared.io import write_json  # noqa: E402

CONFIG_DIR = Path(__file__).resolve().parents[1] / "retrieval" / "configs"
TWO_TOWER_CONFIGS = ("vsepp_tiny", "vse_gpo_tiny", "smfea_tiny", "shnet_tiny", "shnet_grid_tiny",
                     "vsepp_f30k", "vse_gpo_f30k", "smfea_f30k", "shnet_f30k")
NPROBES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
EF_SEARCH = (16, 32, 64, 128, 256, 512, 1024)
TOPK = 10
#: pairwise models whose captions are BERT word pieces (`random_split` makes BERT ids): HiRE i2t / t2i
PAIRWISE_MODELS = [n for n in MODELS.names()
                   if issubclass(MODELS.get(n).cls, PairwiseRetrievalModel) and MODELS.get(n).cls.text_kind == "bert"]


def clustered_unit_rows(n: int, dim: int, intrinsic: int, clusters: int, spread: float, rng: np.random.Generator,
                        basis: np.ndarray, centres: np.ndarray, chunk: int = 65_536) -> np.ndarray:
    """`n` unit vectors: N(0, 1) cluster centre + N(0, spread²) in an `intrinsic`-d subspace, + N(0, 0.05²) in all `dim`."""
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        latent = centres[rng.integers(0, clusters, m)] + spread * rng.standard_normal((m, intrinsic))
        x = latent @ basis + 0.05 * rng.standard_normal((m, dim))
        out[start:start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def recall_at_10(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean |found ∩ truth| / 10 over the queries (recall@10 against exact search)."""
    return float(np.mean([len(set(a.tolist()) & set(b.tolist())) / TOPK for a, b in zip(found, truth)]))


def timed_qps(step: Callable[[], Any], queries: int, repeats: int) -> float:
    return per_second(queries, time_steps(step, 1, repeats))


def sweep(backend: FaissBackend, queries: np.ndarray, truth: np.ndarray, knob: str, values: tuple[int, ...],
          target: float, repeats: int) -> dict[str, Any]:
    """The cheapest `knob` value reaching `target` recall@10 and its queries/s (every tried value listed)."""
    tried = []
    for value in values:
        backend.spec = BackendSpec(**{**backend.spec.to_json(), knob: value})
        recall = recall_at_10(backend.search(queries, TOPK)[1], truth)
        tried.append({knob: value, "recall_at_10": recall})
        if recall >= target:
            qps = timed_qps(lambda: backend.search(queries, TOPK), len(queries), repeats)
            return {knob: value, "recall_at_10": recall, "qps": qps, "tried": tried}
    return {knob: None, "recall_at_10": tried[-1]["recall_at_10"], "qps": None, "tried": tried}


def bench_ann(args: argparse.Namespace) -> dict[str, Any]:
    """Part 1: FAISS IVF / HNSW vs exact at recall@10 ≥ target."""
    rng = np.random.default_rng(args.seed)
    basis = np.linalg.qr(rng.standard_normal((args.dim, args.intrinsic)))[0].T.astype(np.float32)
    centres = rng.standard_normal((args.clusters, args.intrinsic)).astype(np.float32)
    shape = (args.dim, args.intrinsic, args.clusters, args.spread, rng, basis, centres)
    gallery = clustered_unit_rows(args.ann_size, *shape)
    queries = clustered_unit_rows(args.ann_queries, *shape)
    exact = ExactBackend()
    exact.add(gallery)
    truth = exact.search(queries, TOPK)[1]
    exact_qps = timed_qps(lambda: exact.search(queries, TOPK), len(queries), args.repeats)
    report: dict[str, Any] = {"size": args.ann_size, "dim": args.dim, "queries": args.ann_queries,
                              "gallery_gib": gallery.nbytes / 2**30, "exact_qps": exact_qps}
    for kind, knob, values in (("ivf", "nprobe", NPROBES), ("hnsw", "ef_search", EF_SEARCH)):
        backend = FaissBackend(args.dim, BackendSpec(kind, hnsw_m=args.hnsw_m, ef_construction=args.ef_construction))
        began = time.perf_counter()
        backend.add(gallery)
        build = time.perf_counter() - began
        result = sweep(backend, queries, truth, knob, values, args.target_recall, args.repeats)
        result["build_seconds"] = build
        result["ratio_vs_exact"] = None if result["qps"] is None else result["qps"] / exact_qps
        if kind == "ivf":
            result["nlist"] = ivf_cells(args.ann_size, 0)
        report[kind] = result
        print(f"  {kind:<5} build {build:7.1f}s  {knob}={result[knob]}  recall@10 {result['recall_at_10']:.3f}  "
              f"{result['qps'] or 0:10.0f} q/s  ×{result['ratio_vs_exact'] or 0:.1f} vs exact ({exact_qps:.0f} q/s)")
    return report


def unit(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    x = rng.standard_normal(shape).astype(np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def bench_protocol(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Part 2: t2i and i2t queries/s over cached embeddings of every two-tower config (3SHNet §8.4.4)."""
    rows = []
    rng = np.random.default_rng(args.seed)
    for name in args.configs:
        dim = int(load_config(CONFIG_DIR / f"{name}.yaml")["model"]["embed_dim"])
        images, captions = unit((args.images, dim), rng), unit((5 * args.images, dim), rng)
        image_index, caption_index = ExactBackend(), ExactBackend()
        image_index.add(images)
        caption_index.add(captions)
        t2i = timed_qps(lambda: image_index.search(captions, TOPK), len(captions), args.repeats)
        i2t = timed_qps(lambda: caption_index.search(images, TOPK), len(images), args.repeats)
        rows.append({"config": name, "dim": dim, "t2i_qps": t2i, "i2t_qps": i2t})
        print(f"  {name:<16} {dim:5d}-d  t2i {t2i:10.0f} q/s  i2t {i2t:10.0f} q/s")
    return rows


class CachedPairwise(torch.nn.Module):
    """A pairwise model whose inputs are its own cached encodings (the protocol's "features cached")."""

    family = "pairwise"

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def encode_images(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return features

    def encode_texts(self, features: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return features

    def forward_sim(self, images: dict[str, torch.Tensor], texts: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.model.forward_sim(images, texts)


def encoded_bank(encode: Callable[[dict], dict], blocks: list[dict]) -> dict[str, torch.Tensor]:
    """Every block encoded once and joined into one feature dict (zero-padded to the longest item)."""
    bank = FeatureBank([encode(block) for block in tqdm(blocks, desc="encode", leave=False)])
    return bank.take(0, len(bank))


def rows_bank(features: dict[str, torch.Tensor]) -> Callable[[list[int]], FeatureBank]:
    return lambda rows: FeatureBank([{k: v[rows] for k, v in features.items()}])


def bench_pairwise(args: argparse.Namespace) -> dict[str, Any]:
    """Part 3: two-stage (two-tower shortlist + pairwise re-scoring) vs full pairwise scoring."""
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    config = MODELS.get(args.pairwise_model).config_name("tiny")
    model, _ = build_pairwise(args.pairwise_model, config)
    model.eval()
    n_images = args.images
    raw_images, raw_texts = random_split(n_images, 36, args.caption_length, args.seed)
    with torch.inference_mode():
        images = encoded_bank(model.encode_images, batches(raw_images, model.image_inputs()))
        captions = encoded_bank(model.encode_texts, batches(raw_texts))
    n_captions = len(captions["mask"])
    image_emb, caption_emb = unit((n_images, 1024), rng), unit((n_captions, 1024), rng)
    cached = CachedPairwise(model)
    q_t2i, q_i2t = args.pairwise_queries, max(1, args.pairwise_queries // 5)
    text_queries = {k: v[:q_t2i] for k, v in captions.items()}
    image_queries = {k: v[:q_i2t] for k, v in images.items()}
    image_index, caption_index = ExactBackend(), ExactBackend()
    image_index.add(image_emb)
    caption_index.add(caption_emb)
    image_items, caption_items = [{}] * n_images, [{}] * n_captions
    budget = args.memory_mb

    def full_t2i():
        return pairwise_similarity(cached, [images], [text_queries], memory_budget_mb=budget, progress=False)

    def full_i2t():
        return pairwise_similarity(cached, [image_queries], [captions], memory_budget_mb=budget, progress=False)

    def two_stage_t2i():
        scores, ids = image_index.search(caption_emb[:q_t2i], args.shortlist)
        return rerank_shortlist(SearchResult(scores, ids, []), image_items, TOPK, 1, rows_bank(images),
                                FeatureBank([text_queries]), lambda gal, q: model.forward_sim(gal, q), model)

    def two_stage_i2t():
        scores, ids = caption_index.search(image_emb[:q_i2t], args.shortlist)
        return rerank_shortlist(SearchResult(scores, ids, []), caption_items, TOPK, 1, rows_bank(captions),
                                FeatureBank([image_queries]), lambda gal, q: model.forward_sim(q, gal).T, model)

    with torch.inference_mode():
        report = {"model": args.pairwise_model, "config": config, "images": n_images, "captions": n_captions,
                  "shortlist": args.shortlist, "caption_length": args.caption_length,
                  "t2i_queries": q_t2i, "i2t_queries": q_i2t,
                  "full_t2i_qps": timed_qps(full_t2i, q_t2i, args.repeats),
                  "two_stage_t2i_qps": timed_qps(two_stage_t2i, q_t2i, args.repeats),
                  "full_i2t_qps": timed_qps(full_i2t, q_i2t, args.repeats),
                  "two_stage_i2t_qps": timed_qps(two_stage_i2t, q_i2t, args.repeats)}
    for direction in ("t2i", "i2t"):
        report[f"{direction}_speedup"] = report[f"two_stage_{direction}_qps"] / report[f"full_{direction}_qps"]
        print(f"  {args.pairwise_model} {direction}: full {report[f'full_{direction}_qps']:8.2f} q/s, two-stage (shortlist "
              f"{args.shortlist}) {report[f'two_stage_{direction}_qps']:8.2f} q/s  ×{report[f'{direction}_speedup']:.1f}")
    return report


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (tests)")
    parser.add_argument("--parts", nargs="+", type=int, choices=(1, 2, 3), default=[1, 2, 3],
                        help="which measurements to run (default all three)")
    parser.add_argument("--threads", type=int, default=1, help="torch and FAISS threads (default 1: shared machine)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ann-size", type=int, default=200_000)
    parser.add_argument("--ann-queries", type=int, default=1000)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--intrinsic", type=int, default=64)
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--spread", type=float, default=1.0, help="within-cluster std (centres are N(0, 1))")
    parser.add_argument("--hnsw-m", type=int, default=32)
    parser.add_argument("--ef-construction", type=int, default=80)
    parser.add_argument("--target-recall", type=float, default=0.98)
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--configs", nargs="+", default=list(TWO_TOWER_CONFIGS))
    parser.add_argument("--pairwise-model", default="hire_i2t", choices=PAIRWISE_MODELS,
                        help="pairwise model of part 3 (tiny config, random weights)")
    parser.add_argument("--caption-length", type=int, default=20, help="longest caption of part 3 (word pieces)")
    parser.add_argument("--pairwise-queries", type=int, default=20)
    parser.add_argument("--shortlist", type=int, default=100)
    parser.add_argument("--memory-mb", type=float, default=512.0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.ann_size, args.ann_queries, args.dim, args.clusters = 3000, 50, 64, 30
        args.images, args.configs = 200, args.configs[:1]
        args.pairwise_queries, args.shortlist = 5, 20
    return args


def main(argv: list[str] | None = None) -> int:
    import faiss

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    settings = {k: v for k, v in vars(args).items() if k != "json"}
    print(f"search benchmark, {args.threads} thread(s), {platform.processor() or platform.machine()}")
    ann = protocol = pairwise = None
    if 1 in args.parts:
        print(f"1. ANN vs exact: {args.ann_size:,} × {args.dim} clustered unit vectors, {args.ann_queries} queries")
        ann = bench_ann(args)
    if 2 in args.parts:
        print(f"2. 3SHNet §8.4.4 protocol: {args.images:,} images × {5 * args.images:,} captions, cached embeddings, top-{TOPK}")
        protocol = bench_protocol(args)
    if 3 in args.parts:
        print(f"3. pairwise: two-stage (shortlist {args.shortlist}) vs full scoring, {args.pairwise_model} (tiny)")
        pairwise = bench_pairwise(args)
    report = {"settings": settings, "torch": torch.__version__, "faiss": faiss.__version__, "ann": ann,
              "protocol": protocol, "pairwise": pairwise}
    if args.json:
        write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
