"""The main job on the embedded default (what `make train-fau` runs).

Generates SynFACS, prepares it, trains every registered model with its tiny config on one fold,
evaluates on the held-out test subjects next to a majority and a landmark baseline, and prints one
table with its provenance; writes OUT/results.json, OUT/results.md and OUT/f1_by_au.png.
``--fast`` runs the same pipeline on a smaller SynFACS with fewer epochs (the end-to-end test);
``--data-only`` only generates and prepares the data (no result file is touched).
"""

from __future__ import annotations

import argparse

HELP = "synth → prepare → train every model (tiny) → eval → table (the `make train-fau` job)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="runs/fau-default", help="work folder (default runs/fau-default)")
    parser.add_argument("--fold", default="part3")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--models", nargs="+", default=None, help="subset of models (default: all registered)")
    parser.add_argument("--fast", action="store_true",
                        help="smaller SynFACS and fewer epochs, every model (minutes; use another --out)")
    parser.add_argument("--data-only", action="store_true",
                        help="only generate and prepare the data; results.json and the charts are left alone")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--jobs", type=int, default=2,
                        help="models trained at a time, each in its own process with the CPU cores split between them "
                             "(default 2; 1 = one after another in this process)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="overrides applied to every tiny config")


def run(args: argparse.Namespace) -> int:
    from fau.default_run import format_provenance, format_table, run_default

    summary = run_default(args.out, args.fold, args.device, args.models, args.overrides, args.seed,
                          not args.no_progress, mode="fast" if args.fast else "full", data_only=args.data_only,
                          jobs=args.jobs)
    if args.data_only:
        print(f"prepared data: {summary['prepared']}")
        return 0
    print(format_table(summary["results"], summary["labels"]))
    print(format_provenance(summary))
    print(f"results: {summary['results_file']}  chart: {summary['chart']}  ({summary['seconds']} s)")
    return 0
