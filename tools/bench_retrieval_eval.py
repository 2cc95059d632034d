"""Benchmark: our exact evaluation vs a per-query argsort loop in the public code's style.

A random 5,000 × 25,000 similarity matrix (the COCO-5K shape; N(0, 1) scores, +3 on matching
pairs so recalls are not trivial) is scored under the
`coco5k` and `coco1k` protocols twice, each method in its own subprocess so peak memory is its
own: (a) `retrieval.evaluation.evaluate_protocol` (shared chunked rank kernel, including its
finiteness check of the whole matrix) and (b) a loop written here after the public VSE++/SCAN
`evaluation.py` (per image `argsort(sims[i])[::-1]` and the best of its 5 captions; per caption the
position of its image; COCO-1K averages rows over 5 folds and reads rSum from the averaged rSum
column).  The metrics must be identical.  The matrix is float64, like the public code's sims
buffer: with float32 random scores a tie at a positive happens about once in 25M entries, and ties
are where the two methods legitimately differ (the kernel counts a tie against the query, argsort
breaks it by memory order).  The script prints wall time, the time ratio and the extra peak
resident memory of each method (VmHWM after the matrix exists, reset through /proc/self/clear_refs).

    .venv/bin/python tools/bench_retrieval_eval.py [--images 5000] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

KEYS = ("i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10", "rsum", "i2t_medr", "i2t_meanr", "t2i_medr", "t2i_meanr")


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS (Linux ≥ 4.0)


def loop_i2t(sims: np.ndarray) -> np.ndarray:
    """Public-code style: one argsort per image, best rank among its 5 captions."""
    ranks = np.zeros(sims.shape[0])
    for index in range(sims.shape[0]):
        inds = np.argsort(sims[index])[::-1]
        rank = 1e20
        for i in range(5 * index, 5 * index + 5):
            tmp = np.where(inds == i)[0][0]
            if tmp < rank:
                rank = tmp
        ranks[index] = rank
    return ranks


def loop_t2i(sims: np.ndarray) -> np.ndarray:
    """Public-code style: one argsort per caption over the images."""
    sims_t = sims.T
    ranks = np.zeros(sims_t.shape[0])
    for index in range(sims_t.shape[0]):
        inds = np.argsort(sims_t[index])[::-1]
        ranks[index] = np.where(inds == index // 5)[0][0]
    return ranks


def loop_metrics(sims: np.ndarray) -> list[float]:
    """Row [r1, r5, r10, medr, meanr] (i2t) + the same (t2i) + [rsum] as the public code builds it."""
    row = []
    for ranks in (loop_i2t(sims), loop_t2i(sims)):
        row += [100.0 * len(np.where(ranks < k)[0]) / len(ranks) for k in (1, 5, 10)]
        row += [np.floor(np.median(ranks)) + 1, ranks.mean() + 1]
    row.append(sum(row[0:3]) + sum(row[5:8]))
    return row


def loop_protocol(sims: np.ndarray, folds: int) -> dict:
    """Public-code style protocol: per-fold rows averaged; rSum read from the averaged rSum column."""
    n = sims.shape[0] // folds
    rows = [loop_metrics(sims[f * n : (f + 1) * n, f * 5 * n : (f + 1) * 5 * n]) for f in range(folds)]
    mean = np.mean(rows, axis=0)
    r = dict(zip(("i2t_r1", "i2t_r5", "i2t_r10", "i2t_medr", "i2t_meanr", "t2i_r1", "t2i_r5", "t2i_r10", "t2i_medr", "t2i_meanr", "rsum"), mean.tolist()))
    return {k: r[k] for k in KEYS}


def worker(method: str, n_images: int, seed: int, out: Path) -> None:
    """Build the matrix, run one method, write seconds, extra peak RSS and metrics as JSON."""
    sims = np.random.default_rng(seed).standard_normal((n_images, 5 * n_images))
    diagonal = sims.reshape(n_images, n_images, 5)[np.arange(n_images), np.arange(n_images)]
    sims.reshape(n_images, n_images, 5)[np.arange(n_images), np.arange(n_images)] = diagonal + 3.0  # matching pairs score higher
    folds = {"coco5k": 1, "coco1k": 5}
    if method == "ours":
        from retrieval.evaluation.metrics import EvalProtocol, evaluate_protocol
    rss_before = _status_kb("VmRSS")
    _reset_peak()
    start = time.perf_counter()
    if method == "ours":
        results = {name: evaluate_protocol(sims, EvalProtocol(name, n_images, n_folds=f)) for name, f in folds.items()}
    else:
        results = {name: loop_protocol(sims, f) for name, f in folds.items()}
    seconds = time.perf_counter() - start
    peak_mb = (_status_kb("VmHWM") - rss_before) / 1024
    out.write_text(json.dumps({"seconds": seconds, "peak_extra_mb": peak_mb, "results": results}))


def main() -> int:
    """Run both methods in subprocesses, assert identical metrics, print times and memory."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", choices=("ours", "loop"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.images, args.seed, args.out)
        return 0
    if args.images % 5:
        parser.error("--images must be divisible by 5 (COCO-1K folds)")
    print(f"random {args.images} x {5 * args.images} float64 matrix ({args.images * 5 * args.images * 8 / 2**20:.0f} MB), seed {args.seed}")
    reports = {}
    with tempfile.TemporaryDirectory() as tmp:
        for method in ("ours", "loop"):
            out = Path(tmp) / f"{method}.json"
            cmd = [sys.executable, __file__, "--worker", method, "--images", str(args.images), "--seed", str(args.seed), "--out", str(out)]
            subprocess.run(cmd, check=True)
            reports[method] = json.loads(out.read_text())
    for protocol in ("coco5k", "coco1k"):
        ours, loop = reports["ours"]["results"][protocol], reports["loop"]["results"][protocol]
        for key in KEYS:
            assert math.isclose(ours[key], loop[key], rel_tol=1e-9, abs_tol=1e-9), (protocol, key, ours[key], loop[key])
        print(f"{protocol}: identical metrics  " + "  ".join(f"{k}={ours[k]:.2f}" for k in ("i2t_r1", "t2i_r1", "rsum", "i2t_medr", "t2i_meanr")))
    o, lp = reports["ours"], reports["loop"]
    print(f"{'method':<34}{'seconds':>10}{'extra peak RSS (MB)':>22}")
    print(f"{'ours (chunked shared kernel)':<34}{o['seconds']:>10.2f}{o['peak_extra_mb']:>22.1f}")
    print(f"{'per-query argsort loop (public)':<34}{lp['seconds']:>10.2f}{lp['peak_extra_mb']:>22.1f}")
    print(f"speed-up: {lp['seconds'] / o['seconds']:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
