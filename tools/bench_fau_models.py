"""Benchmark: training and inference images/s of every FAU model on this CPU.

For each model in `fau.models.MODELS` and each config — the tiny CPU variant (``<model>_tiny``,
``model.dataset`` = ``--tiny-dataset``: synfacs → 15 AUs as `make train-fau` trains it, or bp4d →
12) and the paper config (``<model>_bp4d``, 12 AUs) — on random images of the config's crop size
(``data.crop``, normalised range [-1, 1]) with random labels and landmarks:

* training: forward, ``training_losses(outputs, batch)["total"]`` backward and an SGD step
  (the trainer's optimizer: the config's lr / momentum / Nesterov / weight decay) at the config's
  ``train.batch_size`` (or ``--train-batch``), paper configs at most ``--paper-train-batch`` (16:
  VL-FAU's paper batch of 64 at 224 px with both decoders needs more than 24 GiB of activations);
* inference: forward under ``torch.inference_mode()`` at ``--infer-batch`` (paper configs at
  ``--paper-infer-batch``).

MGRR-Net gets a uniform 0.5 co-occurrence prior (A, A); VL-FAU's batches carry the template language
targets (`fau.language.targets`) of the random labels, so its step includes both decoders.  The reference measured in the same run
is the landmark baseline (`fau.evaluation.baselines.LandmarkBaseline`, per-AU logistic regression on 98-d
landmark features): its fit and predict_proba throughput on ``--baseline-samples`` random rows.
The table's ratio columns are model images/s ÷ baseline fit images/s (training) and
÷ baseline predict images/s (inference).  Throughput is the batch size over the median seconds
of ``--repeats`` timed steps after ``--warmup`` untimed ones.

    .venv/bin/python tools/bench_fau_models.py [--quick] [--models algrnet] [--threads 1] [--json OUT]
"""

from __future__ import annotations

import argparse
import platform
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from fau.aus import au_names, resolve_aus
from fau.evaluation.baselines import LandmarkBaseline
from fau.losses import LEFT_EYE, RIGHT_EYE
from fau.models import CONFIG_DIR, MODELS, build_model
from fau.train import read_settings
from shared.schedule import make_optimizer
from shared.benchmark import per_second, time_steps
from shared.config import load_config
from shared.io import write_json

CONFIG_KINDS = {"tiny": "{model}_tiny.yaml", "paper": "{model}_bp4d.yaml"}
LANDMARKS = 49


@dataclass
class Row:
    """One (model, config) measurement."""

    model: str
    config: str
    num_aus: int
    crop: int
    train_batch: int
    infer_batch: int
    train_seconds: list[float] = field(default_factory=list)
    infer_seconds: list[float] = field(default_factory=list)
    train_images_per_s: float = 0.0
    infer_images_per_s: float = 0.0
    train_ratio: float = 0.0
    infer_ratio: float = 0.0


def random_batch(batch: int, num_aus: int, crop: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """A training batch in the loader's format: images in [-1, 1], labels in {-1, 0, 1}, 49 landmarks
    in crop pixels (eyes pushed apart so the inter-ocular normaliser is well away from 0), unit AU weights."""
    landmarks = torch.rand(batch, LANDMARKS, 2, generator=generator) * 0.5 * crop + 0.25 * crop
    landmarks[:, list(LEFT_EYE), 0] -= 0.15 * crop
    landmarks[:, list(RIGHT_EYE), 0] += 0.15 * crop
    return {
        "image": torch.rand(batch, 3, crop, crop, generator=generator) * 2 - 1,
        "labels": torch.randint(-1, 2, (batch, num_aus), generator=generator),
        "landmarks": landmarks,
        "au_weights": torch.ones(num_aus),
    }


def language_batch(model: torch.nn.Module, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """The token targets a language-head model (VL-FAU) trains on, built from `labels` (gender unknown)."""
    from fau.language.targets import build_targets

    entries = build_targets(labels.numpy(), model.aus, ["unknown"] * len(labels), model.template)
    return model.encode_language(entries, au_names(model.aus))


def load_case(model: str, kind: str, tiny_dataset: str) -> tuple[str, dict[str, Any], int]:
    """(config file name, resolved config, number of AUs) of one benchmark case."""
    name = CONFIG_KINDS[kind].format(model=model)
    config = load_config(CONFIG_DIR / name)
    if kind == "tiny":
        config["model"] = {**config["model"], "dataset": tiny_dataset}
    return name, config, len(resolve_aus(str(config["model"]["dataset"])))


def bench_model(model_name: str, kind: str, args: argparse.Namespace) -> Row:
    """Training and inference throughput of one model under one config."""
    config_name, config, num_aus = load_case(model_name, kind, args.tiny_dataset)
    settings, data = read_settings(config)
    torch.manual_seed(args.seed)
    prior = np.full((num_aus, num_aus), 0.5, dtype=np.float32)
    model = build_model(model_name, config["model"], num_aus, prior)
    infer_batch = args.paper_infer_batch if kind == "paper" else args.infer_batch
    train_batch = args.train_batch or (min(settings.batch_size, args.paper_train_batch) if kind == "paper"
                                       else settings.batch_size)
    row = Row(model_name, config_name, num_aus, data.crop, train_batch, infer_batch)
    generator = torch.Generator().manual_seed(args.seed)
    batch = random_batch(train_batch, num_aus, data.crop, generator)
    if getattr(model, "has_language", False):
        batch.update(language_batch(model, batch["labels"]))
    optimizer = make_optimizer(model, settings)

    def train_step() -> None:
        outputs = model(batch["image"])
        loss = model.training_losses(outputs, batch)["total"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    model.train()
    row.train_seconds = time_steps(train_step, args.warmup, args.repeats)
    images = torch.rand(infer_batch, 3, data.crop, data.crop, generator=generator) * 2 - 1

    def infer_step() -> None:
        with torch.inference_mode():
            model(images)

    model.eval()
    row.infer_seconds = time_steps(infer_step, args.warmup, args.repeats)
    row.train_images_per_s = per_second(train_batch, row.train_seconds)
    row.infer_images_per_s = per_second(infer_batch, row.infer_seconds)
    return row


def bench_baseline(samples: int, num_aus: int, seed: int, warmup: int, repeats: int) -> dict[str, Any]:
    """Fit and predict_proba throughput of the landmark baseline on random 98-d features."""
    rng = np.random.default_rng(seed)
    features = rng.standard_normal((samples, 2 * LANDMARKS))
    labels = rng.integers(0, 2, (samples, num_aus))
    fitted = LandmarkBaseline(seed)
    fit_seconds = time_steps(lambda: fitted.fit(features, labels), warmup, repeats)
    predict_seconds = time_steps(lambda: fitted.predict_proba(features), warmup, repeats)
    return {"name": "landmarks", "samples": samples, "num_aus": num_aus,
            "fit_seconds": fit_seconds, "predict_seconds": predict_seconds,
            "fit_images_per_s": per_second(samples, fit_seconds),
            "predict_images_per_s": per_second(samples, predict_seconds)}


def format_table(rows: list[Row], baseline: dict[str, Any]) -> str:
    """The printed table: one line per case plus the baseline line."""
    header = (f"{'model':<10}{'config':<20}{'AUs':>4}{'crop':>6}{'train B':>9}{'train img/s':>13}"
              f"{'x base fit':>12}{'infer B':>9}{'infer img/s':>13}{'x base pred':>13}")
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(f"{r.model:<10}{r.config:<20}{r.num_aus:>4}{r.crop:>6}{r.train_batch:>9}"
                     f"{r.train_images_per_s:>13.2f}{r.train_ratio:>12.2e}{r.infer_batch:>9}"
                     f"{r.infer_images_per_s:>13.2f}{r.infer_ratio:>13.2e}")
    lines.append(f"{'landmarks':<10}{'logreg, 98-d':<20}{baseline['num_aus']:>4}{'-':>6}{baseline['samples']:>9}"
                 f"{baseline['fit_images_per_s']:>13.1f}{1.0:>12.2e}{baseline['samples']:>9}"
                 f"{baseline['predict_images_per_s']:>13.1f}{1.0:>13.2e}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=None, metavar="NAME",
                        help=f"models to measure (default: all of {', '.join(MODELS.names())})")
    parser.add_argument("--configs", nargs="+", choices=tuple(CONFIG_KINDS), default=None,
                        help="config kinds to measure (default: tiny and paper; --quick: tiny)")
    parser.add_argument("--quick", action="store_true", help="tiny configs only, fewer repeats (< 2 min)")
    parser.add_argument("--repeats", type=int, default=None, help="timed steps per measurement (default 3, quick 2)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 1)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch.set_num_threads (default 1: on a shared 2-core machine more threads oversubscribe)")
    parser.add_argument("--tiny-dataset", choices=("synfacs", "bp4d"), default="synfacs",
                        help="AU set of the tiny configs (synfacs 15 AUs, bp4d 12)")
    parser.add_argument("--train-batch", type=int, default=None,
                        help="override every config's train.batch_size (default: the config's)")
    parser.add_argument("--paper-train-batch", type=int, default=16,
                        help="largest training batch of the paper configs (default 16: fits 24 GiB)")
    parser.add_argument("--infer-batch", type=int, default=32, help="inference batch of the tiny configs")
    parser.add_argument("--paper-infer-batch", type=int, default=8,
                        help="inference batch of the paper configs (default 8: a 176-px step takes seconds on CPU)")
    parser.add_argument("--baseline-samples", type=int, default=2000, help="rows the landmark baseline fits/predicts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, metavar="OUT", help="write every measurement as JSON")
    args = parser.parse_args(argv)
    args.repeats = args.repeats if args.repeats is not None else (2 if args.quick else 3)
    args.warmup = args.warmup if args.warmup is not None else 1
    unknown = [name for name in args.models or [] if name not in MODELS]
    if unknown:
        parser.error(f"--models: unknown {', '.join(unknown)} (known: {', '.join(MODELS.names())})")
    if args.train_batch is not None and args.train_batch < 1:
        parser.error("--train-batch must be at least 1")
    for option in ("repeats", "infer_batch", "paper_infer_batch", "paper_train_batch", "baseline_samples"):
        if getattr(args, option) < 1:
            parser.error(f"--{option.replace('_', '-')} must be at least 1")
    if args.warmup < 0 or args.threads < 1:
        parser.error("--warmup must be >= 0 and --threads >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Measure every case and the baseline, print the table, optionally write JSON."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    models = [m.lower() for m in (args.models or MODELS.names())]
    kinds = args.configs or (("tiny",) if args.quick else tuple(CONFIG_KINDS))
    cases = [(m, k) for k in kinds for m in models]
    baseline = bench_baseline(args.baseline_samples, len(resolve_aus("bp4d")), args.seed, args.warmup, args.repeats)
    rows = [bench_model(m, k, args) for m, k in tqdm(cases, desc="fau models", file=sys.stderr)]
    for r in rows:
        r.train_ratio = r.train_images_per_s / baseline["fit_images_per_s"]
        r.infer_ratio = r.infer_images_per_s / baseline["predict_images_per_s"]
    print(f"FAU model throughput on {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, median of {args.repeats} steps after {args.warmup} warm-up")
    print(format_table(rows, baseline))
    if args.json is not None:
        settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
        settings["threads"] = torch.get_num_threads()
        write_json(args.json, {"settings": settings, "torch": torch.__version__,
                               "baseline": baseline, "models": [asdict(r) for r in rows]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
