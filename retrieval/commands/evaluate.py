"""Evaluate a retrieval checkpoint exactly, or an ensemble of saved similarity matrices.

``retrieval evaluate --checkpoint RUN/best.safetensors --data DIR --split test --protocol f30k
[--save-sims S.npy] [--json OUT]`` encodes every image and caption of the split once and prints
R@1/5/10 both ways, rSum, medr and meanr (with the hard subset on SynScenes and the paper's row on
real data).  ``retrieval evaluate --ensemble A.npy B.npy --protocol f30k`` averages saved matrices
(HiRE*, 3SHNet region+grid) and scores the average.
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

    report = evaluate_checkpoint(args.checkpoint, args.data, args.split, args.protocol, args.device, args.name,
                                 args.save_sims, args.batch_size)
    print(format_report(report))
    if args.json:
        write_json(args.json, report)
    return 0
