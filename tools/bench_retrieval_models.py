"""Benchmark: training pairs/s and encoding items/s of every retrieval model on this CPU.

Cases: the tiny configs ``vsepp_tiny, vse_gpo_tiny, smfea_tiny, shnet_tiny, shnet_grid_tiny`` and the
paper configs ``vsepp_f30k, vse_gpo_f30k, smfea_f30k, shnet_f30k``, each built with
``pretrained=False`` (BERT towers: the configured architecture — the shipped MiniLM for paper
configs — with random weights; GRU towers: ``--vocab-size`` words, no word vectors).  Batches are
random, in the data loader's format (`retrieval.data.pairs.collate`): ``--regions`` BUTD regions
(B, K, 2048) with a full mask, or the (B, 49, 2048) grid; 3SHNet's segmentations (B, 133, 7, 7),
seg_maps (B, 64, 64) in [0, 133) and category one-hots; GRU ``tokens``/``lengths`` or BERT
``input_ids``/``attention_mask`` of up to ``--caption-length`` ids; SMFEA's (B, 7) referral-tree
labels (leaf nodes in [0, num_fragments], relation nodes in [0, num_relations]).

* training: forward, ``training_losses(outputs, batch)["total"]`` backward (gradient clipping as configured)
  and an optimizer step of the trainer's optimizer (`shared.schedule.make_optimizer`: Adam or
  AdamW with the config's lr scales) at ``train.batch_size`` for tiny configs and
  ``--paper-train-batch`` (32) for paper configs;
* encoding: ``embed_images`` and ``embed_texts`` under ``torch.inference_mode()`` at ``--encode-batch``.

The reference measured in the same run is the tiny VSE++ mean-pooling baseline (``vsepp_tiny``):
every ratio column is a model's items/s ÷ that baseline's.  Throughput is the batch size over the
median seconds of ``--repeats`` timed steps after ``--warmup`` untimed ones.

    .venv/bin/python tools/bench_retrieval_models.py [--quick] [--models vsepp] [--threads 1] [--json OUT]
"""

from __future__ import annotations

import argparse
import platform
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from retrieval.models import MODELS, TwoTowerRetrievalModel, build_model
from retrieval.parsing.referral_tree import LEAF_NODES, NUM_NODES, RELATION_NODES
from retrieval.train import read_settings
from shared.schedule import make_optimizer
from shared.benchmark import per_second, time_steps
from shared.io import write_json

#: (registry name, config stem, kind); the first case is the baseline of the ratio columns
CASES = (
    ("vsepp", "vsepp_tiny", "tiny"),
    ("vse_gpo", "vse_gpo_tiny", "tiny"),
    ("smfea", "smfea_tiny", "tiny"),
    ("3shnet", "shnet_tiny", "tiny"),
    ("3shnet", "shnet_grid_tiny", "tiny"),
    ("vsepp", "vsepp_f30k", "paper"),
    ("vse_gpo", "vse_gpo_f30k", "paper"),
    ("smfea", "smfea_f30k", "paper"),
    ("3shnet", "shnet_f30k", "paper"),
)
F30K_VOCAB = 8481          # SCAN Flickr30K vocabulary (the thesis §6.4.1)
BERT_IDS = (1000, 30000)   # word-piece ids drawn from the (MiniLM / BERT) vocabulary body
PANOPTIC_CLASSES, SEG_SIDE, SEG_MAP_SIDE, GRID_CELLS = 133, 7, 64, 49


@dataclass
class Row:
    """One (model, config) measurement."""

    model: str
    config: str
    train_batch: int
    encode_batch: int
    train_seconds: list[float] = field(default_factory=list)
    image_seconds: list[float] = field(default_factory=list)
    text_seconds: list[float] = field(default_factory=list)
    train_pairs_per_s: float = 0.0
    images_per_s: float = 0.0
    captions_per_s: float = 0.0
    train_ratio: float = 0.0
    image_ratio: float = 0.0
    caption_ratio: float = 0.0


def random_images(model: TwoTowerRetrievalModel, batch: int, regions: int, g: torch.Generator) -> dict[str, torch.Tensor]:
    """The image arrays `model` reads (`image_inputs`), shaped as `collate_images` stacks them."""
    makers = {
        "regions": lambda: torch.randn(batch, regions, 2048, generator=g),
        "region_mask": lambda: torch.ones(batch, regions, dtype=torch.bool),
        "grid": lambda: torch.randn(batch, GRID_CELLS, 2048, generator=g),
        "segmentations": lambda: torch.randn(batch, PANOPTIC_CLASSES, SEG_SIDE, SEG_SIDE, generator=g),
        "seg_maps": lambda: torch.randint(0, PANOPTIC_CLASSES, (batch, SEG_MAP_SIDE, SEG_MAP_SIDE), generator=g),
        "cat_onehots": lambda: (torch.rand(batch, PANOPTIC_CLASSES, generator=g) > 0.9).float(),
        # HiRE's region graph: a random symmetric adjacency with self-loops (its (R, R) bool layout)
        "region_graph": lambda: (lambda a: a | a.transpose(1, 2) | torch.eye(regions, dtype=torch.bool))(
            torch.rand(batch, regions, regions, generator=g) > 0.8),
    }
    return {key: makers[key]() for key in model.image_inputs()}


def random_texts(model: TwoTowerRetrievalModel, model_config: dict[str, Any], batch: int, length: int,
                 vocab_size: int, g: torch.Generator, with_trees: bool) -> dict[str, torch.Tensor]:
    """Padded captions as `collate_texts` builds them (lengths in [length/2, length], the first the
    longest) plus, when asked and the model needs them, SMFEA's referral-tree labels."""
    lengths = torch.randint(max(2, length // 2), length + 1, (batch,), generator=g)
    lengths[0] = length
    valid = torch.arange(length).unsqueeze(0) < lengths.unsqueeze(1)
    if model.text_kind == "tokens":
        out = {"tokens": torch.randint(4, vocab_size, (batch, length), generator=g) * valid, "lengths": lengths}
    else:
        out = {"input_ids": torch.randint(*BERT_IDS, (batch, length), generator=g) * valid,
               "attention_mask": valid.long()}
    if with_trees and model.needs_tree_labels:
        tree = torch.zeros(batch, NUM_NODES, dtype=torch.long)
        tree[:, list(LEAF_NODES)] = torch.randint(0, model_config["num_fragments"] + 1, (batch, len(LEAF_NODES)), generator=g)
        tree[:, list(RELATION_NODES)] = torch.randint(0, model_config["num_relations"] + 1, (batch, len(RELATION_NODES)), generator=g)
        out["tree_labels"] = tree
    return out


def bench_case(name: str, stem: str, kind: str, args: argparse.Namespace) -> Row:
    """Training and encoding throughput of one model under one config."""
    config = MODELS.load_config(name, stem)
    settings, _ = read_settings(config)
    torch.manual_seed(args.seed)
    model = build_model(name, config, vocab_size=args.vocab_size, word_vectors=None, pretrained=False)
    model_config = dict(config["model"])
    train_batch = settings.batch_size if kind == "tiny" else args.paper_train_batch
    row = Row(name, f"{stem}.yaml", train_batch, args.encode_batch)
    g = torch.Generator().manual_seed(args.seed)
    batch = {"images": random_images(model, train_batch, args.regions, g),
             "texts": random_texts(model, model_config, train_batch, args.caption_length, args.vocab_size, g, True),
             "image_ids": torch.arange(train_batch)}
    optimizer = make_optimizer(model, settings)

    def train_step() -> None:
        outputs = model(batch)
        loss = model.training_losses(outputs, batch)["total"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if settings.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        optimizer.step()

    model.train()
    row.train_seconds = time_steps(train_step, args.warmup, args.repeats)
    images = random_images(model, args.encode_batch, args.regions, g)
    texts = random_texts(model, model_config, args.encode_batch, args.caption_length, args.vocab_size, g, False)

    def embed_images() -> None:
        with torch.inference_mode():
            model.embed_images(images)

    def embed_texts() -> None:
        with torch.inference_mode():
            model.embed_texts(texts)

    model.eval()
    row.image_seconds = time_steps(embed_images, args.warmup, args.repeats)
    row.text_seconds = time_steps(embed_texts, args.warmup, args.repeats)
    row.train_pairs_per_s = per_second(train_batch, row.train_seconds)
    row.images_per_s = per_second(args.encode_batch, row.image_seconds)
    row.captions_per_s = per_second(args.encode_batch, row.text_seconds)
    return row


def format_table(rows: list[Row]) -> str:
    """The printed table; ratio columns are relative to the first row (the vsepp_tiny baseline)."""
    header = (f"{'model':<9}{'config':<22}{'train B':>8}{'pairs/s':>10}{'x base':>8}{'enc B':>7}"
              f"{'images/s':>10}{'x base':>8}{'captions/s':>12}{'x base':>8}")
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(f"{r.model:<9}{r.config:<22}{r.train_batch:>8}{r.train_pairs_per_s:>10.1f}{r.train_ratio:>8.3f}"
                     f"{r.encode_batch:>7}{r.images_per_s:>10.1f}{r.image_ratio:>8.3f}"
                     f"{r.captions_per_s:>12.1f}{r.caption_ratio:>8.3f}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=None, metavar="NAME",
                        help=f"models to measure (default: all of {', '.join(MODELS.names())}); "
                             "the vsepp_tiny baseline is always measured")
    parser.add_argument("--configs", nargs="+", choices=("tiny", "paper"), default=None,
                        help="config kinds to measure (default: tiny and paper; --quick: tiny)")
    parser.add_argument("--quick", action="store_true", help="tiny configs only, fewer repeats (< 2 min)")
    parser.add_argument("--repeats", type=int, default=None, help="timed steps per measurement (default 5, quick 2)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 1)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch.set_num_threads (default 1: on a shared 2-core machine more threads oversubscribe)")
    parser.add_argument("--paper-train-batch", type=int, default=32, help="training batch of the paper configs")
    parser.add_argument("--encode-batch", type=int, default=128, help="embed_images / embed_texts batch")
    parser.add_argument("--regions", type=int, default=36, help="regions per image (BUTD precomputed: 36)")
    parser.add_argument("--caption-length", type=int, default=16, help="longest caption in a batch (ids)")
    parser.add_argument("--vocab-size", type=int, default=F30K_VOCAB, help="GRU vocabulary size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, metavar="OUT", help="write every measurement as JSON")
    args = parser.parse_args(argv)
    args.repeats = args.repeats if args.repeats is not None else (2 if args.quick else 5)
    args.warmup = args.warmup if args.warmup is not None else 1
    unknown = [name for name in args.models or [] if name not in MODELS]
    if unknown:
        parser.error(f"--models: unknown {', '.join(unknown)} (known: {', '.join(MODELS.names())})")
    for option in ("repeats", "threads", "paper_train_batch", "encode_batch", "regions"):
        if getattr(args, option) < 1:
            parser.error(f"--{option.replace('_', '-')} must be at least 1")
    if args.warmup < 0 or args.caption_length < 3 or args.vocab_size < 5:
        parser.error("--warmup must be >= 0, --caption-length >= 3 and --vocab-size >= 5")
    return args


def main(argv: list[str] | None = None) -> int:
    """Measure the baseline and every selected case, print the table, optionally write JSON."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    kinds = args.configs or (("tiny",) if args.quick else ("tiny", "paper"))
    wanted = {m.lower() for m in args.models} if args.models else set(MODELS.names())
    cases = [CASES[0]] + [c for c in CASES[1:] if c[0] in wanted and c[2] in kinds]
    rows = [bench_case(*case, args) for case in tqdm(cases, desc="retrieval models", file=sys.stderr)]
    base = rows[0]
    for r in rows:
        r.train_ratio = r.train_pairs_per_s / base.train_pairs_per_s
        r.image_ratio = r.images_per_s / base.images_per_s
        r.caption_ratio = r.captions_per_s / base.captions_per_s
    print(f"retrieval model throughput on {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, median of {args.repeats} steps after {args.warmup} warm-up; "
          f"{args.regions} regions, captions <= {args.caption_length} ids; ratios vs {base.config} (VSE++ baseline)")
    print(format_table(rows))
    if args.json is not None:
        settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
        write_json(args.json, {"settings": settings, "torch": torch.__version__, "baseline": base.config,
                               "models": [asdict(r) for r in rows]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
