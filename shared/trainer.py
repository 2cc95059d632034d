"""The one training loop both tasks run (`fau train`, `retrieval train`).

A task builds its model and training set, then hands `fit` a `TrainJob`: the model, the data, the
settings of the config's ``train:`` section and three hooks —

* ``model_input(batch)``: what the model's forward takes (FAU: the image tensor; retrieval: the batch);
  the loss is always ``model.training_losses(outputs, batch)``, a dict of named terms with ``total``;
* ``evaluate(model, epoch)``: called on EVERY rank after each epoch (ranks may shard the work and
  gather), returning an `EpochEval` whose ``score`` selects the best checkpoint (higher is better;
  ``None`` means this epoch may not be selected, e.g. collapsed embeddings, with the reason logged).
  Without an evaluation hook the last epoch is the run's model (the papers' fixed-schedule protocol);
* ``start_epoch(epoch)``: per-epoch state outside the model and sampler (augmentation seeds, loss warm-up);
* ``prepare_batch(batch)``: optional, after the batch is on the device (FAU adds the class weights).

Per step: the learning rate of `shared.schedule.LRSchedule` for every parameter group, forward under
autocast (CUDA only), the losses, one optimiser step (`shared.training.backward_step`).  A non-finite
loss stops the run with a one-line error naming the epoch, step and term; a non-finite selection score
stops it too (never selected).  Only rank 0 writes.  Run directory::

    OUT/best.safetensors + best.json   the selected model (sidecar: the task's meta, epoch, selection, scores)
    OUT/last.safetensors + last.json   model + optimiser + epoch, to resume after an interruption
    OUT/metrics.jsonl                  per-epoch mean losses, learning rate, evaluation scalars
    OUT/config.yaml                    the resolved config

Re-running into the same OUT resumes from ``last`` and ends exactly like an uninterrupted run, because the
data order is a function of (seed, epoch) (`shared.distributed.set_epoch`).  A run folder belongs to one run:
its identity (model, config, fold or split, dataset — `run_identity`) is stored with every state, and a rerun
with another identity is a one-line error instead of resuming (or overwriting) someone else's weights.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from shared.checkpoint import load_meta, save_checkpoint
from shared.config import bounded, dump_config
from shared.device import autocast, grad_scaler, to_device
from shared.distributed import DistInfo, barrier, cleanup, make_sampler, set_epoch, unwrap_model, wrap_model
from shared.errors import UserError
from shared.io import atomic_open
from shared.logging import MetricLogger
from shared.schedule import LRSchedule, OptimizerConfig, ScheduleConfig, make_optimizer
from shared.training import backward_step, progress, resume_training_state, save_training_state

log = logging.getLogger(__name__)

BEST, LAST = "best", "last"
#: train: keys that may change between an interrupted run and its resumption (they do not change results)
RESUMABLE_KEYS = ("epochs", "num_workers", "eval_batch_size")
#: sidecar keys that say which data a run trains on
DATA_KEYS = ("dataset", "fold", "split", "task", "protocol", "data")


@dataclass(frozen=True)
class TrainConfig(OptimizerConfig):
    """The ``train:`` section both tasks share (a task may subclass it to add its own keys)."""

    schedule: ScheduleConfig = field(default_factory=lambda: ScheduleConfig("step"))
    epochs: int = bounded(1, minimum=1)
    batch_size: int = bounded(1, minimum=1)
    eval_batch_size: int = bounded(32, minimum=1)
    grad_clip: float = bounded(0.0, minimum=0.0, doc="max gradient norm (0: no clipping)")
    num_workers: int = bounded(0, minimum=0)
    seed: int = bounded(0, minimum=0)


@dataclass
class EpochEval:
    """What an evaluation hook returns for one epoch."""

    score: float | None             # selection score, higher is better; None: not selectable
    log: dict[str, float]           # scalars for metrics.jsonl (e.g. val_f1, dev_rsum)
    record: Any = None              # the full scores, stored in the best checkpoint's sidecar
    reason: str = ""                # why `score` is None


@dataclass
class TrainJob:
    """Everything `fit` needs from a task (see the module docstring)."""

    model: nn.Module
    train_set: Dataset
    settings: TrainConfig
    config: Mapping[str, Any]                       # the resolved config, written to config.yaml
    meta: dict[str, Any]                            # checkpoint sidecar (model, config, labels, split ...)
    model_input: Callable[[Any], Any]
    evaluate: Callable[[nn.Module, int], EpochEval] | None = None
    start_epoch: Callable[[int], None] | None = None
    prepare_batch: Callable[[Any], Any] | None = None  # after the move to the device (e.g. add class weights)
    collate: Callable[[list], Any] | None = None
    record_key: str = "scores"                      # sidecar key of the evaluation record ("val", "dev")
    data_id: str = ""                               # fingerprint of the training data (part of the run identity)
    generator: torch.Generator | None = None


def run_identity(config: Mapping[str, Any], meta: Mapping[str, Any], data_id: str = "") -> dict[str, Any]:
    """What makes two trainings the same run: model, config (but `RESUMABLE_KEYS`), data keys, data id."""
    plain = json.loads(json.dumps(dict(config), default=str))
    train = {k: v for k, v in (plain.get("train") or {}).items() if k not in RESUMABLE_KEYS}
    digest = hashlib.sha256(json.dumps({**plain, "train": train}, sort_keys=True).encode()).hexdigest()[:16]
    identity = {"model": meta.get("model"), "config_sha256": digest}
    identity.update({key: meta[key] for key in DATA_KEYS if key in meta})
    if data_id:
        identity["data_id"] = data_id
    return identity


def check_run_folder(out: Path, identity: Mapping[str, Any]) -> None:
    """A one-line error if `out` holds a run with another identity (an older run without one is accepted)."""
    for name in (LAST, BEST):
        try:
            stored = load_meta(out / name).get("run_identity")
        except UserError:
            continue
        if stored is None:
            continue
        diff = [key for key in sorted(set(stored) | set(identity)) if stored.get(key) != identity.get(key)]
        if diff:
            key = diff[0]
            raise UserError(f"--out {out}: holds a run with {key} {stored.get(key)!r}, not {identity.get(key)!r} "
                            f"(a run folder belongs to one model, config, fold and dataset; use another --out)")


def _best_score(out: Path) -> float:
    """The selection score of an existing ``best`` (resume); -inf when there is none."""
    try:
        meta = load_meta(out / BEST)
    except UserError:
        return -math.inf
    score = (meta.get("selection") or {}).get("score")
    return float(score) if score is not None else -math.inf


def fit(job: TrainJob, out: str | Path, info: DistInfo, amp: bool = True, show_progress: bool = True,
        stop_after_epoch: int | None = None) -> Path:
    """Train `job.model` for ``settings.epochs`` epochs into `out`; return the best checkpoint path."""
    out, settings, model = Path(out), job.settings, job.model
    identity = run_identity(job.config, job.meta, job.data_id)
    check_run_folder(out, identity)
    meta = {**job.meta, "run_identity": identity}
    per_rank = max(1, settings.batch_size // info.world_size)
    sampler = make_sampler(job.train_set, info, shuffle=True, seed=settings.seed, generator=job.generator)
    if len(job.train_set) == 0:
        raise UserError("the training split is empty")
    # a last partial batch is dropped (ranking losses need full in-batch negatives), unless it is the only one
    loader = DataLoader(job.train_set, batch_size=per_rank, sampler=sampler, collate_fn=job.collate,
                        num_workers=settings.num_workers, drop_last=len(job.train_set) > per_rank)
    optimizer = make_optimizer(model, settings)
    schedule = LRSchedule(settings.lr, settings.schedule, settings.epochs, len(loader))
    scaler = grad_scaler(info.device, amp)
    start = resume_training_state(out, model, optimizer)
    ddp_model = wrap_model(model, info)
    logger = MetricLogger(out) if info.is_main else None
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        with atomic_open(out / "config.yaml") as handle:
            handle.write(dump_config(dict(job.config)))
    best = _best_score(out) if start > 0 else -math.inf
    epoch = start - 1
    try:
        for epoch in range(start, settings.epochs):
            began = time.time()
            set_epoch(sampler, epoch, settings.seed)
            if job.start_epoch is not None:
                job.start_epoch(epoch)
            ddp_model.train()
            sums: dict[str, float] = {}
            steps, lr = 0, schedule.lr(epoch, 0)
            bar = progress(loader, f"epoch {epoch + 1}/{settings.epochs}", enabled=show_progress and info.is_main)
            for step, batch in enumerate(bar):
                lr = schedule.apply(optimizer, epoch, step)
                batch = to_device(batch, info.device)
                if job.prepare_batch is not None:
                    batch = job.prepare_batch(batch)
                with autocast(info.device, amp):
                    outputs = ddp_model(job.model_input(batch))
                    losses = unwrap_model(ddp_model).training_losses(outputs, batch)
                values = {name: float(value.detach()) for name, value in losses.items()}
                bad = [name for name, value in values.items() if not math.isfinite(value)]
                if bad:
                    raise UserError(f"epoch {epoch + 1} step {step + 1}: loss {bad[0]!r} is {values[bad[0]]} "
                                    "(training stopped; lower train.lr or check the data)")
                backward_step(losses["total"], optimizer, scaler, model.parameters(), settings.grad_clip)
                for name, value in values.items():
                    sums[name] = sums.get(name, 0.0) + value
                steps += 1
            result = job.evaluate(model, epoch) if job.evaluate is not None else None
            if result is not None and result.score is not None and not math.isfinite(result.score):
                raise UserError(f"epoch {epoch + 1}: selection score is {result.score} (training stopped)")
            if info.is_main:
                record = {f"loss_{k}": v / max(steps, 1) for k, v in sums.items()}
                record.update(lr=lr, seconds=round(time.time() - began, 2))
                if result is not None:
                    record.update(result.log)
                    if result.score is None:
                        record["not_selectable"] = result.reason
                        log.warning("epoch %d is not selectable: %s", epoch + 1, result.reason)
                logger.log(epoch, "epoch", record)
                if result is not None and result.score is not None and result.score > best:
                    best = result.score
                    selection = {"rule": "best evaluation score", "score": result.score}
                    save_checkpoint(out / BEST, model.state_dict(),
                                    {**meta, "epoch": epoch, "selection": selection, job.record_key: result.record})
                save_training_state(out, model, optimizer, epoch, meta)
            barrier()
            if stop_after_epoch is not None and epoch >= stop_after_epoch:
                break
        finished = epoch == settings.epochs - 1
        if job.evaluate is None and finished and info.is_main:
            save_checkpoint(out / BEST, model.state_dict(),
                            {**meta, "epoch": epoch, "selection": {"rule": "last epoch", "score": None}})
    finally:
        if logger is not None:
            logger.close()
        if info.enabled:
            # the DDP wrapper holds the process group: release it first, or the group outlives
            # destroy_process_group and its worker thread aborts the process at interpreter exit
            ddp_model = None
            gc.collect()
            cleanup(synchronise=sys.exc_info()[0] is None)
    if info.is_main and not (out / f"{BEST}.safetensors").is_file() and epoch == settings.epochs - 1:
        raise UserError(f"{out}: no epoch could be selected (every evaluation was unselectable; see metrics.jsonl)")
    return out / f"{BEST}.safetensors"
