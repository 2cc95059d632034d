"""Benchmark: `fau predict` latency per stage on this CPU.

Stages (`fau.predict.STAGES`): read (decode the file), detect (dlib HOG, Haar fallback), landmarks
(dlib 68 points), align (similarity warp + the evaluation resize / centre crop), model (batched
forward) and text (template explanations, plus generated text for models with a language head).

* one photo: skimage's astronaut as an array, the median per stage over ``--repeats`` runs;
* a folder of ``--faces`` JPEG photos of ``--photo-size`` pixels square (default 512, the
  astronaut photo's own size), one face each: the astronaut's 300 x 300 head-and-shoulders crop
  (without the mission patch dlib can mistake for a face) resized, under random similarity
  transforms, flips and brightness changes; read from disk and predicted in one call with batched
  model inference (``--batch`` faces per forward): seconds per image of each stage;
* aligned crops: the same faces as 200-px aligned crops through ``predict_many(aligned=True)``
  (resize, crop, batched forward, text), and the bare batched forward, in images/s.

Each stage is timed in wall seconds and in process-CPU seconds (all threads summed): on a machine
shared with other jobs the CPU time is the steadier measure. Printed ratios (goals from the issue):
(model + text) / (detect + landmarks) ≤ 1, and aligned-crop throughput / 20 images/s ≥ 1.
The model is ``--checkpoint`` or, by default, an untrained
``algrnet_tiny`` with the 15 SynFACS AUs, as `make train-fau` trains it (weights do not change
the timing).

    .venv/bin/python tools/bench_fau_predict.py [--quick] [--checkpoint CKPT] [--threads 2] [--json OUT]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from fau.aus import SYNFACS_AUS, au_names
from fau.face.pipeline import FacePipeline
from fau.models import MODELS, build_model
from fau.predict import STAGES, Predictor, StageTimer, load
from shared.io import write_json

GOAL_IMAGES_PER_S = 20.0
#: rows, columns of the astronaut photo holding her head and shoulders but not the mission patch
PORTRAIT = (slice(0, 300), slice(80, 380))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="checkpoint to time (default: untrained algrnet_tiny)")
    parser.add_argument("--faces", type=int, default=100, help="photos in the folder run")
    parser.add_argument("--photo-size", type=int, default=512, help="side of the folder's photos in pixels")
    parser.add_argument("--batch", type=int, default=32, help="faces per model forward")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (the issue: 2 cores)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="10 faces, 2 repeats")
    parser.add_argument("--json", default=None, help="write the measurements here")
    args = parser.parse_args(argv)
    if args.quick:
        args.faces, args.repeats = min(args.faces, 10), min(args.repeats, 2)
    return args


def tiny_predictor(batch: int) -> Predictor:
    """An untrained `algrnet_tiny` on the SynFACS AU set, wrapped like a loaded checkpoint."""
    torch.manual_seed(0)
    config = MODELS.load_config("algrnet", "tiny", ["model.dataset=synfacs"])
    model = build_model("algrnet", config["model"], num_aus=len(SYNFACS_AUS)).eval()
    meta = {"model": "algrnet", "config": config, "labels": au_names(SYNFACS_AUS), "aus": list(SYNFACS_AUS),
            "task": "au"}
    return Predictor(model, meta, batch_size=batch)


def face_photos(base: np.ndarray, count: int, seed: int) -> list[np.ndarray]:
    """`count` variants of `base`: scale 0.8-1.2, rotation ±10°, shift ±6 % of the side, flip p = 0.5,
    gain 0.8-1.2."""
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


def bench_photo(predictor: Predictor, photo: np.ndarray, warmup: int, repeats: int) -> dict[str, dict[str, float]]:
    """Median wall and CPU seconds per stage for one photo (warm-up runs load dlib's models)."""
    for _ in range(max(warmup, 1)):
        predictor.run([photo])
    timers = []
    for _ in range(repeats):
        timers.append(StageTimer())
        predictor.run([photo], timer=timers[-1])
    return {"wall": {stage: statistics.median(t.seconds[stage] for t in timers) for stage in STAGES},
            "cpu": {stage: statistics.median(t.cpu_seconds[stage] for t in timers) for stage in STAGES}}


def bench_folder(predictor: Predictor, photos: list[np.ndarray]) -> tuple[dict[str, dict[str, float]], int]:
    """Wall and CPU seconds per image of each stage for the photos written as JPEG files; faces found."""
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for index, photo in enumerate(photos):
            path = Path(folder) / f"{index:04d}.jpg"
            cv2.imwrite(str(path), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
            paths.append(path)
        timer = StageTimer()
        results = predictor.run(paths, timer=timer)
    per_image = {"wall": {s: v / len(photos) for s, v in timer.seconds.items()},
                 "cpu": {s: v / len(photos) for s, v in timer.cpu_seconds.items()}}
    return per_image, sum(len(r.faces) for r in results)


def timed(step: Any, warmup: int, repeats: int) -> tuple[float, float]:
    """Median wall and process-CPU seconds of `repeats` calls of `step` after `warmup` calls."""
    for _ in range(warmup):
        step()
    wall, cpu = [], []
    for _ in range(repeats):
        began, began_cpu = time.perf_counter(), time.process_time()
        step()
        wall.append(time.perf_counter() - began)
        cpu.append(time.process_time() - began_cpu)
    return statistics.median(wall), statistics.median(cpu)


def bench_aligned(predictor: Predictor, crops: list[np.ndarray], warmup: int, repeats: int) -> dict[str, float]:
    """Images per wall second and per CPU second of ``predict_many(aligned=True)`` on `crops`, and of
    the bare batched forward."""
    from fau.data.loader import normalise
    from fau.predict import model_input

    batch = torch.stack([normalise(model_input(c, None, predictor.image_size, predictor.crop)[0]) for c in crops])

    def forward() -> None:
        with torch.inference_mode():
            for start in range(0, len(batch), predictor.batch_size):
                predictor.model(batch[start: start + predictor.batch_size])

    api_wall, api_cpu = timed(lambda: predictor.predict_many(crops, aligned=True), warmup, repeats)
    forward_wall, forward_cpu = timed(forward, warmup, repeats)
    return {"api_images_per_s": len(crops) / api_wall, "api_images_per_cpu_s": len(crops) / api_cpu,
            "forward_images_per_s": len(crops) / forward_wall, "forward_images_per_cpu_s": len(crops) / forward_cpu}


def format_stages(name: str, seconds: dict[str, float]) -> str:
    cells = "".join(f"{1000 * seconds[s]:>11.1f}" for s in STAGES)
    return f"{name:<22}{cells}{1000 * sum(seconds.values()):>11.1f}"


def ratio(seconds: dict[str, float]) -> float:
    """(model + text) / (detect + landmarks): the issue's goal is ≤ 1."""
    return (seconds["model"] + seconds["text"]) / (seconds["detect"] + seconds["landmarks"])


def main(argv: list[str] | None = None) -> int:
    """Run the three measurements, print the table and the ratios, optionally write JSON."""
    import skimage.data

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    predictor = load(args.checkpoint, "cpu", batch_size=args.batch) if args.checkpoint else tiny_predictor(args.batch)
    astronaut = skimage.data.astronaut()
    photo = bench_photo(predictor, astronaut, args.warmup, args.repeats)
    portrait = cv2.resize(astronaut[PORTRAIT], (args.photo_size, args.photo_size), interpolation=cv2.INTER_CUBIC)
    photos = face_photos(portrait, args.faces, args.seed)
    folder, faces = bench_folder(predictor, photos)
    crops = [face.aligned.image for p in photos for face in FacePipeline(max_faces=1).process(p)]
    aligned = bench_aligned(predictor, crops, args.warmup, args.repeats)
    print(f"fau predict latency, {predictor.meta['model']} crop {predictor.crop}, {torch.get_num_threads()} threads, "
          f"batch {args.batch}; ms per image")
    print(f"{'':<22}" + "".join(f"{s:>11}" for s in STAGES) + f"{'total':>11}")
    for clock in ("wall", "cpu"):
        print(format_stages(f"one photo, {clock}", photo[clock]))
        print(format_stages(f"folder {args.faces}x{args.photo_size}², {clock}", folder[clock]))
    print(f"faces found in the folder: {faces}")
    for clock in ("wall", "cpu"):
        print(f"(model + text) / (detect + landmarks), {clock} time: one photo {ratio(photo[clock]):.2f}, "
              f"folder {ratio(folder[clock]):.2f} (goal ≤ 1)")
    print(f"aligned crops ({len(crops)}): predict_many {aligned['api_images_per_s']:.1f} images/s "
          f"({aligned['api_images_per_cpu_s']:.1f} per CPU second), bare forward "
          f"{aligned['forward_images_per_s']:.1f} images/s ({aligned['forward_images_per_cpu_s']:.1f} per CPU second); "
          f"ratio to the {GOAL_IMAGES_PER_S:.0f} images/s goal "
          f"{aligned['api_images_per_s'] / GOAL_IMAGES_PER_S:.2f} (goal ≥ 1)")
    if args.json is not None:
        write_json(args.json, {
            "settings": {**vars(args), "threads": torch.get_num_threads()}, "torch": torch.__version__,
            "model": predictor.meta["model"], "crop": predictor.crop, "faces_found": faces,
            "photo_seconds": photo, "folder_seconds_per_image": folder, "aligned": aligned,
            "ratios": {"photo_model_text_vs_detect_landmarks": ratio(photo["wall"]),
                       "folder_model_text_vs_detect_landmarks": ratio(folder["wall"]),
                       "photo_model_text_vs_detect_landmarks_cpu": ratio(photo["cpu"]),
                       "folder_model_text_vs_detect_landmarks_cpu": ratio(folder["cpu"]),
                       "aligned_vs_goal": aligned["api_images_per_s"] / GOAL_IMAGES_PER_S}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
