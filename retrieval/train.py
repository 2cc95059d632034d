"""`retrieval train`: the retrieval side of training; the loop itself is `shared.trainer.fit`.

This module reads the config's ``train:`` section into `TrainSettings` (`shared.trainer.TrainConfig`
plus ``select_by``) and its ``data:`` section into `DataConfig`, builds the model from the registry
(`retrieval.models.MODELS`), the caption encoding and the (image, caption) pair batches
(`retrieval.data.pairs`), and hands `fit` the retrieval hooks:

* the model's input is the whole batch (``{"images", "texts", "image_ids"}``);
* ``start_epoch`` tells the ranking loss which epoch runs (the sum-of-hinges warm-up) and the extra-negative
  sampler which epoch it draws for;
* with ``loss.extra_negatives`` (HiRE, the thesis §7.5.1) the collate adds K images and K captions from
  outside each batch (`retrieval.data.negatives`);
* ``evaluate`` scores the dev split (truncated to ``data.dev_max_images``, as the public codes do) with
  the exact evaluator on every rank, and selects the best checkpoint by dev rSum ("determined based on
  the sum of the recalls in the validation set", HSLM paper §4.2) or by R@1 + R@5 (VSRN's rule).  An
  epoch whose dev matrix collapsed (all scores equal within `COLLAPSE_RTOL` of their magnitude) is
  logged and never selected; a NaN or ±inf dev score stops training with a one-line error naming the
  epoch.  metrics.jsonl gets every dev metric as ``dev_<key>`` and ``dev_collapsed``.

Runs under ``torchrun --nproc_per_node N``: each rank holds batch_size / N pairs and the ranking loss
scores its local anchors against the embeddings gathered from every rank (`retrieval.losses`), so the
negatives are those of one process with the whole batch.  Every rank scores the whole dev split (the
matrix needs every image against every caption), so every rank sees the same selection.

The run directory is the one `shared.trainer` describes; the checkpoint sidecar (`checkpoint_meta`)
holds the vocabulary (GRU models) or the tokenizer folder (BERT models), so a checkpoint alone embeds
new captions, and the best checkpoint's dev scores under ``dev``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Mapping

import torch

from retrieval.data.negatives import ExtraNegatives
from retrieval.data.pairs import PairDataset, TextEncoding, check_model_inputs
from retrieval.data.precomp import PrecompSplit, load_split, resolve_precomp_dir
from retrieval.evaluation.checkpoint import check_semantic_edges, dev_evaluation
from retrieval.evaluation.metrics import COLLAPSE_RTOL
from retrieval.models import CONFIG_DIR, MODELS, build_model
from retrieval.text import text_encoding_for
from shared.checkpoint import describe_transfer, load_checkpoint, load_matching
from shared.config import bounded, from_dict
from shared.distributed import init_distributed
from shared.errors import UserError
from shared.seed import seed_everything
from shared.trainer import EpochEval, TrainConfig, TrainJob, fit

log = logging.getLogger(__name__)

SECTIONS = ("model", "loss", "train", "data")

__all__ = ["CONFIG_DIR", "DataConfig", "TrainSettings", "read_settings", "resolve_init_from", "selection_score", "train"]


@dataclass(frozen=True)
class TrainSettings(TrainConfig):
    """The ``train:`` section: the shared keys (`shared.trainer.TrainConfig`) and the selection rule."""

    select_by: Literal["rsum", "r1r5"] = "rsum"
    #: "checkpoint": training needs ``--init-from`` (the thesis fine-tunes Flickr30K from its MS-COCO
    #: model, §2.3.3); ``--init-from none`` trains from scratch on purpose.  "scratch": no requirement.
    start_from: Literal["checkpoint", "scratch"] = "scratch"


@dataclass(frozen=True)
class DataConfig:
    """The ``data:`` section: captions, vocabulary and the dev subset scored every epoch."""

    dev_max_images: int = bounded(minimum=1, doc="dev images scored after each epoch")
    vocab_min_count: int = bounded(minimum=1, doc="GRU models: minimum training count of a vocabulary word")
    max_caption_length: int = bounded(minimum=4, doc="tokens per caption (longer ones are cut)")
    word_vectors: str | None = None        # GloVe text file for GRU models (None: the shipped 50-d vectors; "none": random on purpose)
    parser: Literal["spacy", "stanza"] = "spacy"


def read_settings(config: Mapping[str, Any]) -> tuple[TrainSettings, DataConfig]:
    """The ``train:`` and ``data:`` sections, read strictly (one-line errors naming the dotted key)."""
    for section in SECTIONS:
        if section not in config:
            raise UserError(f"config: missing section {section!r}")
    settings = from_dict(TrainSettings, config["train"], "train")
    if settings.batch_size < 2:
        raise UserError(f"config train.batch_size: {settings.batch_size} outside [2, inf] (in-batch negatives)")
    return settings, from_dict(DataConfig, config["data"], "data")


def resolve_init_from(init_from: str | Path | None, settings: TrainSettings) -> str | Path | None:
    """The checkpoint to start from, or None; ``"none"`` is the explicit choice to start from scratch."""
    if init_from is not None and str(init_from).lower() == "none":
        return None
    if init_from is None and settings.start_from == "checkpoint":
        raise UserError("config train.start_from=checkpoint: the thesis fine-tunes Flickr30K from its MS-COCO model "
                        "(§2.3.3); pass --init-from COCO_RUN/best.safetensors, or --init-from none to train from "
                        "scratch on purpose")
    return init_from


def selection_score(metrics: Mapping[str, float], rule: str) -> float:
    """The dev number that picks the best epoch: rSum, or R@1+R@5 of both directions (VSRN's rule)."""
    if rule == "rsum":
        return float(metrics["rsum"])
    return float(metrics["i2t_r1"] + metrics["i2t_r5"] + metrics["t2i_r1"] + metrics["t2i_r5"])


def dev_hook(dev_split: PrecompSplit, text: TextEncoding, settings: TrainSettings,
             show_progress: bool) -> Callable[[torch.nn.Module, int], EpochEval]:
    """The evaluation hook: exact dev metrics; a collapsed matrix is not selectable."""
    def evaluate(model: torch.nn.Module, epoch: int) -> EpochEval:
        dev = dev_evaluation(model, dev_split, text, settings.eval_batch_size, show_progress,
                             label=f"training epoch {epoch + 1}/{settings.epochs}, dev split")
        scalars = {f"dev_{k}": v for k, v in dev.metrics.items()}
        scalars["dev_collapsed"] = dev.collapsed
        if dev.collapsed:
            return EpochEval(score=None, log=scalars, record=dev.metrics,
                             reason=f"the dev scores collapsed (all within [{dev.score_min:.6g}, {dev.score_max:.6g}], "
                                    f"relative spread <= {COLLAPSE_RTOL:g})")
        return EpochEval(score=selection_score(dev.metrics, settings.select_by), log=scalars, record=dev.metrics)

    return evaluate


def train(model_name: str, data_dir: str | Path, config: Mapping[str, Any], out: str | Path,
          device: str = "auto", init_from: str | Path | None = None, name: str | None = None,
          show_progress: bool = True, stop_after_epoch: int | None = None, amp: bool = True) -> Path:
    """Train `model_name` on the train split of a precomputed dataset; return the best checkpoint.

    Re-running with the same `out` resumes from ``out/last``.  `amp` turns on float16 autocast with
    loss scaling on CUDA (a no-op on CPU).  `init_from` is a checkpoint whose matching tensors start
    the model, or ``"none"``; a config with ``train.start_from: checkpoint`` refuses None."""
    settings, data_settings = read_settings(config)
    init_from = resolve_init_from(init_from, settings)
    info = init_distributed(device)
    generator = seed_everything(settings.seed)
    precomp = resolve_precomp_dir(data_dir, name)
    train_split = load_split(precomp, "train", feature_dim=None)
    dev_split = load_split(precomp, "dev", feature_dim=None, dev_max_images=data_settings.dev_max_images)
    cls = MODELS.get(model_name).cls
    text, vocab, word_vectors = text_encoding_for(cls, config, data_settings, train_split.captions)
    tree_labels = None
    if cls.needs_tree_labels:
        from retrieval.parsing.cache import ParseCache

        cache = ParseCache(precomp, data_settings.parser)
        tree_labels = cache.load_tree_labels("train")
        config = with_tree_sizes(config, cache.load_dictionaries())
    model = build_model(model_name, dict(config), len(vocab) if vocab else None, word_vectors)
    if vocab is not None:
        model.prepare_corpus([vocab.encode(c) for c in train_split.captions], vocab.idx2word)
    check_model_inputs(train_split, model, f"{precomp.path} train")
    check_model_inputs(dev_split, model, f"{precomp.path} dev")
    check_semantic_edges(model, train_split, precomp, "train")
    check_semantic_edges(model, dev_split, precomp, "dev")
    if init_from is not None:
        tensors, _ = load_checkpoint(init_from)
        loaded, skipped = load_matching(model, tensors)
        if info.is_main:
            log.info(describe_transfer(init_from, loaded, skipped))
    pairs = PairDataset(train_split, text, model.image_inputs(), tree_labels)
    per_rank = settings.batch_size // info.world_size
    if len(pairs) < per_rank:
        raise UserError(f"{precomp.path}: {len(pairs)} training pairs are fewer than one batch of {per_rank}")
    negatives = extra_negatives(model, pairs, settings, info.rank, per_rank, precomp.path)

    def start_epoch(epoch: int) -> None:
        model.set_epoch(epoch)
        if negatives is not None:
            negatives.set_epoch(epoch)

    job = TrainJob(
        model=model, train_set=pairs, settings=settings, config=config,
        meta=checkpoint_meta(model_name, config, precomp.name, text, vocab),
        model_input=lambda batch: batch,
        evaluate=dev_hook(dev_split, text, settings, show_progress),
        start_epoch=start_epoch,
        collate=pairs.collate if negatives is None else negatives.collate, record_key="dev", generator=generator,
    )
    return fit(job, out, info, amp=amp, show_progress=show_progress, stop_after_epoch=stop_after_epoch)


def extra_negatives(model: Any, pairs: PairDataset, settings: TrainSettings, rank: int, per_rank: int,
                    where: Any) -> ExtraNegatives | None:
    """The collate that adds ``loss.extra_negatives`` cross-modal negatives to every batch (HiRE, the thesis
    §7.5.1), or None when the config asks for none.  K = train.batch_size for ``batch`` (each DDP rank draws
    its own K, seeded by its rank, so every query keeps the paper's count); the split must hold K images
    outside a batch."""
    count = model.loss.extra_negative_count(settings.batch_size)
    if count == 0:
        return None
    if not getattr(model, "takes_extra_negatives", False):
        raise UserError(f"config loss.extra_negatives: {model.loss.extra_negatives!r} is HiRE's option (the thesis §7.5.1); "
                        f"{model.name} takes in-batch negatives only (set loss.extra_negatives=0)")
    if pairs.split.n_images < count + per_rank:
        raise UserError(f"{where}: {pairs.split.n_images} training images cannot give {count} extra negatives outside "
                        f"a batch of {per_rank} (config loss.extra_negatives; lower it or set 0)")
    return ExtraNegatives(pairs, count, settings.seed, rank)


def with_tree_sizes(config: Mapping[str, Any], dictionaries: Any) -> dict[str, Any]:
    """A copy of `config` whose SMFEA node-class counts equal the fitted referral-tree dictionaries
    (null excluded); the paper's 1,440 / 247 are the sizes `retrieval parse` fits by default."""
    model = dict(config["model"])
    sizes = {"num_fragments": len(dictionaries.fragments) - 1, "num_relations": len(dictionaries.relations) - 1}
    for key, value in sizes.items():
        if model.get(key) != value:
            log.info("model.%s: %s -> %s (the fitted dictionary of the parse cache)", key, model.get(key), value)
            model[key] = value
    return {**config, "model": model}


def checkpoint_meta(model_name: str, config: Mapping[str, Any], dataset: str, text: TextEncoding,
                    vocab: Any) -> dict[str, Any]:
    """The JSON sidecar of a retrieval checkpoint: enough to rebuild the model and encode new text."""
    return {"model": model_name, "config": dict(config), "dataset": dataset, "split": "train",
            "text_kind": text.kind, "vocab": None if vocab is None else list(vocab.idx2word),
            "labels": None}
