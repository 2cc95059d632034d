"""Evaluate a retrieval checkpoint exactly, or an ensemble of saved similarity matrices.

``retrieval evaluate --checkpoint RUN/best.safetensors --data DIR --split test --protocol f30k
[--save-sims S.npy] [--json OUT]`` encodes every image and caption of the split once and prints
R@1/5/10 both ways, rSum, medr and meanr (with the hard subset on SynScenes and the paper's row on
real data).  ``retrieval evaluate --ensemble A.npy B.npy --protocol f30k`` averages saved matrices
(HiRE*, 3SHNet region+grid) and scores the average.

``torchrun --nproc_per_node N -m retrieval evaluate ...`` shares a pairwise model's (image × caption)
tiles out over N processes and joins one matrix, equal to the single-process one; with ``--journal
DIR`` finished tiles survive a crash and a rerun continues (`retrieval.evaluation.tiles`).
"""

from __future__ import annotations

import argparse

HELP = "evaluate a checkpoint (R@K, rSum, medr) or an ensemble of saved similarity matrices"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", help="model checkpoint (.safetensors with its .json)")
    parser.add_argument("--data", help="dataset folder")
    parser.add_argument("--name", default=None, help="dataset name when --data holds several")
    parser.add_argument("--split", default="test", help="split to score (default test; COCO 5K: testall)")
    parser.add_argument("--protocol", default="full", choices=("full", "f30k", "coco1k", "coco5k"),
                        help="full = one pass over the split (default); f30k / coco1k / coco5k as published")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--save-sims", default=None, help="save the images x captions matrix (.npy)")
    parser.add_argument("--ensemble", nargs="+", metavar="SIMS", help="average these saved matrices instead")
    parser.add_argument("--hard", default=None, help="with --ensemble: a {split}_hard.json to score too")
    parser.add_argument("--json", default=None, help="write the report here")
    parser.add_argument("--tile-mb", type=float, default=None,
                        help="working memory per tile of a pairwise model in MB (default: 32 on CPU, 512 on GPU)")
    parser.add_argument("--journal", default=None, metavar="DIR",
                        help="keep a pairwise model's finished tiles here, so a rerun after a crash continues "
                             "(removed when the matrix is complete; visible to every rank under torchrun)")


def run(args: argparse.Namespace) -> int:
    from shared.errors import UserError
    from shared.io import check_output, write_json

    check_output(args.json, "--json")
    if args.ensemble:
        from retrieval.commands import evaluate_sims

        return evaluate_sims.run(argparse.Namespace(sims=args.ensemble, protocol=args.protocol, json=args.json,
                                                    hard=args.hard))
    if not args.checkpoint or not args.data:
        raise UserError("evaluate needs --checkpoint and --data (or --ensemble SIMS...)")
    from retrieval.evaluation.checkpoint import evaluate_checkpoint, format_report

    check_output(args.save_sims, "--save-sims")

    from retrieval.evaluation.tiles import Shard

    if args.tile_mb is not None and not args.tile_mb > 0:
        raise UserError(f"--tile-mb must be a positive number of MB, got {args.tile_mb}")
    from shared.distributed import cleanup, init_distributed

    info = init_distributed(args.device)  # under torchrun: one rank per process, tiles shared out
    try:
        report = evaluate_checkpoint(args.checkpoint, args.data, args.split, args.protocol, str(info.device),
                                     args.name, args.save_sims, args.batch_size,
                                     shard=Shard(info.rank, info.world_size), journal=args.journal,
                                     tile_mb=args.tile_mb)
    finally:
        if info.enabled:
            cleanup(synchronise=False)
    if report is None:  # not rank 0: rank 0 prints and writes
        return 0
    print(format_report(report))
    if args.json:
        write_json(args.json, report)
    return 0
