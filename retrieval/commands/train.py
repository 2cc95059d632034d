"""Train a retrieval model on the train split of a precomputed dataset.

Example: ``retrieval train --model 3shnet --data runs/synscenes --config shnet_tiny --out runs/3shnet
train.epochs=4``.  Re-running with the same --out resumes from its last epoch; ``--init-from`` starts
from another checkpoint (the COCO → F30K route).  Works under ``torchrun --nproc_per_node 2 -m retrieval train ...``.
"""

from __future__ import annotations

import argparse

HELP = "train a registered model (see `retrieval info --list`) on precomputed features"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="registered model name (`retrieval info --list`)")
    parser.add_argument("--data", required=True, help="dataset folder (SCAN {name}_precomp or VSE-inf {name}/precomp)")
    parser.add_argument("--name", default=None, help="dataset name when --data holds several")
    parser.add_argument("--config", default=None,
                        help="a dataset of the model (tiny, f30k, coco), a packaged config name (shnet_f30k) or a YAML path "
                             "(default: the model's tiny config)")
    parser.add_argument("--out", required=True, help="run directory (checkpoints, metrics.jsonl)")
    parser.add_argument("--device", default="auto", help="auto (cuda → cpu), cpu, cuda, cuda:N")
    parser.add_argument("--init-from", default=None, help="checkpoint to initialise matching tensors from (the MS-COCO model for the "
                             "thesis' Flickr30K configs); 'none' trains from scratch on purpose")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.add_argument("--no-amp", action="store_true", help="no float16 autocast on CUDA (always off on CPU)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. train.epochs=2")


def run(args: argparse.Namespace) -> int:
    from retrieval.models import MODELS
    from retrieval.train import train

    MODELS.get(args.model)  # unknown names fail before any file is read
    config = MODELS.load_config(args.model, args.config, args.overrides)
    best = train(args.model, args.data, config, args.out, device=args.device, init_from=args.init_from,
                 name=args.name, show_progress=not args.no_progress, amp=not args.no_amp)
    print(f"best checkpoint: {best}")
    return 0
