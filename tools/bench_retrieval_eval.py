"""Benchmark: our exact evaluation vs a per-query argsort loop in the public code's style.

Part 2 (the default): the ``retrieval evaluate-sims`` command on the matrix saved as ``.npy``,
net of start-up (the same command on a 10 × 50 matrix), against the loop's i2t + t2i time, per
protocol, with the command's extra peak RSS (its peak minus the tiny run's peak) beside the matrix
size.  ``--before-tree DIR`` also runs the command from another source tree (e.g. the main
branch) in the same run, so the speed-up before and after a change is measured side by side.
Part 1 (``--kernel``) is the in-process comparison below.

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

    .venv/bin/python tools/bench_retrieval_eval.py [--images 5000] [--seed 0] [--before-tree /work/main] [--kernel]
"""

from __future__ import annotations

import argparse
import json
import math
import os
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


def make_matrix(n_images: int, seed: int) -> np.ndarray:
    """N(0, 1) scores, +3 on the 5 matching captions of each image (float64, like the public sims buffer)."""
    sims = np.random.default_rng(seed).standard_normal((n_images, 5 * n_images))
    diagonal = sims.reshape(n_images, n_images, 5)[np.arange(n_images), np.arange(n_images)]
    sims.reshape(n_images, n_images, 5)[np.arange(n_images), np.arange(n_images)] = diagonal + 3.0  # matching pairs score higher
    return sims


def worker(method: str, n_images: int, seed: int, out: Path, save: Path | None = None) -> None:
    """Build the matrix (saved as `save` if given), run one method, write seconds, extra peak RSS and metrics as JSON."""
    sims = make_matrix(n_images, seed)
    if save is not None:
        np.save(save, sims)
    folds = {"coco5k": 1, "coco1k": 5}
    if method == "ours":
        from retrieval.evaluation.metrics import EvalProtocol, evaluate_protocol
    rss_before = _status_kb("VmRSS")
    _reset_peak()
    results, per_protocol = {}, {}
    for name, f in folds.items():
        start = time.perf_counter()
        if method == "ours":
            results[name] = evaluate_protocol(sims, EvalProtocol(name, n_images, n_folds=f))
        else:
            results[name] = loop_protocol(sims, f)
        per_protocol[name] = time.perf_counter() - start
    peak_mb = (_status_kb("VmHWM") - rss_before) / 1024
    out.write_text(json.dumps({"seconds": sum(per_protocol.values()), "per_protocol": per_protocol,
                               "peak_extra_mb": peak_mb, "results": results}))


def run_command(tree: Path, sims_file: Path, protocol: str, out: Path) -> tuple[float, float, dict]:
    """`python -m retrieval evaluate-sims` from `tree`: (wall seconds, peak RSS MB, the JSON record)."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, "-m", "retrieval", "evaluate-sims", str(sims_file), "--protocol", protocol, "--json", str(out)]
    start = time.perf_counter()
    child = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, cwd=out.parent)  # not a source tree:
    # `python -m` puts the working directory first on sys.path, ahead of PYTHONPATH
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed")
    return seconds, usage.ru_maxrss / 1024, json.loads(out.read_text())


def bench_command(args: argparse.Namespace, loop: dict, tmp: Path) -> None:
    """Part 2: the command (net of start-up) against the loop, per protocol, for each source tree.

    The matrix file was written by the loop's worker process: this process stays small, so a
    child's peak RSS (which starts from the parent's when it is spawned) is the command's own.
    Each command runs ``--command-repeats`` times, trees interleaved; the medians are reported.
    """
    big, tiny = tmp / "sims.npy", tmp / "tiny.npy"
    np.save(tiny, make_matrix(10, args.seed))
    matrix_mb = big.stat().st_size / 2**20
    trees = [("after", Path(__file__).resolve().parents[1])]
    if args.before_tree:
        trees.insert(0, ("before", Path(args.before_tree).resolve()))
    print(f"\ncommand `retrieval evaluate-sims` on the saved {matrix_mb:.0f} MB matrix, net of start-up "
          f"(the same command on a 10 x 50 matrix), vs the public loops' i2t + t2i time:")
    print(f"{'tree':<8}{'protocol':<9}{'start-up s':>11}{'command s':>11}{'net s':>8}{'loop s':>9}{'speed-up':>10}"
          f"{'extra peak MB':>15}  identical")
    # the COCO protocols need 5,000 images; another size is scored as `full` (one fold, like coco5k)
    protocols = [("coco5k", "coco5k"), ("coco1k", "coco1k")] if args.images == 5000 else [("coco5k", "full")]
    runs: dict = {}
    for _ in range(args.command_repeats):
        for label, tree in trees:
            for protocol, command_protocol in protocols:
                small = run_command(tree, tiny, "full", tmp / "tiny.json")
                runs.setdefault((label, protocol), []).append((small, run_command(tree, big, command_protocol, tmp / "big.json")))
    for label, tree in trees:
        for protocol, command_protocol in protocols:
            pairs = runs[(label, protocol)]
            startup, startup_peak = (float(np.median([p[0][i] for p in pairs])) for i in (0, 1))
            seconds, peak = (float(np.median([p[1][i] for p in pairs])) for i in (0, 1))
            record = pairs[-1][1][2]
            expected = loop["results"][protocol]
            same = all(math.isclose(record[k], expected[k], rel_tol=1e-12, abs_tol=1e-12) for k in KEYS)
            net = seconds - startup
            print(f"{label:<8}{protocol:<9}{startup:>11.2f}{seconds:>11.2f}{net:>8.2f}"
                  f"{loop['per_protocol'][protocol]:>9.2f}{loop['per_protocol'][protocol] / net:>9.1f}x"
                  f"{peak - startup_peak:>15.0f}  {'yes' if same else 'NO'}")
    print(f"(matrix {matrix_mb:.0f} MB; medians of {args.command_repeats} runs; the memory-mapped file counts in "
          "the command's RSS as it is read)")


def main() -> int:
    """Run both methods in subprocesses, assert identical metrics, print times and memory."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--before-tree", default=None, help="also run the command from this source tree (before)")
    parser.add_argument("--kernel", action="store_true", help="also part 1: the in-process kernel vs the loop")
    parser.add_argument("--command-repeats", type=int, default=3, help="runs of each command (median reported)")
    parser.add_argument("--save", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--worker", choices=("ours", "loop"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.images, args.seed, args.out, args.save)
        return 0
    if args.images % 5:
        parser.error("--images must be divisible by 5 (COCO-1K folds)")
    print(f"random {args.images} x {5 * args.images} float64 matrix ({args.images * 5 * args.images * 8 / 2**20:.0f} MB), seed {args.seed}")
    reports = {}
    with tempfile.TemporaryDirectory() as tmp:
        for method in ("ours", "loop") if args.kernel else ("loop",):
            out = Path(tmp) / f"{method}.json"
            cmd = [sys.executable, __file__, "--worker", method, "--images", str(args.images), "--seed", str(args.seed), "--out", str(out)]
            if method == "loop":
                cmd += ["--save", str(Path(tmp) / "sims.npy")]
            subprocess.run(cmd, check=True)
            reports[method] = json.loads(out.read_text())
        bench_command(args, reports["loop"], Path(tmp))
    if not args.kernel:
        return 0
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
