"""Training loop shared by every FAU model (ALGRNet, MGRR-Net, VL-FAU): `fau train`.

The loop knows no model: it builds one by name from the registry, feeds it the batch dict of
`fau.data.loader`, back-propagates ``compute_losses(...)["total"]`` and logs every named loss.
After each epoch it scores the fold's *validation* subjects (held-out training subjects, never the
test part, fau-models.md §5 G3) and keeps the best checkpoint by macro F1, plus a resumable
``last`` training state.  Runs unchanged under ``torchrun --nproc_per_node N`` (DDP, gloo on CPU).

Run directory::

    OUT/best.safetensors + best.json    the selected model (name, config, labels, fold, prior, val scores)
    OUT/last.safetensors + last.json    model + optimiser + epoch, for resuming after interruption
    OUT/metrics.jsonl                   per-epoch losses, learning rate, validation F1/accuracy/AUC
    OUT/config.yaml                     the resolved config of the run
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch.utils.data import DataLoader

from fau.aus import dataset_for_aus
from fau.data.loader import AlignedFaceDataset
from fau.data.table import PreparedDataset, load_prepared
from fau.evaluate import language_tensors, predict_dataset
from fau.models import build_model
from shared.checkpoint import describe_transfer, load_checkpoint, load_matching, save_checkpoint
from shared.config import Options, dump_config
from shared.device import autocast, grad_scaler
from shared.distributed import DistInfo, barrier, cleanup, init_distributed, make_sampler, set_epoch, unwrap_model, wrap_model
from shared.errors import UserError
from shared.io import atomic_open
from shared.logging import MetricLogger
from shared.metrics import MultilabelCounts
from shared.seed import seed_everything
from shared.training import backward_step, progress, resume_training_state, save_training_state, set_lr, step_decay_lr

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
OPTIMIZERS = ("sgd", "adamw")
LR_SCHEDULES = ("step", "cosine")


@dataclass(frozen=True)
class TrainSettings:
    """The ``train:`` and ``data:`` sections of a config, read strictly (unknown keys are errors)."""

    optimizer: str
    lr: float
    momentum: float
    nesterov: bool
    betas: tuple[float, float]
    weight_decay: float
    lr_schedule: str
    warmup_epochs: int
    backbone_lr_scale: float
    lr_step: int
    lr_gamma: float
    epochs: int
    batch_size: int
    eval_batch_size: int
    num_workers: int
    seed: int
    image_size: int
    crop: int
    cache_images: bool
    cutout_size: int
    cutout_prob: float

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "TrainSettings":
        for section in ("model", "train", "data"):
            if section not in config:
                raise UserError(f"config: missing section {section!r}")
        train, data = Options(config["train"], "train"), Options(config["data"], "data")
        optimizer = train.choice("optimizer", OPTIMIZERS)
        if optimizer == "sgd":
            momentum, nesterov, betas = train.float("momentum", 0.0, 1.0), train.bool("nesterov"), (0.9, 0.999)
            _unused_by_optimizer(train, optimizer, ("betas",))
        else:
            pair = train.floats("betas", length=2, minimum=0.0, maximum=1.0)
            momentum, nesterov, betas = 0.0, False, (pair[0], pair[1])
            _unused_by_optimizer(train, optimizer, ("momentum", "nesterov"))
        # optional keys (VL-FAU): configs without them keep the step schedule and no Cutout
        schedule = train.choice("lr_schedule", LR_SCHEDULES) if train.has("lr_schedule") else "step"
        step = (train.int("lr_step", minimum=1), train.float("lr_gamma", minimum=0.0, maximum=1.0)) \
            if schedule == "step" else (1, 1.0)
        warmup = train.int("warmup_epochs", minimum=0) if train.has("warmup_epochs") else 0
        if warmup and schedule != "cosine":
            raise UserError("config train.warmup_epochs: warm-up is only defined for lr_schedule: cosine")
        backbone_scale = train.float("backbone_lr_scale", minimum=0.0) if train.has("backbone_lr_scale") else 1.0
        cutout = (data.int("cutout_size", minimum=0), data.float("cutout_prob", minimum=0.0, maximum=1.0)) \
            if data.has("cutout_size") or data.has("cutout_prob") else (0, 0.0)
        settings = cls(
            optimizer=optimizer,
            lr=train.float("lr", minimum=0.0),
            momentum=momentum,
            nesterov=nesterov,
            betas=betas,
            weight_decay=train.float("weight_decay", minimum=0.0),
            lr_schedule=schedule,
            warmup_epochs=warmup,
            backbone_lr_scale=backbone_scale,
            lr_step=step[0],
            lr_gamma=step[1],
            epochs=train.int("epochs", minimum=1),
            batch_size=train.int("batch_size", minimum=1),
            eval_batch_size=train.int("eval_batch_size", minimum=1),
            num_workers=train.int("num_workers", minimum=0),
            seed=train.int("seed", minimum=0),
            image_size=data.int("image_size", minimum=8),
            crop=data.int("crop", minimum=8),
            cache_images=data.bool("cache_images"),
            cutout_size=cutout[0],
            cutout_prob=cutout[1],
        )
        train.finish()
        data.finish()
        if settings.crop > settings.image_size:
            raise UserError(f"config data.crop {settings.crop} is larger than data.image_size {settings.image_size}")
        return settings


def _unused_by_optimizer(train: Options, optimizer: str, keys: tuple[str, ...]) -> None:
    """Keys of the other optimizer may stay in a config (a tiny config switching its paper base's
    optimizer) only as null; any other value is an error, since it would be silently ignored."""
    for key in keys:
        if train.has(key) and train.raw(key) is not None:
            raise UserError(f"config train.{key}: not used by optimizer {optimizer!r} (set it to null)")


def parameter_groups(model: torch.nn.Module, backbone_lr_scale: float) -> list[dict[str, Any]]:
    """Trainable parameters in two groups: the ``backbone.`` ones with ``lr_scale`` = `backbone_lr_scale`
    (VL-FAU's optional pretrained-backbone lr × 0.1, §5 V1) and the rest with 1 (`set_lr` applies it)."""
    backbone, rest = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (backbone if name.startswith("backbone.") else rest).append(param)
    groups = [{"params": rest, "lr_scale": 1.0}]
    if backbone:
        groups.append({"params": backbone, "lr_scale": backbone_lr_scale})
    return groups


def make_optimizer(model: torch.nn.Module, settings: TrainSettings) -> torch.optim.Optimizer:
    """SGD with Nesterov momentum (ALGRNet, MGRR-Net) or AdamW (VL-FAU), from the config."""
    params = parameter_groups(model, settings.backbone_lr_scale)
    if settings.optimizer == "sgd":
        return torch.optim.SGD(params, lr=settings.lr, momentum=settings.momentum,
                               nesterov=settings.nesterov and settings.momentum > 0, weight_decay=settings.weight_decay)
    return torch.optim.AdamW(params, lr=settings.lr, betas=settings.betas, weight_decay=settings.weight_decay)


def cosine_lr(base_lr: float, iteration: int, total: int, warmup: int = 0) -> float:
    """Cosine decay per iteration, base_lr · ½(1 + cos(π·it/total)) (VL-FAU, §5 V1), after an optional
    linear warm-up over the first `warmup` iterations (base_lr · (it + 1) / warmup; §5 V1's flag)."""
    if iteration < warmup:
        return base_lr * (iteration + 1) / warmup
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * min(iteration, total) / max(total, 1)))


def fold_statistics(data: PreparedDataset, fold: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Class-balance weights (label-column order) and the co-occurrence prior of a fold's training set."""
    info = data.fold(fold)
    weights = np.array([info["class_weights"][c] for c in data.columns], dtype=np.float32)
    prior = np.asarray(info["prior"], dtype=np.float32) if info.get("prior") is not None else None
    return weights, prior


def with_data_aus(config: Mapping[str, Any], data: PreparedDataset) -> dict[str, Any]:
    """A copy of `config` whose ``model.dataset`` names the prepared data's AU set (its centre rules)."""
    if data.meta.get("task", "au") != "au":
        return dict(config)
    name = dataset_for_aus(data.meta["aus"])
    model = dict(config["model"])
    if model.get("dataset") != name:
        print(f"model.dataset: {model.get('dataset')!r} -> {name!r} (the AU set of the prepared data)")
        model["dataset"] = name
    return {**config, "model": model}


def checkpoint_meta(model_name: str, config: Mapping[str, Any], data: PreparedDataset, fold: str,
                    prior: np.ndarray | None) -> dict[str, Any]:
    """The JSON sidecar of a FAU checkpoint: everything needed to rebuild and interpret the model."""
    return {
        "model": model_name,
        "config": dict(config),
        "labels": data.columns,
        "aus": list(data.meta.get("aus", [])),
        "dataset": data.meta.get("dataset"),
        "task": data.meta.get("task", "au"),
        "fold": fold,
        "crop_size": int(data.meta.get("crop_size", 200)),
        "box_enlarge": float(data.meta.get("box_enlarge", 2.9)),
        "prior": None if prior is None else prior.tolist(),
        "template_version": data.meta.get("template_version"),
    }


def train(model_name: str, data_dir: str | Path, fold: str, config: Mapping[str, Any], out: str | Path,
          device: str = "auto", init_from: str | Path | None = None, show_progress: bool = True,
          stop_after_epoch: int | None = None, amp: bool = True) -> Path:
    """Train `model_name` on fold `fold` of a prepared dataset; return the best checkpoint path.

    Re-running with the same `out` resumes from ``out/last`` (same result as an uninterrupted run).
    `stop_after_epoch` ends the run early after that epoch (used to test resuming).  `amp` turns
    on float16 autocast with loss scaling on CUDA (a no-op on CPU).
    """
    settings = TrainSettings.from_config(config)
    info = init_distributed(device)
    out = Path(out)
    generator = seed_everything(settings.seed)
    data = load_prepared(data_dir)
    if data.meta.get("task", "au") != "au":
        raise UserError(f"{data_dir}: task {data.meta.get('task')!r} is not supported by `fau train` yet")
    weights, prior = fold_statistics(data, fold)
    config = with_data_aus(config, data)
    model = build_model(model_name, config["model"], num_aus=len(data.columns), prior=prior)
    if getattr(model, "input_size", settings.crop) != settings.crop:
        raise UserError(f"config: data.crop {settings.crop} differs from the model's input_size {model.input_size}")
    if init_from is not None:
        tensors, _ = load_checkpoint(init_from)
        loaded, skipped = load_matching(model, tensors)
        if info.is_main:
            print(describe_transfer(init_from, loaded, skipped))
    if info.is_main and getattr(model, "backbone_status", None):
        print(f"{model_name} backbone: {model.backbone_status}", flush=True)
    train_rows, val_rows = data.indices(fold, "train"), data.indices(fold, "val")
    if len(train_rows) == 0 or len(val_rows) == 0:
        raise UserError(f"{data_dir}: fold {fold} has {len(train_rows)} training and {len(val_rows)} validation frames")
    train_set = AlignedFaceDataset(data, train_rows, settings.image_size, settings.crop, train=True,
                                   seed=settings.seed, cache=settings.cache_images,
                                   extras=language_tensors(model, data),
                                   cutout=(settings.cutout_size, settings.cutout_prob))
    val_set = AlignedFaceDataset(data, val_rows, settings.image_size, settings.crop, train=False,
                                 cache=settings.cache_images)
    per_rank = max(1, settings.batch_size // info.world_size)
    sampler = make_sampler(train_set, info, shuffle=True, seed=settings.seed, generator=generator)
    loader = DataLoader(train_set, batch_size=per_rank, sampler=sampler, num_workers=settings.num_workers,
                        drop_last=len(train_set) > per_rank, persistent_workers=False)
    optimizer = make_optimizer(model, settings)
    scaler = grad_scaler(info.device, amp)
    start = resume_training_state(out, model, optimizer)
    ddp_model = wrap_model(model, info)
    au_weights = torch.from_numpy(weights).to(info.device)
    meta = checkpoint_meta(model_name, config, data, fold, prior)
    logger = MetricLogger(out) if info.is_main else None
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        with atomic_open(out / "config.yaml") as handle:
            handle.write(dump_config(config))
    best_f1 = _best_so_far(out) if start > 0 else -1.0
    for epoch in range(start, settings.epochs):
        began = time.time()
        set_epoch(sampler, epoch, settings.seed)
        train_set.set_epoch(epoch)
        lr = step_decay_lr(settings.lr, epoch, settings.lr_step, settings.lr_gamma)
        set_lr(optimizer, lr)
        ddp_model.train()
        sums: dict[str, float] = {}
        steps = 0
        for batch in progress(loader, f"epoch {epoch + 1}/{settings.epochs}", enabled=show_progress and info.is_main):
            if settings.lr_schedule == "cosine":
                lr = cosine_lr(settings.lr, epoch * len(loader) + steps, settings.epochs * len(loader),
                               settings.warmup_epochs * len(loader))
                set_lr(optimizer, lr)
            batch = {k: v.to(info.device) for k, v in batch.items()}
            batch["au_weights"] = au_weights
            with autocast(info.device, amp):
                outputs = ddp_model(batch["image"])
                losses = unwrap_model(ddp_model).compute_losses(outputs, batch)
            backward_step(losses["total"], optimizer, scaler)
            for name, value in losses.items():
                sums[name] = sums.get(name, 0.0) + float(value.detach())
            steps += 1
        val = evaluate_rows(model, val_set, settings.eval_batch_size, info, data.columns)
        if info.is_main:
            record = {f"loss_{k}": v / max(steps, 1) for k, v in sums.items()}
            record.update(lr=lr, seconds=round(time.time() - began, 2), val_f1=val["macro"]["f1"],
                          val_accuracy=val["macro"]["accuracy"], val_auc=val["macro"]["auc"])
            logger.log(epoch, "epoch", record)
            if val["macro"]["f1"] > best_f1:
                best_f1 = val["macro"]["f1"]
                save_checkpoint(out / "best", model.state_dict(), {**meta, "epoch": epoch, "val": val})
            save_training_state(out, model, optimizer, epoch, meta)
        barrier()
        if stop_after_epoch is not None and epoch >= stop_after_epoch:
            break
    if logger is not None:
        logger.close()
    if info.enabled:
        cleanup()
    return out / "best.safetensors"


def _best_so_far(out: Path) -> float:
    try:
        _, meta = load_checkpoint(out / "best")
    except UserError:
        return -1.0
    return float(meta.get("val", {}).get("macro", {}).get("f1", -1.0))


def evaluate_rows(model: torch.nn.Module, dataset: AlignedFaceDataset, batch_size: int, info: DistInfo,
                  names: list[str]) -> dict[str, dict[str, float]]:
    """Per-AU and macro F1 / accuracy / AUC of `model` on `dataset` (all ranks, gathered)."""
    probs, labels = predict_dataset(model, dataset, batch_size, info)
    counts = MultilabelCounts(len(names))
    counts.update(probs, labels)
    return counts.summary(names)
