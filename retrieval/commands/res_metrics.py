"""Referring-expression segmentation / grounding metrics of saved predictions (the IMC thesis, Ch. 7).

``retrieval res-metrics --pred P.npy --gt G.npy`` scores (N, H, W) binary masks: IoU per sample, mean
IoU, overall IoU and P@{0.5, ..., 0.9}.  ``--pred-boxes PB.npy --gt-boxes GB.npy`` adds Acc@0.5 of
(N, 4) (x1, y1, x2, y2) boxes.  ``--views V.json`` (``{"u,v": IoU, ...}`` over a grid of views, the
centre view included) adds MVR (Eq. 7.1–7.4) and its companion drop measures.  ``--json OUT`` writes them.
"""

from __future__ import annotations

import argparse

HELP = "RES metrics of saved masks / boxes / per-view IoUs: IoU, mean / overall IoU, P@K, Acc@0.5, MVR"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pred", help="predicted masks, .npy (N, H, W) or (H, W), nonzero = inside")
    parser.add_argument("--gt", help="ground-truth masks, same shape as --pred")
    parser.add_argument("--pred-boxes", help="predicted boxes, .npy (N, 4) x1 y1 x2 y2")
    parser.add_argument("--gt-boxes", help="ground-truth boxes, .npy (N, 4)")
    parser.add_argument("--views", help='JSON {"u,v": IoU} of one model over a grid of views (MVR)')
    parser.add_argument("--centre", default="5,5", help="the centre view u,v of --views (default 5,5)")
    parser.add_argument("--json", default=None, help="write the metrics here")


def _load(path: str, what: str):
    import numpy as np

    from shared.errors import UserError

    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise UserError(f"{what} {path}: cannot read a .npy array ({err.__class__.__name__})") from None


def _views(path: str, centre_text: str) -> tuple[dict[tuple[int, int], float], tuple[int, int]]:
    import json
    from pathlib import Path

    from shared.errors import UserError

    def cell(text: str, where: str) -> tuple[int, int]:
        try:
            u, v = (int(x) for x in text.split(","))
        except ValueError:
            raise UserError(f"{where}: view {text!r} is not 'u,v' with integers") from None
        return u, v

    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"--views {path}: cannot read JSON ({err.__class__.__name__})") from None
    if not isinstance(raw, dict) or not all(isinstance(v, (int, float)) for v in raw.values()):
        raise UserError(f"--views {path}: expected an object of \"u,v\": IoU numbers")
    views = {cell(k, f"--views {path}"): float(v) for k, v in raw.items()}
    centre = cell(centre_text, "--centre")
    if centre not in views:
        raise UserError(f"--views {path}: no IoU for the centre view {centre_text}")
    return views, centre


def run(args: argparse.Namespace) -> int:
    from retrieval.evaluation import res_metrics as rm
    from shared.errors import UserError
    from shared.io import write_json

    if not (args.pred or args.pred_boxes or args.views):
        raise UserError("res-metrics needs --pred/--gt masks, --pred-boxes/--gt-boxes or --views")
    if bool(args.pred) != bool(args.gt) or bool(args.pred_boxes) != bool(args.gt_boxes):
        raise UserError("res-metrics: --pred needs --gt and --pred-boxes needs --gt-boxes")
    report: dict = {}
    try:
        if args.pred:
            pred, gt = _load(args.pred, "--pred"), _load(args.gt, "--gt")
            ious = rm.mask_iou(pred, gt)
            report.update(samples=int(ious.size), mean_iou=rm.mean_iou(pred, gt), overall_iou=rm.overall_iou(pred, gt),
                          precision={f"P@{k:g}": v for k, v in rm.precision_at(ious).items()})
        if args.pred_boxes:
            report["box_acc@0.5"] = rm.box_accuracy(_load(args.pred_boxes, "--pred-boxes"), _load(args.gt_boxes, "--gt-boxes"))
        if args.views:
            views, centre = _views(args.views, args.centre)
            centre_iou = views[centre]
            report.update(mvr=rm.mvr(views, centre_iou, centre),
                          mean_relative_drop=rm.mean_relative_drop(views, centre_iou, centre),
                          weighted_relative_drop=rm.weighted_relative_drop(views, centre_iou, centre))
    except ValueError as err:
        raise UserError(f"res-metrics: {err}") from None
    for key, value in report.items():
        if isinstance(value, dict):
            print("  ".join(f"{k} {v:.2f}" for k, v in value.items()))
        else:
            print(f"{key:<24} {value:.6g}" if isinstance(value, float) else f"{key:<24} {value}")
    if args.json:
        write_json(args.json, report)
    return 0
