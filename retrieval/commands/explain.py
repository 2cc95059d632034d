"""Export a checkpoint's interpretability outputs as JSON (`retrieval.explain`).

``retrieval explain --checkpoint RUN/best.safetensors --data DIR [--split test] [--images 0 1 2]
--out OUT.json``: what the model's ``explain`` returns, per image — 3SHNet salience α per region with
its top VSpM attention cells, SMFEA's predicted referral-tree nodes (image and captions, beside the
parsed ground truth), HSLM's word gates, HiRE's graph edges and word–region attention — and every
image's top-5 retrieved captions.  A model without ``explain`` is refused by name in one line.
"""

from __future__ import annotations

import argparse

HELP = "export a model's explanations (3SHNet, SMFEA, HSLM, HiRE) and top-5 captions of some images as JSON"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="checkpoint of a model that explains (.safetensors with its .json)")
    parser.add_argument("--data", required=True, help="dataset folder")
    parser.add_argument("--name", default=None, help="dataset name when --data holds several")
    parser.add_argument("--split", default="test", help="split to read (default test)")
    parser.add_argument("--images", type=int, nargs="+", default=None, metavar="I",
                        help="image indices in the split (default: the first 10)")
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=128, help="encoding batch size for the top-5 captions")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from retrieval.explain import export_explanations

    report = export_explanations(args.checkpoint, args.data, args.split, args.images, args.out, args.name,
                                 args.device, args.batch_size, progress=not args.quiet)
    print(f"{report['model']}: {len(report['images'])} images of {report['dataset']} {args.split} -> {args.out}")
    return 0
