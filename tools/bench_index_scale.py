"""Benchmark: the bounded-memory IVF-PQ index against exact search on a million-row gallery, in one run.

The gallery is ``--rows`` (10⁶) synthetic l2-normalised ``--dim``-d (1,024) embeddings stored as
``--dtype`` (float16 by default, 2 GiB; what ``retrieval index build --dtype float16`` keeps), and
``--queries`` held-out queries are drawn the same way.  The rows are clustered, not uniform noise
(uniform vectors on the 1,024-d sphere have no near neighbours for any index to find): each row is
a point of one of ``--clusters`` Gaussian clusters (centres N(0, 1), within-cluster std
``--spread``) in a random ``--intrinsic``-d subspace (64), plus N(0, 0.05²) noise in every
dimension, then l2-normalised.

Exact search (`retrieval.search.backends.ExactBackend`, chunked matmul over the stored rows) gives
the true top-10 and its queries/s.  IVF-PQ (`FaissBackend` kind ``ivfpq``: uncentred PCA to 256-d,
IVF with 4·√N cells trained on a sample of 40 rows per cell, 32-byte PQ codes, the ``--rerank``
best re-scored by exact dot products with the stored rows) is built with the defaults
``retrieval index build --backend ivfpq`` uses, then searched at each ``--nprobe``; every row of
the table gives recall@10 against exact, queries/s, and the ratio to exact measured in this same
process.  Both searches take all queries in one batch and use ``--threads`` threads.

    .venv/bin/python tools/bench_index_scale.py [--rows 1000000] [--dim 1024] [--nprobe 8 16 32] [--json OUT]
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from retrieval.search.backends import BackendSpec, ExactBackend, FaissBackend, ivfpq_shape  # noqa: E402
from shared.io import write_json  # noqa: E402

TOPK = 10


def clustered_rows(n: int, dtype: str, rng: np.random.Generator, basis: np.ndarray, centres: np.ndarray,
                   spread: float, chunk: int = 65_536) -> np.ndarray:
    """`n` unit rows (module doc): cluster centre + N(0, spread²) in the subspace `basis`, + N(0, 0.05²) noise."""
    dim, intrinsic = basis.shape[1], basis.shape[0]
    out = np.empty((n, dim), dtype)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        latent = centres[rng.integers(0, len(centres), m)] + spread * rng.standard_normal((m, intrinsic), np.float32)
        x = latent @ basis + 0.05 * rng.standard_normal((m, dim), np.float32)
        out[start : start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def recall_at_10(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean |found ∩ truth| / 10 over the queries."""
    return float(np.mean([len(set(a.tolist()) & set(b.tolist())) / TOPK for a, b in zip(found, truth)]))


def timed(step) -> tuple[float, Any]:
    began = time.perf_counter()
    out = step()
    return time.perf_counter() - began, out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--dtype", default="float16", choices=("float16", "float32"))
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--intrinsic", type=int, default=64)
    parser.add_argument("--clusters", type=int, default=2000)
    parser.add_argument("--spread", type=float, default=0.6, help="within-cluster std (centres are N(0, 1))")
    parser.add_argument("--nprobe", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--rerank", type=int, default=100, help="IVF-PQ shortlist re-scored exactly")
    parser.add_argument("--nlist", type=int, default=0, help="IVF cells (0: 4·sqrt(N), the index default)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch and FAISS threads, the same for both (default 1: OpenMP on a shared 2-core machine is slower with 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    import faiss

    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    basis = np.linalg.qr(rng.standard_normal((args.dim, args.intrinsic)))[0].T.astype(np.float32)
    centres = rng.standard_normal((args.clusters, args.intrinsic)).astype(np.float32)
    seconds, gallery = timed(lambda: clustered_rows(args.rows, args.dtype, rng, basis, centres, args.spread))
    queries = clustered_rows(args.queries, "float32", rng, basis, centres, args.spread)
    print(f"gallery {args.rows:,} x {args.dim} {args.dtype} ({gallery.nbytes / 2**30:.2f} GiB, generated in "
          f"{seconds:.0f}s), {args.queries} queries, {args.threads} threads, {platform.processor() or platform.machine()}")

    exact = ExactBackend()
    exact.add(gallery)
    exact_seconds, (_, truth) = timed(lambda: exact.search(queries, TOPK))
    exact_qps = args.queries / exact_seconds

    spec = BackendSpec("ivfpq", nlist=args.nlist, rerank=args.rerank)
    shape = ivfpq_shape(args.dim, args.rows, spec)
    backend = FaissBackend(args.dim, spec, stored=lambda: gallery)
    build_seconds, _ = timed(lambda: backend.add(gallery))
    codes_mb = len(backend.serialize()) / 2**20
    print(f"ivfpq: PCA {args.dim}->{shape['pq_dim']}, IVF{shape['nlist']} trained on {shape['train_size']:,} rows, "
          f"PQ{shape['pq_m']}x{shape['pq_bits']}, re-rank {args.rerank}; built in {build_seconds:.0f}s; "
          f"index {codes_mb:.0f} MiB in memory vs {gallery.nbytes / 2**20:.0f} MiB of vectors")
    rows = [{"method": "exact", "nprobe": None, "recall_at_10": 1.0, "qps": exact_qps, "ratio": 1.0}]
    for nprobe in args.nprobe:
        backend.spec = BackendSpec(**{**spec.to_json(), "nprobe": nprobe})
        backend.search(queries[:10], TOPK)  # warm-up (FAISS precomputed tables)
        seconds, (_, found) = timed(lambda: backend.search(queries, TOPK))
        qps = args.queries / seconds
        rows.append({"method": "ivfpq", "nprobe": nprobe, "recall_at_10": recall_at_10(found, truth), "qps": qps,
                     "ratio": qps / exact_qps})
    print(f"{'method':<8}{'nprobe':>8}{'recall@10':>11}{'queries/s':>12}{'vs exact':>10}")
    for row in rows:
        print(f"{row['method']:<8}{row['nprobe'] or '-':>8}{row['recall_at_10']:>11.3f}{row['qps']:>12.1f}"
              f"{row['ratio']:>9.1f}x")
    if args.json:
        write_json(args.json, {"settings": vars(args), "shape": shape, "build_seconds": build_seconds,
                               "index_mib": codes_mb, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
