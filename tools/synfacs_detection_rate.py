"""Does the real face pipeline see SynFACS faces? dlib detection rate and landmark error.

Runs dlib's HOG detector (upsample 0, `fau.face.detect.detect_dlib`, no Haar fallback) and its
68-point predictor (`fau.face.landmarks.predict_landmarks`) on every frame of a SynFACS dataset
and compares the predicted landmarks with the ground truth (synfacs_truth.npz). Landmark error =
mean point-to-point distance / inter-ocular distance (eye-centre distance; the NME of the thesis, Tab. 3.6),
over 68 points and over the 49 non-jaw points. Prints a summary and writes JSON.

    python tools/synfacs_detection_rate.py                 # generate the default set, measure
    python tools/synfacs_detection_rate.py --data DIR      # measure an existing SynFACS folder
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fau.synth.shape import interocular  # noqa: E402
from fau.synth.writer import KEEP_49, TRUTH_NPZ  # noqa: E402
from shared.io import write_json  # noqa: E402

FAILURE_NME = 0.10


def measure(data: Path, every: int = 1) -> dict:
    """Detection rate and landmark error over every `every`-th frame of the dataset in `data`."""
    import cv2

    from fau.face.detect import detect_dlib
    from fau.face.landmarks import predict_landmarks

    truth = np.load(data / TRUTH_NPZ)
    meta = json.loads((data / "synfacs_truth.json").read_text())
    glasses = {s["name"]: s["look"]["glasses"] for s in meta["subjects"]}
    frames = np.arange(0, len(truth["path"]), every)
    found = np.zeros(len(frames), bool)
    nme68 = np.full(len(frames), np.nan)
    nme49 = np.full(len(frames), np.nan)
    start = time.perf_counter()
    for n, i in enumerate(tqdm(frames, unit="frame", desc="dlib")):
        image = cv2.cvtColor(cv2.imread(str(data / str(truth["path"][i]))), cv2.COLOR_BGR2RGB)
        boxes = detect_dlib(image)
        if not boxes:
            continue
        found[n] = True
        gt = truth["landmarks"][i]
        err = np.linalg.norm(predict_landmarks(image, boxes[0]) - gt, axis=1) / interocular(gt)
        nme68[n], nme49[n] = err.mean(), err[list(KEEP_49)].mean()
    seconds = time.perf_counter() - start
    occluded = truth["occluded"][frames]
    yaw = np.abs(truth["pose"][frames, 0])
    wearing = np.array([glasses[str(s)] for s in truth["subject"][frames]])

    def rate(mask: np.ndarray) -> float | None:
        return round(float(found[mask].mean()), 4) if mask.any() else None

    ok = found & ~np.isnan(nme68)
    misses = [str(truth["path"][i]) for i in frames[~found]]
    worst = frames[ok][np.argsort(-nme68[ok])[:10]]
    return {
        "data": str(data), "frames": int(len(frames)), "detected": int(found.sum()),
        "detection_rate": rate(np.ones(len(frames), bool)),
        "detection_rate_unoccluded": rate(~occluded), "detection_rate_occluded": rate(occluded),
        "detection_rate_by_abs_yaw": {"<5": rate(yaw < 5), "5-10": rate((yaw >= 5) & (yaw < 10)),
                                      ">=10": rate(yaw >= 10)},
        "detection_rate_glasses": rate(wearing), "detection_rate_no_glasses": rate(~wearing),
        "nme68_mean": round(float(np.nanmean(nme68)), 4),
        "nme68_median": round(float(np.nanmedian(nme68)), 4),
        "nme49_mean": round(float(np.nanmean(nme49)), 4),
        "failure_rate_nme68_gt_0.10": round(float((nme68[ok] > FAILURE_NME).mean()), 4),
        "seconds": round(seconds, 1), "misses": misses[:50],
        "worst": [{"path": str(truth["path"][i]),
                   "nme68": round(float(nme68[np.searchsorted(frames, i)]), 4)} for i in worst],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="SynFACS folder (default: generate the default set)")
    parser.add_argument("--seed", type=int, default=0, help="seed when generating (default 0)")
    parser.add_argument("--every", type=int, default=1, help="measure every k-th frame")
    parser.add_argument("--out", type=Path, help="JSON path (default DATA/synfacs_detection.json)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if data is None:
            from fau.synth.generate import generate

            data = Path(tmp) / "synfacs"
            summary = generate(data, seed=args.seed, workers=2)
            print(f"generated {summary['frames']} frames in {summary['seconds']} s")
        result = measure(data, args.every)
        out = args.out or (data / "synfacs_detection.json" if args.data else Path("synfacs_detection.json"))
        write_json(out, result)
    shown = {k: v for k, v in result.items() if k not in ("misses", "worst")}
    print(json.dumps(shown, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
