"""Benchmark: batched JAA-Net attention maps (`fau.aus.attention_maps`) vs a per-image, per-AU loop.

The loop is the JAA-Net way (``network.py: generate_map``): for every image, every AU and each of
its two centres, walk the 9x9 window cell by cell. Both are run in this process on the same random
centres (some outside the crop, to exercise the borders); the maps must be identical, and the time
ratio loop / batched is printed.

    .venv/bin/python tools/bench_attention_maps.py --batch 64 --aus 12
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from fau.aus import attention_maps


def loop_maps(
    centres: np.ndarray, map_size: int = 52, crop: int = 176, spatial_ratio: float = 0.14, fill_coeff: float = 0.56
) -> np.ndarray:
    """Reference: one Python loop over images, AUs, centres and window cells (float32 arithmetic)."""
    scale = np.float32(map_size / crop)
    half = round((map_size - 1) / 2.0 * spatial_ratio)
    step = np.float32(fill_coeff / (map_size * spatial_ratio))
    images, aus = centres.shape[:2]
    maps = np.zeros((images, aus, map_size, map_size), dtype=np.float32)
    for n in range(images):
        for a in range(aus):
            for cx, cy in centres[n, a]:
                x, y = np.round(np.float32(cx) * scale), np.round(np.float32(cy) * scale)
                for h in range(max(int(y) - half, 0), min(int(y) + half, map_size - 1) + 1):
                    for w in range(max(int(x) - half, 0), min(int(x) + half, map_size - 1) + 1):
                        distance = np.float32(abs(h - y) + abs(w - x))
                        value = max(np.float32(1.0) - distance * step, np.float32(0.0))
                        maps[n, a, h, w] = max(maps[n, a, h, w], value)
    return maps


def timed(function, repeats: int) -> tuple[float, object]:
    """Median wall time of `repeats` calls and the last result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64, help="images per batch")
    parser.add_argument("--aus", type=int, default=12, help="AUs per image")
    parser.add_argument("--repeats", type=int, default=20, help="timed repeats (median reported)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1 = fair vs the loop)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    centres = rng.uniform(-10.0, 186.0, size=(args.batch, args.aus, 2, 2)).astype(np.float32)
    tensor = torch.as_tensor(centres)
    attention_maps(tensor)  # warm-up
    batched_time, batched = timed(lambda: attention_maps(tensor), args.repeats)
    loop_time, looped = timed(lambda: loop_maps(centres), max(1, args.repeats // 10))
    batched = batched.numpy()
    if not np.array_equal(batched, looped):
        raise SystemExit(f"maps differ: max |diff| = {np.abs(batched - looped).max():.3g}")
    print(f"attention maps {args.batch}x{args.aus} (52x52): identical to the loop")
    ratio = loop_time / batched_time
    print(f"loop {loop_time * 1e3:.1f} ms, batched {batched_time * 1e3:.2f} ms, ratio {ratio:.0f}x")


if __name__ == "__main__":
    main()
