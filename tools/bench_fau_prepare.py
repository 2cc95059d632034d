"""Benchmark: `fau prepare` frames per second with 1 and 2 worker processes, measured in one run.

The raw tree is a BP4D layout of ``--frames`` JPEG frames of ``--photo-size`` pixels without landmark
files, so every frame goes through the whole path (dlib HOG detection, 68 landmarks, JAA-Net
alignment, JPEG crop): the astronaut's head-and-shoulders crop from `skimage.data.astronaut` under
random similarity transforms, flips and brightness changes (as `tools/bench_fau_predict.py` makes
its folder). Each worker count prepares into a fresh folder; the time includes starting the
processes and loading dlib's models in each. The worker counts are timed in turn ``--repeats``
times (1, 2, 1, 2, ...) and the fastest run of each is kept, so a burst of load from other jobs on a
shared machine hits both alike; the CPU seconds (this process and its workers) are printed beside the
wall time. The outputs of all runs are compared byte for byte.
Printed: frames/s for each and the ratio (2 workers / 1 worker; this machine has 2 cores).

    .venv/bin/python tools/bench_fau_prepare.py [--frames 400] [--photo-size 400] [--quick] [--json OUT]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

# `fau.data.prepare` is imported in main(): spawned workers re-import this script and need none of it

#: rows, columns of the astronaut photo holding her head and shoulders but not the mission patch
PORTRAIT = (slice(0, 300), slice(80, 380))
#: BP4D's 12 evaluated AUs plus five more, the header of an AU_OCC CSV
HEADER_AUS = (1, 2, 4, 5, 6, 7, 9, 10, 11, 12, 14, 15, 16, 17, 23, 24, 27)
SUBJECTS = ("F001", "M007", "F003", "F007", "M011", "F015")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=400, help="frames in the raw tree")
    parser.add_argument("--photo-size", type=int, default=400, help="side of each frame in pixels")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to time")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per worker count (fastest kept)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="24 frames")
    parser.add_argument("--json", default=None, help="write the measurements here")
    args = parser.parse_args(argv)
    if args.quick:
        args.frames, args.repeats = min(args.frames, 24), 1
    return args


def face_photos(base: np.ndarray, count: int, seed: int) -> list[np.ndarray]:
    """`count` variants of `base`: scale 0.8-1.2, rotation ±10°, shift ±6 %, flip p = 0.5, gain 0.8-1.2."""
    rng = np.random.default_rng(seed)
    height, width = base.shape[:2]
    photos = []
    for _ in range(count):
        matrix = cv2.getRotationMatrix2D((width / 2, height / 2), rng.uniform(-10, 10), rng.uniform(0.8, 1.2))
        matrix[:, 2] += rng.uniform(-0.06, 0.06, size=2) * width
        image = cv2.warpAffine(base, matrix, (width, height), borderMode=cv2.BORDER_REFLECT)
        image = image[:, ::-1] if rng.random() < 0.5 else image
        photos.append(np.clip(image * rng.uniform(0.8, 1.2), 0, 255).astype(np.uint8))
    return photos


def write_tree(root: Path, photos: list[np.ndarray], seed: int) -> None:
    """A BP4D layout (AUCoding/AU_OCC/<subject>_T1.csv, images/<subject>/T1/<frame>.jpg), no landmarks."""
    rng = np.random.default_rng(seed)
    per_subject = -(-len(photos) // len(SUBJECTS))
    (root / "AUCoding" / "AU_OCC").mkdir(parents=True)
    for s_index, subject in enumerate(SUBJECTS):
        chunk = photos[s_index * per_subject: (s_index + 1) * per_subject]
        if not chunk:
            break
        folder = root / "images" / subject / "T1"
        folder.mkdir(parents=True)
        with open(root / "AUCoding" / "AU_OCC" / f"{subject}_T1.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["0", *map(str, HEADER_AUS)])
            for number, photo in enumerate(chunk, start=1):
                cv2.imwrite(str(folder / f"{number:04d}.jpg"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
                writer.writerow([number, *rng.integers(0, 2, size=len(HEADER_AUS)).tolist()])


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and of its finished worker processes."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every output file's bytes (summary.json without its timing)."""
    out = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if path.name == "summary.json":
            summary = json.loads(data)
            summary.pop("seconds")
            data = json.dumps(summary, sort_keys=True).encode()
        out[str(path.relative_to(root))] = data
    return out


def main(argv: list[str] | None = None) -> int:
    """Prepare the tree once per worker count, print frames/s, the ratio and whether the bytes match."""
    import skimage.data

    from fau.data.prepare import prepare
    from shared.io import write_json

    args = parse_args(argv)
    portrait = cv2.resize(skimage.data.astronaut()[PORTRAIT], (args.photo_size, args.photo_size),
                          interpolation=cv2.INTER_CUBIC)
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        raw = Path(folder) / "raw"
        write_tree(raw, face_photos(portrait, args.frames, args.seed), args.seed)
        outputs = {}
        for repeat in range(args.repeats):
            for workers in args.workers:
                out = Path(folder) / f"out{workers}_{repeat}"
                began, cpu = time.perf_counter(), cpu_seconds()
                summary = prepare("bp4d", raw, out, progress=False, workers=workers)
                seconds, used = time.perf_counter() - began, cpu_seconds() - cpu
                if workers not in results or seconds < results[workers]["seconds"]:
                    results[workers] = {"seconds": seconds, "cpu_seconds": used,
                                        "frames_per_s": summary["frames_selected"] / seconds,
                                        "frames_kept": summary["frames_kept"], "skipped": summary["skipped"]}
                outputs[(workers, repeat)] = tree_bytes(out)
        same = all(data == outputs[(args.workers[0], 0)] for data in outputs.values())
    print(f"load average at the end {os.getloadavg()[0]:.1f} (other jobs on this machine share its CPUs)")
    print(f"fau prepare, {args.frames} frames of {args.photo_size}² without landmark files "
          f"(detect + landmarks + align + JPEG), {os.cpu_count()} CPUs")
    for workers, result in results.items():
        print(f"  workers {workers}: {result['seconds']:6.1f} s ({result['cpu_seconds']:5.1f} CPU s), "
              f"{result['frames_per_s']:6.2f} frames/s "
              f"({result['frames_kept']} kept, skipped {result['skipped'] or 'none'})")
    base = args.workers[0]
    for workers in args.workers[1:]:
        print(f"ratio {workers} workers / {base}: {results[workers]['frames_per_s'] / results[base]['frames_per_s']:.2f}x")
    print(f"outputs byte-identical across worker counts: {same}")
    if args.json is not None:
        write_json(args.json, {"settings": vars(args), "results": {str(k): v for k, v in results.items()},
                               "byte_identical": same})
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
