"""GPU readiness: every registered model of both tasks takes an AMP training step and an evaluation pass.

On a CUDA machine, for each model of `fau.models.MODELS` (its BP4D paper config) and of the
retrieval registry (its Flickr30K paper config), at batch ``--batch`` (2) on random inputs of the
loaders' shapes and random initial weights (speed and memory do not depend on training; no weights
are downloaded):

* a training step under float16 autocast with gradient scaling (forward, the model's own losses,
  backward, optimiser step), timed after ``--warmup`` steps, mean of ``--repeats``;
* an evaluation pass (inference mode, autocast) timed the same way;
* the peak CUDA memory of each (``torch.cuda.max_memory_allocated``).

Then a sharded evaluation with one rank: a one-process NCCL group (``torch.distributed``), the
evaluation outputs of a two-tower model split over the ranks, gathered with
`shared.distributed.all_gather_concat` after an ``all_reduce`` that proves the collective runs, and
compared with the unsharded outputs.  A table of step times and peak memory is printed; a model that
fails is a row with its one-line error and the exit status is 1.  On a machine without CUDA it says
so and exits 0.  The whole check is meant to stay within 5 minutes on one GPU.

    .venv/bin/python tools/gpu_check.py [--batch 2] [--warmup 1] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

Step = Callable[[], Any]


@dataclass
class Case:
    """One model: a training step and an evaluation pass, both closures over CUDA tensors."""

    task: str
    model: str
    config: str
    train_step: Step
    eval_step: Step


def timed(step: Step, warmup: int, repeats: int) -> tuple[float, float]:
    """(mean seconds per call, peak MiB) of `step` on the current CUDA device."""
    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    began = time.perf_counter()
    for _ in range(repeats):
        step()
    torch.cuda.synchronize()
    return (time.perf_counter() - began) / repeats, torch.cuda.max_memory_allocated() / 2**20


def amp_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, loss: Callable[[], torch.Tensor]) -> Step:
    """One float16-autocast training step with gradient scaling (`shared.device` helpers)."""
    from shared.device import autocast, grad_scaler

    device = next(model.parameters()).device
    scaler = grad_scaler(device)

    def step() -> None:
        model.train()
        with autocast(device):
            total = loss()
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(total).backward()
        scaler.step(optimizer)
        scaler.update()
    return step


def eval_pass(model: torch.nn.Module, forward: Step) -> Step:
    from shared.device import autocast, inference_mode

    device = next(model.parameters()).device

    def step() -> Any:
        with inference_mode(model), autocast(device):
            return forward()
    return step


def fau_cases(batch: int, device: torch.device) -> Iterator[Case]:
    """Every FAU model under its BP4D paper config (`tools/bench_fau_models.py` builds the batches)."""
    import numpy as np

    from bench_fau_models import language_batch, load_case, random_batch
    from fau.models import MODELS, build_model
    from fau.train import read_settings
    from shared.device import to_device
    from shared.schedule import make_optimizer

    for name in MODELS.names():
        config_name, config, num_aus = load_case(name, "paper", "bp4d")
        backbone = config["model"].get("backbone")
        if isinstance(backbone, dict) and backbone.get("weights"):
            backbone["weights"] = "none"  # timing only: random weights on purpose, nothing downloaded
        settings, data = read_settings(config)
        model = build_model(name, config["model"], num_aus, np.full((num_aus, num_aus), 0.5, np.float32)).to(device)
        cpu_batch = random_batch(batch, num_aus, data.crop, torch.Generator().manual_seed(0))
        if getattr(model, "has_language", False):
            cpu_batch.update(language_batch(model, cpu_batch["labels"]))
        data_batch = to_device(cpu_batch, device)
        optimizer = make_optimizer(model, settings)
        train = amp_step(model, optimizer, lambda m=model, b=data_batch: m.training_losses(m(b["image"]), b)["total"])
        yield Case("fau", name, config_name, train, eval_pass(model, lambda m=model, b=data_batch: m(b["image"])))


def retrieval_cases(batch: int, device: torch.device) -> Iterator[Case]:
    """Every retrieval model under its Flickr30K paper config.

    Written against `retrieval.models` (`MODELS` with each model's configs per dataset, `build_model`),
    `retrieval.train.read_settings` and the batch builders of `tools/bench_retrieval_models.py`.
    """
    from bench_retrieval_models import random_images, random_texts
    from retrieval.models import MODELS, build_model
    from retrieval.train import read_settings
    from shared.device import to_device
    from shared.schedule import make_optimizer

    vocab, length, regions = 10_000, 20, 36
    for name in MODELS.names():
        config_name = MODELS.get(name).config_name("f30k")
        config = MODELS.load_config(name, "f30k")
        settings, _ = read_settings(config)
        model = build_model(name, config, vocab_size=vocab, word_vectors=None, pretrained=False).to(device)
        g = torch.Generator().manual_seed(0)
        images = random_images(model, batch, regions, g)
        texts = random_texts(model, dict(config["model"]), batch, length, vocab, g, True)
        data_batch = to_device({"images": images, "texts": texts, "image_ids": torch.arange(batch)}, device)
        optimizer = make_optimizer(model, settings)

        def loss(m=model, b=data_batch) -> torch.Tensor:
            return m.training_losses(m(b), b)["total"]

        if hasattr(model, "forward_sim"):  # pairwise: one (images x captions) similarity tile
            forward = (lambda m=model, b=data_batch: m.forward_sim(m.encode_images(b["images"]), m.encode_texts(b["texts"])))
        else:
            forward = (lambda m=model, b=data_batch: (m.embed_images(b["images"]), m.embed_texts(b["texts"])))
        yield Case("retrieval", name, config_name, amp_step(model, optimizer, loss), eval_pass(model, forward))


def sharded_eval_check(batch: int, device: torch.device) -> str:
    """Evaluation sharded over a one-rank NCCL group equals the unsharded pass; returns a one-line verdict."""
    import torch.distributed as dist

    from shared.distributed import all_gather_concat

    case = next(c for c in retrieval_cases(batch, device) if c.model == "vsepp")
    whole = case.eval_step()[0].float()
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29533")
    dist.init_process_group("nccl", rank=0, world_size=1, device_id=device)
    try:
        probe = torch.ones(1, device=device)
        dist.all_reduce(probe)
        rank, world = dist.get_rank(), dist.get_world_size()
        shard = whole[rank::world]  # the ranks' share of the gallery (all of it with one rank)
        gathered = all_gather_concat(shard)
    finally:
        dist.destroy_process_group()
    ok = probe.item() == 1.0 and torch.equal(gathered, whole)
    return f"sharded evaluation, 1 NCCL rank: all_reduce ok, gathered {tuple(gathered.shape)} " + \
        ("equals the unsharded pass" if ok else "DIFFERS from the unsharded pass")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print(f"gpu_check: no CUDA GPU here (torch {torch.__version__}, CUDA build {torch.version.cuda}); "
              "nothing to check")
        return 0
    device = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    print(f"gpu_check: {torch.cuda.get_device_name(device)}, torch {torch.__version__}, batch {args.batch}, "
          f"AMP float16, mean of {args.repeats} after {args.warmup} warm-up")
    print(f"{'task':<10}{'model':<10}{'config':<22}{'train s':>9}{'train MiB':>11}{'eval s':>9}{'eval MiB':>10}")
    failures = 0
    for cases in (fau_cases, retrieval_cases):
        iterator = cases(args.batch, device)
        while True:
            try:
                case = next(iterator)
            except StopIteration:
                break
            except Exception as err:  # a model that cannot even be built: report and go on
                failures += 1
                print(f"{cases.__name__:<20} build failed: {type(err).__name__}: {str(err).splitlines()[0]}")
                continue
            try:
                train_s, train_mb = timed(case.train_step, args.warmup, args.repeats)
                eval_s, eval_mb = timed(case.eval_step, args.warmup, args.repeats)
                print(f"{case.task:<10}{case.model:<10}{case.config:<22}{train_s:>9.3f}{train_mb:>11.0f}"
                      f"{eval_s:>9.3f}{eval_mb:>10.0f}")
            except Exception as err:
                failures += 1
                print(f"{case.task:<10}{case.model:<10}{case.config:<22} FAILED: {type(err).__name__}: "
                      f"{str(err).splitlines()[0]}")
            del case
            torch.cuda.empty_cache()
    try:
        print(sharded_eval_check(args.batch, device))
    except Exception as err:
        failures += 1
        print(f"sharded evaluation FAILED: {type(err).__name__}: {str(err).splitlines()[0]}")
    print(f"{failures} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
