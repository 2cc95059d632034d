"""Evaluate a FAU checkpoint, or aggregate per-fold reports into mean ± std.

``fau eval --checkpoint RUN/best.safetensors --data DIR --fold part3 --json RUN/eval.json`` prints
per-AU F1 / accuracy / AUC and macro averages.  ``fau eval --aggregate R1.json R2.json R3.json``
prints the 3-fold table, with the paper's F1 beside ours on BP4D / DISFA.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = "evaluate a checkpoint (per-AU F1/accuracy/AUC) or aggregate fold reports"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", help="model checkpoint (.safetensors with its .json)")
    parser.add_argument("--data", help="prepared dataset folder")
    parser.add_argument("--fold", default=None, help="fold (default: the checkpoint's)")
    parser.add_argument("--split", default="test", choices=("train", "val", "test"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--json", default=None, help="write the report here")
    parser.add_argument("--aggregate", nargs="+", metavar="REPORT", help="report JSONs (or run dirs with eval.json)")


def _read_report(path: str) -> dict:
    from shared.errors import UserError

    file = Path(path)
    if file.is_dir():
        file = file / "eval.json"
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"--aggregate {file}: no such report") from None
    except json.JSONDecodeError as err:
        raise UserError(f"--aggregate {file}: not valid JSON (line {err.lineno})") from None


def run(args: argparse.Namespace) -> int:
    from fau.evaluation.checkpoint import evaluate_checkpoint
    from fau.evaluation.report import aggregate, format_report
    from shared.errors import UserError
    from shared.io import write_json

    if args.aggregate:
        report = aggregate([_read_report(p) for p in args.aggregate])
    else:
        if not args.checkpoint or not args.data:
            raise UserError("eval needs --checkpoint and --data (or --aggregate REPORTS)")
        report = evaluate_checkpoint(args.checkpoint, args.data, args.fold, args.split, args.device, args.batch_size)
    print(format_report(report))
    if args.json:
        write_json(args.json, report)
    return 0
