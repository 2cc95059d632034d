"""The main job on the embedded default (what `make train-fau` runs).

Generates SynFACS, prepares it, trains every registered model with its tiny config on one fold,
evaluates on the held-out test subjects next to a majority and a landmark baseline, and prints one
table; writes OUT/results.json and OUT/f1_by_au.png.
"""

from __future__ import annotations

import argparse

HELP = "synth → prepare → train every model (tiny) → eval → table (the `make train-fau` job)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="runs/fau-default", help="work folder (default runs/fau-default)")
    parser.add_argument("--fold", default="part3")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--models", nargs="*", default=None,
                        help="subset of models (default: all registered; none = only prepare the data)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="overrides applied to every tiny config")


def run(args: argparse.Namespace) -> int:
    from fau.default_run import format_table, run_default

    summary = run_default(args.out, args.fold, args.device, args.models, args.overrides, args.seed,
                          not args.no_progress)
    print(format_table(summary["results"], summary["labels"]))
    print(f"results: {summary['results_file']}  chart: {summary['chart']}  ({summary['seconds']} s)")
    return 0
