"""Generate SynScenes, the embedded compositional dataset, in the SCAN precomp layout."""

from __future__ import annotations

import argparse

HELP = "generate the SynScenes dataset (SCAN precomp layout + boxes, grids, segmentations, hard subset)"


def _count(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive image count, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `retrieval synth`."""
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--train", type=_count, default=3000, help="train images (default 3000)")
    parser.add_argument("--dev", type=_count, default=200, help="dev images (default 200)")
    parser.add_argument("--test", type=_count, default=1000, help="test images (default 1000)")
    parser.add_argument("--hard-fraction", type=float, default=0.4,
                        help="share of test images in four-image hard groups (default 0.4)")


def run(args: argparse.Namespace) -> int:
    """Generate the dataset and print a one-line summary."""
    from retrieval.synth import generate
    from shared.errors import UserError

    if not 0.0 <= args.hard_fraction <= 1.0:
        raise UserError(f"--hard-fraction must be in [0, 1], got {args.hard_fraction}")
    summary = generate(args.out, args.train, args.dev, args.test, seed=args.seed, hard_fraction=args.hard_fraction)
    sizes = ", ".join(f"{k} {v}" for k, v in summary["splits"].items())
    print(f"SynScenes written to {summary['out']} ({sizes} images, seed {summary['seed']}) in {summary['seconds']:.1f} s")
    return 0
