"""Prepare a raw BP4D / DISFA / FPara tree: labels, aligned crops, folds, weights, prior, language.

Raw layouts: see `fau.data.bp4d`, `fau.data.disfa`, `fau.data.fpara`; output layout: see
`fau.data.table`. Resumable: rerunning the same command skips frames already done and redoes
frames whose image or landmarks changed since; ``--fresh`` starts over.
"""

from __future__ import annotations

import argparse

from shared.errors import UserError

HELP = "raw BP4D/DISFA/FPara tree -> aligned crops, label table, folds, class weights, prior, text"


def parse_aus(text: str) -> list[int] | None | str:
    """``default`` | ``all`` | a comma-separated AU list such as ``1,2,4,12``."""
    if text in ("default", "all"):
        return None if text == "all" else "default"
    try:
        aus = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UserError(f"--aus must be default, all or comma-separated AU numbers, got {text!r}") from None
    if not aus or len(set(aus)) != len(aus) or min(aus) < 1:
        raise UserError(f"--aus must list distinct positive AU numbers, got {text!r}")
    return aus


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `fau prepare` (defaults follow JAA-Net: 200 px, box_enlarge 2.9; docs/fau.md, decision 'face alignment')."""
    parser.add_argument("--dataset", required=True, choices=("bp4d", "disfa", "fpara"),
                        help="raw layout of --root (SynFACS output uses bp4d or disfa)")
    parser.add_argument("--root", required=True, help="raw dataset folder (FPara: folder or CSV)")
    parser.add_argument("--out", required=True, help="prepared dataset folder to write")
    parser.add_argument("--limit", type=int, default=None,
                        help="keep only N frames, evenly spaced over subjects (quick tries)")
    parser.add_argument("--no-align", action="store_true",
                        help="faces are already aligned: resize frames instead of aligning")
    parser.add_argument("--aus", default="default",
                        help="default (dataset's evaluated AUs), all (every column, BP4D layout), "
                             "or a list like 1,2,4,12")
    parser.add_argument("--size", type=int, default=200, help="crop size in pixels (VL-FAU: 256)")
    parser.add_argument("--box-enlarge", type=float, default=2.9, help="alignment box enlargement")
    parser.add_argument("--template", default=None, help="language template YAML (default facs_v1)")
    parser.add_argument("--gender", default=None, help="subject,gender CSV (default ROOT/gender.csv)")
    parser.add_argument("--pau", default=None, help="FPara PAU centre YAML (default shipped)")
    parser.add_argument("--folds", default=None,
                        help="fold YAML (default ROOT/folds.yaml, else the published lists)")
    parser.add_argument("--frames-dir", default=None,
                        help="frame folder under ROOT (default images for bp4d; for disfa the "
                             "first of Images_LeftCamera, images, img holding frames; e.g. 2D+3D "
                             "for the BP4D release)")
    parser.add_argument("--frame-base", default=None, choices=("0", "1", "auto"),
                        help="DISFA: image numbering, 0 (image 0 = label frame 1, ME-GraphAU) or 1 "
                             "(image 1 = label frame 1, ffmpeg); default auto = detect, and stop "
                             "when the images cannot tell")
    parser.add_argument("--label-align", default=None, choices=("au1", "intersection"),
                        help="DISFA: frames of the AU1 file with absent AU values filled with 0 "
                             "(default, the public rule) or only frames present in every AU file")
    parser.add_argument("--fresh", action="store_true",
                        help="ignore the journal of an earlier run into --out: redo every frame")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes for face detection and alignment (same output as 1)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Run `fau.data.prepare.prepare` and print a one-line result."""
    from fau.data.prepare import prepare

    summary = prepare(
        args.dataset, args.root, args.out, aus=parse_aus(args.aus), limit=args.limit,
        align=not args.no_align, size=args.size, box_enlarge=args.box_enlarge,
        template=args.template, gender_csv=args.gender, pau_yaml=args.pau,
        folds_file=args.folds, frames_dir=args.frames_dir,
        frame_base=int(args.frame_base) if args.frame_base in ("0", "1") else args.frame_base,
        label_align=args.label_align, fresh=args.fresh, progress=not args.quiet,
        workers=args.workers,
    )
    skipped = ", ".join(f"{k} {v}" for k, v in summary["skipped"].items()) or "none"
    print(f"prepared {summary['frames_kept']} of {summary['frames_selected']} frames "
          f"({summary['subjects']} subjects) into {args.out}; skipped: {skipped}")
    layout = summary["raw_layout"]
    if "frame_base" in layout:
        print(f"frame images numbered from {layout['frame_base']} ({layout['frame_base_from']}); "
              f"label alignment {layout['label_align']}")
    for message in summary["frame_mismatch"]:
        print(f"warning: {message}")
    if summary["subjects_without_fold"]:
        print(f"warning: subjects in no fold: {', '.join(summary['subjects_without_fold'])}")
    return 0
