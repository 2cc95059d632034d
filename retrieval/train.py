"""Training loop shared by every retrieval model: `retrieval train`.

The loop knows no model: it builds one by name, feeds it (image, caption) pair batches
(`retrieval.data.pairs`), back-propagates ``compute_losses(...)["total"]`` and logs every named term.
After each epoch it scores the dev split (truncated to ``data.dev_max_images``, as the public code
does) with the exact evaluator and keeps the best checkpoint by dev rSum ("determined based on the
sum of the recalls in the validation set", HSLM paper §4.2; or R@1+R@5, VSRN's rule).  An epoch
whose dev matrix collapsed (all scores equal within `COLLAPSE_RTOL` of their magnitude) is logged
and never kept as best; a NaN or ±inf dev score stops training with a one-line error naming the epoch.
Runs under ``torchrun --nproc_per_node N``: each rank holds batch_size / N pairs and the ranking
loss scores its local anchors against the embeddings gathered from every rank (the global batch,
`retrieval.losses`), so negatives are the same as in one process with the whole batch.

Run directory: ``best`` and ``last`` checkpoints (safetensors + JSON), ``metrics.jsonl``, ``config.yaml``.
The checkpoint sidecar holds the vocabulary (GRU models) or the tokenizer folder (BERT models), so
a checkpoint alone embeds new captions.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from torch.utils.data import DataLoader

from retrieval.data.pairs import PairDataset, TextEncoding, check_model_inputs
from retrieval.data.precomp import load_split, resolve_precomp_dir
from retrieval.evaluate import dev_evaluation
from retrieval.evaluation.metrics import COLLAPSE_RTOL
from retrieval.evaluation.similarity import to_device
from retrieval.models import MODELS, build_model
from retrieval.text import text_encoding_for
from shared.checkpoint import describe_transfer, load_checkpoint, load_matching, save_checkpoint
from shared.config import Options, dump_config
from shared.device import autocast, grad_scaler
from shared.distributed import barrier, cleanup, init_distributed, make_sampler, set_epoch, unwrap_model, wrap_model
from shared.errors import UserError
from shared.io import atomic_open
from shared.logging import MetricLogger
from shared.seed import seed_everything
from shared.training import backward_step, progress, resume_training_state, save_training_state, step_decay_lr

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
OPTIMIZERS = ("adam", "adamw")
SELECT_BY = ("rsum", "r1r5")
LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainSettings:
    """The ``train:`` and ``data:`` sections of a retrieval config, read strictly."""

    optimizer: str
    lr: float
    weight_decay: float
    lr_step: int
    lr_gamma: float
    lr_scales: dict[str, float]
    epochs: int
    batch_size: int
    grad_clip: float
    warmup_epochs: int
    select_by: str
    seed: int
    num_workers: int
    eval_batch_size: int
    dev_max_images: int
    vocab_min_count: int
    word_vectors: str | None
    max_caption_length: int
    parser: str

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "TrainSettings":
        for section in ("model", "loss", "train", "data"):
            if section not in config:
                raise UserError(f"config: missing section {section!r}")
        train, data = Options(config["train"], "train"), Options(config["data"], "data")
        schedule = train.sub("lr_schedule")
        if schedule.choice("type", ("step",)) != "step":
            raise UserError("config train.lr_schedule.type: only 'step' is supported")
        settings = cls(
            optimizer=train.choice("optimizer", OPTIMIZERS),
            lr=train.float("lr", minimum=0.0),
            weight_decay=train.float("weight_decay", minimum=0.0),
            lr_step=schedule.int("step_epochs", minimum=1),
            lr_gamma=schedule.float("gamma", minimum=0.0, maximum=1.0),
            lr_scales={str(k): float(v) for k, v in train.mapping("lr_scales").items()},
            epochs=train.int("epochs", minimum=1),
            batch_size=train.int("batch_size", minimum=2),
            grad_clip=train.float("grad_clip", minimum=0.0),
            warmup_epochs=train.int("warmup_epochs", minimum=0),
            select_by=train.choice("select_by", SELECT_BY),
            seed=train.int("seed", minimum=0),
            num_workers=train.int("num_workers", minimum=0),
            eval_batch_size=train.int("eval_batch_size", minimum=1),
            dev_max_images=data.int("dev_max_images", minimum=1),
            vocab_min_count=data.int("vocab_min_count", minimum=1),
            word_vectors=data.str("word_vectors", allow_none=True),
            max_caption_length=data.int("max_caption_length", minimum=4),
            parser=data.choice("parser", ("spacy", "stanza")),
        )
        train.finish()
        data.finish()
        return settings


def learning_rate(settings: TrainSettings, epoch: int, step: int, steps_per_epoch: int) -> float:
    """Step decay (×gamma every ``step_epochs``) with an optional linear warm-up over the first epochs."""
    lr = step_decay_lr(settings.lr, epoch, settings.lr_step, settings.lr_gamma)
    if epoch < settings.warmup_epochs:
        done = (epoch * steps_per_epoch + step + 1) / (settings.warmup_epochs * steps_per_epoch)
        lr *= min(1.0, done)
    return lr


def make_optimizer(model: torch.nn.Module, settings: TrainSettings) -> torch.optim.Optimizer:
    groups = unwrap_model(model).parameter_groups(settings.lr_scales)
    for group in groups:
        group["lr"] = settings.lr * group["lr_scale"]
    cls = torch.optim.Adam if settings.optimizer == "adam" else torch.optim.AdamW
    return cls(groups, lr=settings.lr, weight_decay=settings.weight_decay)


def selection_score(metrics: Mapping[str, float], rule: str) -> float:
    """The dev number that picks the best epoch: rSum, or R@1+R@5 of both directions (VSRN's rule)."""
    if rule == "rsum":
        return float(metrics["rsum"])
    return float(metrics["i2t_r1"] + metrics["i2t_r5"] + metrics["t2i_r1"] + metrics["t2i_r5"])


def keeps_as_best(score: float, best: float, collapsed: bool) -> bool:
    """Whether an epoch becomes the new `best`: a higher selection score and a dev matrix that did not
    collapse (a collapsed model must never be selected, whatever its recalls say)."""
    return not collapsed and score > best


def train(model_name: str, data_dir: str | Path, config: Mapping[str, Any], out: str | Path,
          device: str = "auto", init_from: str | Path | None = None, name: str | None = None,
          show_progress: bool = True, stop_after_epoch: int | None = None, amp: bool = True) -> Path:
    """Train `model_name` on the train split of a precomputed dataset; return the best checkpoint.

    `amp` turns on float16 autocast with loss scaling on CUDA (a no-op on CPU)."""
    settings = TrainSettings.from_config(config)
    info = init_distributed(device)
    out = Path(out)
    generator = seed_everything(settings.seed)
    precomp = resolve_precomp_dir(data_dir, name)
    train_split = load_split(precomp, "train", feature_dim=None)
    dev_split = load_split(precomp, "dev", feature_dim=None, dev_max_images=settings.dev_max_images)
    cls = MODELS.get(model_name)
    text, vocab, word_vectors = text_encoding_for(cls, config, settings, train_split.captions)
    tree_labels = None
    if cls.needs_tree_labels:
        from retrieval.parsing.cache import ParseCache

        cache = ParseCache(precomp, settings.parser)
        tree_labels = cache.load_tree_labels("train")
        config = with_tree_sizes(config, cache.load_dictionaries())
    model = build_model(model_name, dict(config), len(vocab) if vocab else None, word_vectors)
    if vocab is not None:
        model.prepare_corpus([vocab.encode(c) for c in train_split.captions], vocab.idx2word)
    check_model_inputs(train_split, model, f"{precomp.path} train")
    check_model_inputs(dev_split, model, f"{precomp.path} dev")
    if init_from is not None:
        tensors, _ = load_checkpoint(init_from)
        loaded, skipped = load_matching(model, tensors)
        if info.is_main:
            print(describe_transfer(init_from, loaded, skipped))
    pairs = PairDataset(train_split, text, model.image_inputs(), tree_labels)
    per_rank = settings.batch_size // info.world_size
    sampler = make_sampler(pairs, info, shuffle=True, seed=settings.seed, generator=generator)
    loader = DataLoader(pairs, batch_size=per_rank, sampler=sampler, collate_fn=pairs.collate,
                        num_workers=settings.num_workers, drop_last=True)
    if len(loader) == 0:
        raise UserError(f"{precomp.path}: {len(pairs)} training pairs are fewer than one batch of {per_rank}")
    optimizer = make_optimizer(model, settings)
    scaler = grad_scaler(info.device, amp)
    start = resume_training_state(out, model, optimizer)
    ddp_model = wrap_model(model, info)
    meta = checkpoint_meta(model_name, config, precomp.name, text, vocab)
    logger = MetricLogger(out) if info.is_main else None
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        with atomic_open(out / "config.yaml") as handle:
            handle.write(dump_config(config))
    best = _best_so_far(out, settings.select_by) if start > 0 else -math.inf
    for epoch in range(start, settings.epochs):
        began = time.time()
        set_epoch(sampler, epoch, settings.seed)
        model.set_epoch(epoch)
        ddp_model.train()
        sums: dict[str, float] = {}
        steps = 0
        for step, batch in enumerate(progress(loader, f"epoch {epoch + 1}/{settings.epochs}",
                                              enabled=show_progress and info.is_main)):
            lr = learning_rate(settings, epoch, step, len(loader))
            for group in optimizer.param_groups:
                group["lr"] = lr * group["lr_scale"]
            batch = to_device(batch, info.device)
            with autocast(info.device, amp):
                outputs = ddp_model(batch)
                losses = model.training_losses(outputs, batch)
            backward_step(losses["total"], optimizer, scaler, model.parameters(), settings.grad_clip)
            for key, value in losses.items():
                sums[key] = sums.get(key, 0.0) + float(value.detach())
            steps += 1
        if info.is_main:
            dev = dev_evaluation(model, dev_split, text, settings.eval_batch_size, show_progress,
                                 label=f"training epoch {epoch + 1}/{settings.epochs}, dev split")
            metrics = dev.metrics
            score = selection_score(metrics, settings.select_by)
            record = {f"loss_{k}": v / max(steps, 1) for k, v in sums.items()}
            record.update({f"dev_{k}": v for k, v in metrics.items()}, dev_collapsed=dev.collapsed, lr=lr,
                          seconds=round(time.time() - began, 2))
            logger.log(epoch, "epoch", record)
            if dev.collapsed:
                LOG.warning("epoch %d/%d: the dev scores collapsed (all within [%.6g, %.6g], relative spread <= %g); "
                            "not kept as best", epoch + 1, settings.epochs, dev.score_min, dev.score_max, COLLAPSE_RTOL)
            if keeps_as_best(score, best, dev.collapsed):
                best = score
                save_checkpoint(out / "best", model.state_dict(), {**meta, "epoch": epoch, "dev": metrics})
            save_training_state(out, model, optimizer, epoch, meta)
        barrier()
        if stop_after_epoch is not None and epoch >= stop_after_epoch:
            break
    if logger is not None:
        logger.close()
    if info.enabled:
        cleanup()
    if info.is_main and not (out / "best.safetensors").is_file():
        raise UserError(f"{out}: no epoch was kept as best (every dev evaluation collapsed; see dev_collapsed in "
                        f"metrics.jsonl); the last training state is {out / 'last.safetensors'}")
    return out / "best.safetensors"


def with_tree_sizes(config: Mapping[str, Any], dictionaries: Any) -> dict[str, Any]:
    """A copy of `config` whose SMFEA node-class counts equal the fitted referral-tree dictionaries
    (null excluded); the paper's 1,440 / 247 are the sizes `retrieval parse` fits by default."""
    model = dict(config["model"])
    sizes = {"num_fragments": len(dictionaries.fragments) - 1, "num_relations": len(dictionaries.relations) - 1}
    for key, value in sizes.items():
        if model.get(key) != value:
            print(f"model.{key}: {model.get(key)} -> {value} (the fitted dictionary of the parse cache)")
            model[key] = value
    return {**config, "model": model}


def checkpoint_meta(model_name: str, config: Mapping[str, Any], dataset: str, text: TextEncoding,
                    vocab: Any) -> dict[str, Any]:
    """The JSON sidecar of a retrieval checkpoint: enough to rebuild the model and encode new text."""
    return {"model": model_name, "config": dict(config), "dataset": dataset, "split": "train",
            "text_kind": text.kind, "vocab": None if vocab is None else list(vocab.idx2word),
            "labels": None}


def _best_so_far(out: Path, rule: str) -> float:
    try:
        _, meta = load_checkpoint(out / "best")
    except UserError:
        return -math.inf
    return selection_score(meta["dev"], rule) if "dev" in meta else -math.inf
