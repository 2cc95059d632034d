"""Region + grid features for a folder of photos, in the precomp layout the rest of `retrieval` reads.

Example: ``retrieval features --images photos/ --out data/mine detector.weights=weights/frcnn.safetensors``
writes ``data/mine/gallery_precomp/test_{ims,boxes,image_sizes,grid}.npy``, ``test_ids.txt`` and
``test_paths.txt``; ``--captions FILE`` (lines ``<image id><TAB><caption>``, 5 per image) adds
``test_caps.txt``.  Rerunning with the same --out extracts only new images.  Without weights in the config
the detector keeps random weights (tests only).  Spec: docs/retrieval.md
"""

from __future__ import annotations

import argparse

HELP = "extract 36 region features, boxes and a 7x7 grid per photo of a folder (Faster R-CNN, precomp layout)"


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be zero or more, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--images", required=True, help="folder of photos (searched recursively)")
    parser.add_argument("--out", required=True, help="dataset root; files go to OUT/NAME_precomp/SPLIT_*")
    parser.add_argument("--name", default="gallery", help="dataset name (default gallery)")
    parser.add_argument("--split", default="test", help="split name (default test)")
    parser.add_argument("--captions", default=None,
                        help="optional utf-8 file of '<image id><TAB><caption>' lines, 5 per image (id = path under --images)")
    parser.add_argument("--config", default="features_butd", help="YAML path or packaged config name (default features_butd)")
    parser.add_argument("--device", default="auto", help="auto (cuda → cpu), cpu, cuda, cuda:N")
    parser.add_argument("--batch-size", type=_positive, default=2, help="images per detector batch (default 2)")
    parser.add_argument("--workers", type=_non_negative, default=0, help="image-decoding worker processes (default 0)")
    parser.add_argument("--fresh", action="store_true", help="drop the resume journal and extract every image again")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. detector.weights=PATH")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from retrieval.features import extract_gallery, settings_from_config
    from shared.config import load_run_config
    from shared.device import resolve_device

    config_dir = Path(__file__).resolve().parent.parent / "configs"
    settings = settings_from_config(load_run_config(args.config, config_dir, args.overrides))
    from shared.distributed import cleanup, init_distributed

    info = init_distributed(args.device)  # under torchrun: the images are shared out over the ranks
    device = info.device if info.enabled else resolve_device(args.device)
    if settings.weights is None and info.is_main:
        print("retrieval features: no detector weights (detector.weights is null): "
              "features come from random weights, useful only for testing")
    try:
        summary = extract_gallery(args.images, args.out, settings, name=args.name, split=args.split,
                                  captions=args.captions, device=device, batch_size=args.batch_size,
                                  workers=args.workers, fresh=args.fresh, show_progress=not args.no_progress,
                                  rank=info.rank, world=info.world_size)
    finally:
        if info.enabled:
            cleanup(synchronise=False)
    if summary is None:  # not rank 0: rank 0 writes the split and reports
        return 0
    print(f"{summary.n_images} images in {summary.precomp_dir}/{summary.split}_* "
          f"({summary.extracted_now} extracted now, {summary.resumed} from the journal, "
          f"{len(summary.skipped)} skipped, {summary.padded_images} with fewer than "
          f"{settings.num_boxes} proposals) in {summary.seconds:.1f} s")
    return 0
