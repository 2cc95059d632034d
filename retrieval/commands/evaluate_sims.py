"""Score saved similarity matrices (images × captions); several files are averaged (ensemble)."""

from __future__ import annotations

import argparse

HELP = "score saved similarity matrices (.npy, images x captions); several = ensemble average"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `retrieval evaluate-sims`."""
    parser.add_argument("sims", nargs="+", metavar="SIMS.npy", help="saved (N_img, 5*N_img) similarity matrices")
    parser.add_argument("--protocol", required=True, choices=("f30k", "coco1k", "coco5k", "full"),
                        help="f30k: 1K x 5K; coco1k: 5 folds of 1K averaged; coco5k: 5K x 25K; full: any N x 5N")
    parser.add_argument("--json", metavar="OUT", help="write the metrics as JSON here")
    parser.add_argument("--hard", metavar="HARD.json", help="also score the SynScenes hard subset ({split}_hard.json)")


def run(args: argparse.Namespace) -> int:
    """Average the matrices, score them under the protocol (pessimistic ties), print, save JSON.

    A NaN or ±inf score is a one-line error naming the file that holds it (exit status 2)."""
    from retrieval.evaluation import average_sims, evaluate_protocol, format_table, hard_subset_metrics, load_hard_groups
    from shared.io import write_json

    sims = average_sims(args.sims)
    source = args.sims[0] if len(args.sims) == 1 else f"average of {' + '.join(args.sims)}"
    metrics = evaluate_protocol(sims, args.protocol, source=source)
    title = f"{args.protocol}: {' + '.join(args.sims)}" if len(args.sims) > 1 else f"{args.protocol}: {args.sims[0]}"
    print(format_table(metrics, title))
    record: dict = dict(metrics)
    if args.hard:
        hard = hard_subset_metrics(sims, load_hard_groups(args.hard))
        print(format_table(hard["subset"], f"hard subset ({hard['n_images']} images, {hard['n_groups']} groups)"))
        print(f"within-group R@1: i2t {hard['group_i2t_r1']:.2f}  t2i {hard['group_t2i_r1']:.2f}  (chance {hard['group_chance_r1']:.2f})")
        record["hard"] = hard
    if args.json:
        write_json(args.json, record)
    return 0
