"""Generate SynFACS, the embedded synthetic FACS face dataset, in BP4D's (or DISFA's) raw layout.

The output folder is a raw dataset root: `fau prepare --dataset bp4d --root OUT` (or
`--dataset disfa` for `--layout disfa`) ingests it like the real data. Ground truth
(synfacs_truth.npz/json), a report (synfacs_report.json, synfacs_cooccurrence.csv) and a contact
sheet (synfacs_contact_sheet.png) are written beside it.
"""

from __future__ import annotations

import argparse
import json
import os

HELP = "generate the SynFACS synthetic AU dataset (BP4D or DISFA raw layout)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from fau.synth import DEFAULT_FRAMES, DEFAULT_SEQUENCES, DEFAULT_SUBJECTS

    parser.add_argument("--out", required=True, help="output folder (a raw dataset root)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--subjects", type=int, default=DEFAULT_SUBJECTS,
                        help=f"number of subjects, >= 3 (default {DEFAULT_SUBJECTS})")
    parser.add_argument("--sequences", type=int, default=DEFAULT_SEQUENCES,
                        help=f"BP4D tasks per subject, 1-8 (default {DEFAULT_SEQUENCES})")
    parser.add_argument("--frames", type=int, default=DEFAULT_FRAMES,
                        help=f"frames per sequence (default {DEFAULT_FRAMES})")
    parser.add_argument("--layout", choices=("bp4d", "disfa"), default="bp4d",
                        help="raw layout to write (default bp4d)")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                        help="rendering processes (default: min(2, CPUs))")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a non-empty output folder")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from fau.synth.generate import generate

    summary = generate(args.out, n_subjects=args.subjects, n_sequences=args.sequences,
                       n_frames=args.frames, seed=args.seed, layout=args.layout,
                       workers=args.workers, overwrite=args.overwrite, progress=not args.quiet)
    occurrence = {au: v["occurrence"] for au, v in summary["prevalence"].items()}
    print(json.dumps({"out": summary["out"], "layout": summary["layout"],
                      "frames": summary["frames"], "subjects": summary["subjects"],
                      "seconds": summary["seconds"], "occurrence": occurrence,
                      "unknown_labels": summary["unknown_labels"],
                      "top_pairs": [p["pair"] for p in summary["top_pairs"]]}, indent=1))
    return 0
