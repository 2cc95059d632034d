"""`fau train`: the FAU side of training; the loop itself is `shared.trainer.fit`.

This module reads the config's ``train:`` section into `FAUTrainConfig` (`shared.trainer.TrainConfig`
plus ``protocol``) and its ``data:`` section into `DataConfig`, builds the model from the registry
(`fau.models.MODELS`) and the training set of a fold, and hands `fit` the FAU hooks:

* the model's input is the batch's ``image``;
* ``prepare_batch`` adds the class-balance weights of the rows it trains on (``au_weights``; for
  ALGRNet's paralysis task, thesis §3.3.4, the ``grades`` and their ``grade_weights`` of eq. 3.3);
* ``start_epoch`` selects the epoch of the random crops, flips and Cutout holes (a function of
  (seed, epoch, row), so a resumed run sees the crops an uninterrupted one would).

Two protocols (``train.protocol``, ``fau train --protocol``; docs/fau.md, decision 'protocol'):

* ``paper`` — the thesis's: train on every subject of the two training parts for the config's
  fixed number of epochs ("two folds ... are used for training and the remaining one is used for
  testing", thesis §3.3.1; 20 epochs §3.3.2, 15 §4.4.1 and §5.4.2), no validation carve-out; the
  last epoch is the run's model and is scored on the test part (``OUT/eval.json``, the report of
  `fau eval`);
* ``validated`` — ours: 15 % of the training subjects are held out (`fau.data.folds`), ``evaluate``
  scores them on every rank after each epoch and the best macro F1 is kept; metrics.jsonl gets
  val_f1, val_accuracy and val_auc. ``train.threshold: validated`` also chooses per-AU decision
  thresholds on those subjects (`fau.evaluation.thresholds`), kept in the best checkpoint's sidecar.

Runs unchanged under ``torchrun --nproc_per_node N`` (DDP, gloo on CPU). The run directory is the
one `shared.trainer` describes (best / last checkpoints, metrics.jsonl, config.yaml); the best
checkpoint's sidecar (`checkpoint_meta`) holds everything needed to rebuild and interpret the model
and its validation scores under ``val``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Mapping

import numpy as np
import torch

from fau.aus import dataset_for_aus
from fau.data.loader import AlignedFaceDataset
from fau.data.stats import class_weights, cooccurrence_prior, grade_weights
from fau.data.table import PreparedDataset, load_prepared
from fau.evaluation.scores import au_scores, grade_scores, predict_dataset
from fau.evaluation.thresholds import best_f1_thresholds, threshold_mapping
from fau.language.vocab import language_tensors
from fau.models import build_model, output_count
from shared.checkpoint import describe_transfer, load_checkpoint, load_matching
from shared.config import bounded, from_dict
from shared.distributed import DistInfo, init_distributed
from shared.errors import UserError
from shared.io import write_json
from shared.seed import seed_everything
from shared.trainer import EpochEval, TrainConfig, TrainJob, fit

log = logging.getLogger(__name__)

SECTIONS = ("model", "train", "data")
PROTOCOLS = ("paper", "validated")
#: the report of the paper protocol's last epoch on the test part, next to the checkpoints
EVAL_FILE = "eval.json"


@dataclass(frozen=True)
class FAUTrainConfig(TrainConfig):
    """The ``train:`` section of a FAU config: the shared schema plus the protocol (module docstring)."""

    protocol: Literal["paper", "validated"] = "paper"
    threshold: Literal["fixed", "validated"] = bounded(
        "fixed", doc="AU decision thresholds: fixed 0.5, or per AU the best F1 on the validation subjects "
                     "(needs protocol: validated; fau.evaluation.thresholds)")
    requires_init: bool = bounded(False, doc="refuse to start without --init-from (a BP4D model for DISFA)")


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


def read_settings(config: Mapping[str, Any]) -> tuple[FAUTrainConfig, DataConfig]:
    """The ``train:`` and ``data:`` sections, read strictly (unknown, missing or out-of-range keys
    are one-line errors naming the dotted key)."""
    for section in SECTIONS:
        if section not in config:
            raise UserError(f"config: missing section {section!r}")
    settings = from_dict(FAUTrainConfig, config["train"], "train")
    if settings.threshold == "validated" and settings.protocol != "validated":
        raise UserError("train.threshold: validated chooses the thresholds on the validation subjects, which "
                        f"train.protocol {settings.protocol!r} trains on (use train.threshold=fixed)")
    return settings, from_dict(DataConfig, config["data"], "data")


def protocol_rows(data: PreparedDataset, fold: str, protocol: str) -> tuple[np.ndarray, np.ndarray | None]:
    """The table rows a protocol trains on and the rows it selects on (None: no selection).

    ``paper``: every subject of the two training parts (the fold's train and validation subjects),
    no selection rows; ``validated``: the fold's training subjects, selected on its validation subjects.
    """
    if protocol not in PROTOCOLS:
        raise UserError(f"train.protocol {protocol!r} is not one of {', '.join(PROTOCOLS)}")
    train_rows, val_rows = data.indices(fold, "train"), data.indices(fold, "val")
    if protocol == "paper":
        rows = np.union1d(train_rows, val_rows)
        if len(rows) == 0 or len(data.indices(fold, "test")) == 0:
            raise UserError(f"{data.root}: fold {fold} has {len(rows)} training and "
                            f"{len(data.indices(fold, 'test'))} test frames")
        return rows, None
    if len(train_rows) == 0 or len(val_rows) == 0:
        raise UserError(f"{data.root}: fold {fold} has {len(train_rows)} training and {len(val_rows)} validation "
                        f"frames (the validated protocol needs both; --protocol paper trains on all of them)")
    return train_rows, val_rows


def fold_statistics(data: PreparedDataset, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """The class-balance weights of the rows a run trains on (so they always come from exactly the
    training frames of the protocol, never validation or test frames) and, for AU data, MGRR-Net's
    co-occurrence prior (thesis eqs. 4.1–4.2). AU data: per-AU weights in label-column order
    (`fau.data.stats.class_weights`); paralysis data: per-grade weights "obtained by counting the
    different classes in the training set" (eq. 3.3, `fau.data.stats.grade_weights`), no prior."""
    labels = data.labels()[rows]
    if data.meta.get("task", "au") == "paralysis":
        return grade_weights(labels[:, 0], len(data.meta["grades"])).astype(np.float32), None
    return class_weights(labels).astype(np.float32), cooccurrence_prior(labels).astype(np.float32)


def check_task(model_name: str, config: Mapping[str, Any], data: PreparedDataset, data_dir: str | Path) -> str:
    """The data's task (``au`` or ``paralysis``), which the model config must share (one line otherwise)."""
    task = data.meta.get("task", "au")
    wanted = config["model"].get("task", "au")
    if task != wanted:
        if "task" not in config["model"]:
            raise UserError(f"{data_dir}: {task} data, but {model_name} recognises AUs only "
                            f"(facial paralysis is ALGRNet's task, thesis §3.3.4: --model algrnet --task paralysis)")
        raise UserError(f"{data_dir}: {task} data, but the config's model.task is {wanted!r} (pass --task {task})")
    return task


def init_source(init_from: str | Path | None, settings: FAUTrainConfig, model_name: str) -> Path | None:
    """The checkpoint to initialise from: None when not given or given as ``none`` (on purpose); a
    config with ``train.requires_init`` (the DISFA paper configs: "initializes the parameters of the
    well-trained model trained on BP4D when training on DISFA", thesis §4.4.1) refuses to start
    without one in one line."""
    if init_from is not None and str(init_from).strip().lower() == "none":
        return None
    if init_from is None:
        if settings.requires_init:
            raise UserError(f"--init-from: this config starts {model_name} from a model trained on BP4D (config "
                            f"train.requires_init; thesis §4.4.1); pass --init-from BP4D_RUN/best.safetensors, or "
                            f"--init-from none to train from scratch on purpose")
        return None
    return Path(init_from)


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
                    prior: np.ndarray | None, protocol: str) -> dict[str, Any]:
    """The JSON sidecar of a FAU checkpoint: everything needed to rebuild and interpret the model,
    and the protocol that produced it."""
    return {
        "model": model_name,
        "protocol": protocol,
        "config": dict(config),
        "labels": data.columns,
        "aus": list(data.meta.get("aus", [])),
        "grades": list(data.meta.get("grades") or []),
        "dataset": data.meta.get("dataset"),
        "task": data.meta.get("task", "au"),
        "fold": fold,
        "crop_size": int(data.meta.get("crop_size", 200)),
        "box_enlarge": float(data.meta.get("box_enlarge", 2.9)),
        "prior": None if prior is None else prior.tolist(),
        "template_version": data.meta.get("template_version"),
    }


def validation_hook(val_set: AlignedFaceDataset, batch_size: int, info: DistInfo,
                    data: PreparedDataset, threshold: str = "fixed") -> Callable[[torch.nn.Module, int], EpochEval]:
    """The evaluation hook: macro F1 on the validation rows selects (per AU, or per paralysis grade);
    accuracy (and AUC for AUs) are logged. With ``threshold: validated`` each epoch's F1 is taken at
    the per-AU thresholds that are best on these rows, and the record (the best checkpoint's sidecar
    ``val``) keeps them under ``thresholds`` for `fau eval` and `fau predict`."""
    paralysis = data.meta.get("task", "au") == "paralysis"

    def evaluate(model: torch.nn.Module, epoch: int) -> EpochEval:
        predictions = predict_dataset(model, val_set, batch_size, info)
        if paralysis:
            val = grade_scores(predictions, list(data.meta["grades"]))
        elif threshold == "validated":
            cuts = best_f1_thresholds(predictions["prob"], predictions["labels"])
            val = {**au_scores(predictions, data.columns, cuts), "thresholds": threshold_mapping(cuts, data.columns)}
        else:
            val = au_scores(predictions, data.columns)
        macro = val["macro"]
        log_values = {f"val_{key}": macro[key] for key in ("f1", "accuracy", "auc") if key in macro}
        return EpochEval(score=macro["f1"], record=val, log=log_values)

    return evaluate


def train(model_name: str, data_dir: str | Path, fold: str, config: Mapping[str, Any], out: str | Path,
          device: str = "auto", init_from: str | Path | None = None, show_progress: bool = True,
          stop_after_epoch: int | None = None, amp: bool = True) -> Path:
    """Train `model_name` on fold `fold` of a prepared dataset; return the best checkpoint path.

    Re-running with the same `out` resumes from ``out/last`` (same result as an uninterrupted run).
    `init_from` is a checkpoint whose matching tensors start the model, or ``"none"`` to start from
    scratch on purpose where the config requires an initialisation (`init_source`).
    `stop_after_epoch` ends the run early after that epoch (used to test resuming).  `amp` turns
    on float16 autocast with loss scaling on CUDA (a no-op on CPU).
    """
    settings, data_settings = read_settings(config)
    info = init_distributed(device)
    generator = seed_everything(settings.seed)
    data = load_prepared(data_dir)
    task = check_task(model_name, config, data, data_dir)
    source = init_source(init_from, settings, model_name)
    train_rows, val_rows = protocol_rows(data, fold, settings.protocol)
    weights, prior = fold_statistics(data, train_rows)
    config = with_data_aus(config, data)
    model = build_model(model_name, config["model"], num_aus=output_count(model_name, config["model"], data.columns),
                        prior=prior)
    if getattr(model, "input_size", data_settings.crop) != data_settings.crop:
        raise UserError(f"config: data.crop {data_settings.crop} differs from the model's input_size {model.input_size}")
    if source is not None:
        tensors, init_meta = load_checkpoint(source)
        if settings.requires_init and init_meta.get("model") != model_name:
            raise UserError(f"--init-from {source}: a {init_meta.get('model')!r} checkpoint, not {model_name!r}")
        loaded, skipped = load_matching(model, tensors)
        if info.is_main:
            log.info(describe_transfer(source, loaded, skipped))
    if info.is_main and getattr(model, "backbone_status", None):
        log.info("%s backbone: %s", model_name, model.backbone_status)
    train_set = AlignedFaceDataset(data, train_rows, data_settings.image_size, data_settings.crop, train=True,
                                   seed=settings.seed, cache=data_settings.cache_images,
                                   extras=language_tensors(model, data),
                                   cutout=(data_settings.cutout_size, data_settings.cutout_prob))
    evaluate = None
    if val_rows is not None:
        val_set = AlignedFaceDataset(data, val_rows, data_settings.image_size, data_settings.crop, train=False,
                                     cache=data_settings.cache_images)
        evaluate = validation_hook(val_set, settings.eval_batch_size, info, data, settings.threshold)
    class_weight = torch.from_numpy(weights).to(info.device)
    if task == "paralysis":   # ALGRNet's L_par (eq. 3.3) reads one grade per image and the grade weights
        def prepare_batch(batch: dict) -> dict:
            return {**batch, "grades": batch["labels"].reshape(-1), "grade_weights": class_weight}
    else:
        def prepare_batch(batch: dict) -> dict:
            return {**batch, "au_weights": class_weight}
    job = TrainJob(
        model=model, train_set=train_set, settings=settings, config=config,
        meta=checkpoint_meta(model_name, config, data, fold, prior, settings.protocol),
        model_input=lambda batch: batch["image"],
        evaluate=evaluate,
        start_epoch=train_set.set_epoch,
        prepare_batch=prepare_batch,
        record_key="val", generator=generator,
    )
    best = fit(job, out, info, amp=amp, show_progress=show_progress, stop_after_epoch=stop_after_epoch)
    if settings.protocol == "paper" and info.is_main and best.is_file():
        from fau.evaluation.checkpoint import evaluate_checkpoint

        report = evaluate_checkpoint(best, data_dir, fold, "test", device=str(info.device),
                                     batch_size=settings.eval_batch_size)
        write_json(Path(out) / EVAL_FILE, report)
        log.info("paper protocol: last epoch on the test part %s: macro F1 %.3f (%s)", fold,
                 report["scores"]["macro"]["f1"], Path(out) / EVAL_FILE)
    return best
