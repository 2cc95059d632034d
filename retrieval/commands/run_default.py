"""The main job on the embedded default (what `make train-retrieval` runs).

Generates SynScenes, parses its captions, trains every registered model with its tiny config,
evaluates each on the test split and its binding/relation hard subset, and prints one table;
writes OUT/results.json and OUT/rsum.png.
"""

from __future__ import annotations

import argparse

HELP = "synth → parse → train every model (tiny) → evaluate → table (the `make train-retrieval` job)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="runs/retrieval-default", help="work folder (default runs/retrieval-default)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--models", nargs="*", default=None,
                        help="subset of models (default: all registered; none = only generate and parse the data)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="overrides applied to every tiny config")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from retrieval.default_run import format_table, run_default

    summary = run_default(args.out, args.device, args.models, args.overrides, args.seed, not args.no_progress)
    if summary["results"]:
        print(format_table(summary["results"]))
    out = Path(args.out)
    print(f"results: {out / 'results.json'}  chart: {out / 'rsum.png'}  ({summary['seconds']} s)")
    return 0
