"""`fau train`: the FAU side of training; the loop itself is `shared.trainer.fit`.

This module reads the config's ``train:`` section into `shared.trainer.TrainConfig` and its
``data:`` section into `DataConfig`, builds the model from the registry (`fau.models.MODELS`) and the
training / validation sets of a fold, and hands `fit` the FAU hooks:

* the model's input is the batch's ``image``;
* ``prepare_batch`` adds the fold's class-balance weights (``au_weights``) to every batch;
* ``start_epoch`` selects the epoch of the random crops, flips and Cutout holes (a function of
  (seed, epoch, row), so a resumed run sees the crops an uninterrupted one would);
* ``evaluate`` scores the fold's *validation* subjects (held-out training subjects, never the test
  part; docs/fau.md, decision 'model selection') on every rank and selects the best checkpoint by
  macro F1; metrics.jsonl gets val_f1, val_accuracy and val_auc.

Runs unchanged under ``torchrun --nproc_per_node N`` (DDP, gloo on CPU). The run directory is the
one `shared.trainer` describes (best / last checkpoints, metrics.jsonl, config.yaml); the best
checkpoint's sidecar (`checkpoint_meta`) holds everything needed to rebuild and interpret the model
and its validation scores under ``val``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch

from fau.aus import dataset_for_aus
from fau.data.loader import AlignedFaceDataset
from fau.data.table import PreparedDataset, load_prepared
from fau.evaluation.scores import score_rows
from fau.language.vocab import language_tensors
from fau.models import build_model
from shared.checkpoint import describe_transfer, load_checkpoint, load_matching
from shared.config import bounded, from_dict
from shared.distributed import DistInfo, init_distributed
from shared.errors import UserError
from shared.seed import seed_everything
from shared.trainer import EpochEval, TrainConfig, TrainJob, fit

log = logging.getLogger(__name__)

SECTIONS = ("model", "train", "data")


@dataclass(frozen=True)
class DataConfig:
    """The ``data:`` section: how stored aligned crops become model inputs (`fau.data.loader`)."""

    image_size: int = bounded(minimum=8, doc="side the stored crops are resized to")
    crop: int = bounded(minimum=8, doc="random (train) / centre (test) crop side; = model.input_size")
    cache_images: bool = bounded(doc="keep decoded crops in memory")
    cutout_size: int = bounded(0, minimum=0, doc="side of the Cutout hole (0: no Cutout)")
    cutout_prob: float = bounded(0.0, minimum=0.0, maximum=1.0, doc="probability of one Cutout hole")

    def __post_init__(self) -> None:
        if self.crop > self.image_size:
            raise ValueError(f"crop {self.crop} is larger than image_size {self.image_size}")


def read_settings(config: Mapping[str, Any]) -> tuple[TrainConfig, DataConfig]:
    """The ``train:`` and ``data:`` sections, read strictly (unknown, missing or out-of-range keys
    are one-line errors naming the dotted key)."""
    for section in SECTIONS:
        if section not in config:
            raise UserError(f"config: missing section {section!r}")
    return from_dict(TrainConfig, config["train"], "train"), from_dict(DataConfig, config["data"], "data")


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
        log.info("model.dataset: %r -> %r (the AU set of the prepared data)", model.get("dataset"), name)
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


def validation_hook(val_set: AlignedFaceDataset, batch_size: int, info: DistInfo,
                    names: list[str]) -> Callable[[torch.nn.Module, int], EpochEval]:
    """The evaluation hook: macro F1 on the validation rows selects; accuracy and AUC are logged."""
    def evaluate(model: torch.nn.Module, epoch: int) -> EpochEval:
        val = score_rows(model, val_set, batch_size, info, names)
        macro = val["macro"]
        return EpochEval(score=macro["f1"], record=val,
                         log={"val_f1": macro["f1"], "val_accuracy": macro["accuracy"], "val_auc": macro["auc"]})

    return evaluate


def train(model_name: str, data_dir: str | Path, fold: str, config: Mapping[str, Any], out: str | Path,
          device: str = "auto", init_from: str | Path | None = None, show_progress: bool = True,
          stop_after_epoch: int | None = None, amp: bool = True) -> Path:
    """Train `model_name` on fold `fold` of a prepared dataset; return the best checkpoint path.

    Re-running with the same `out` resumes from ``out/last`` (same result as an uninterrupted run).
    `stop_after_epoch` ends the run early after that epoch (used to test resuming).  `amp` turns
    on float16 autocast with loss scaling on CUDA (a no-op on CPU).
    """
    settings, data_settings = read_settings(config)
    info = init_distributed(device)
    generator = seed_everything(settings.seed)
    data = load_prepared(data_dir)
    if data.meta.get("task", "au") != "au":
        raise UserError(f"{data_dir}: task {data.meta.get('task')!r} is not supported by `fau train` yet")
    weights, prior = fold_statistics(data, fold)
    config = with_data_aus(config, data)
    model = build_model(model_name, config["model"], num_aus=len(data.columns), prior=prior)
    if getattr(model, "input_size", data_settings.crop) != data_settings.crop:
        raise UserError(f"config: data.crop {data_settings.crop} differs from the model's input_size {model.input_size}")
    if init_from is not None:
        tensors, _ = load_checkpoint(init_from)
        loaded, skipped = load_matching(model, tensors)
        if info.is_main:
            log.info(describe_transfer(init_from, loaded, skipped))
    if info.is_main and getattr(model, "backbone_status", None):
        log.info("%s backbone: %s", model_name, model.backbone_status)
    train_rows, val_rows = data.indices(fold, "train"), data.indices(fold, "val")
    if len(train_rows) == 0 or len(val_rows) == 0:
        raise UserError(f"{data_dir}: fold {fold} has {len(train_rows)} training and {len(val_rows)} validation frames")
    train_set = AlignedFaceDataset(data, train_rows, data_settings.image_size, data_settings.crop, train=True,
                                   seed=settings.seed, cache=data_settings.cache_images,
                                   extras=language_tensors(model, data),
                                   cutout=(data_settings.cutout_size, data_settings.cutout_prob))
    val_set = AlignedFaceDataset(data, val_rows, data_settings.image_size, data_settings.crop, train=False,
                                 cache=data_settings.cache_images)
    au_weights = torch.from_numpy(weights).to(info.device)
    job = TrainJob(
        model=model, train_set=train_set, settings=settings, config=config,
        meta=checkpoint_meta(model_name, config, data, fold, prior),
        model_input=lambda batch: batch["image"],
        evaluate=validation_hook(val_set, settings.eval_batch_size, info, data.columns),
        start_epoch=train_set.set_epoch,
        prepare_batch=lambda batch: {**batch, "au_weights": au_weights},
        record_key="val", generator=generator,
    )
    return fit(job, out, info, amp=amp, show_progress=show_progress, stop_after_epoch=stop_after_epoch)
