"""Open a local demo page over a checkpoint: drop photos, see every face boxed with its AU probabilities.

``fau serve --checkpoint runs/fau-default/vlfau/best.safetensors [--port 7860] [--host 127.0.0.1]``
serves one page (no CDN, nothing fetched at run time) where photos (or a folder) are picked or
dropped; each face shows its box, the AU probability bars with each threshold, the active AUs, the
generated and the template explanation side by side and the model's attention per AU.  A threshold
slider re-labels without running the model again; "download JSON" gives exactly what
``fau predict --json`` writes for the same photos.  The server listens on 127.0.0.1 only unless
``--host`` says otherwise; Ctrl+C stops it.  Needs the serve extra: ``pip install -e '.[serve]'``.
"""

from __future__ import annotations

import argparse

HELP = "local web demo of a checkpoint: photos in, faces, AU bars, explanations and attention out"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="model checkpoint (.safetensors with its .json)")
    parser.add_argument("--port", type=int, default=7860, help="TCP port (default 7860)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 exposes the demo)")
    parser.add_argument("--device", default="auto", help="auto (cuda → cpu), cpu, cuda, cuda:N")
    parser.add_argument("--threshold", default=None, metavar="FILE",
                        help="per-AU thresholds, YAML/JSON {AU12: 0.4, ...} (unlisted AUs: 0.5)")
    parser.add_argument("--template", default=None, help="description template YAML (default facs_v1)")
    parser.add_argument("--decoding", default="greedy", choices=("greedy", "beam"), help="text decoding (VL-FAU)")
    parser.add_argument("--min-score", type=float, default=None,
                        help="dlib face score threshold (default 0.1; 0 = dlib's own)")
    parser.add_argument("--max-files", type=int, default=32, help="photos per request (default 32)")
    parser.add_argument("--max-file-mb", type=float, default=20.0, help="size limit per photo in MB (default 20)")
    parser.add_argument("--max-megapixels", type=float, default=25.0, help="pixel limit per photo (default 25)")
    parser.add_argument("--open", action="store_true", help="open the page in the default web browser")


def run(args: argparse.Namespace) -> int:
    from shared.errors import UserError
    from shared.serve import bind, require_serve_extra, serve, url_of

    require_serve_extra("fau serve")
    for flag, value in (("--max-files", args.max_files), ("--max-file-mb", args.max_file_mb),
                        ("--max-megapixels", args.max_megapixels)):
        if value <= 0:
            raise UserError(f"{flag} must be positive, got {value}")
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port {args.port}: must be between 0 and 65535")
    from fau.serve.adapter import load_predictor
    from fau.serve.app import Limits, build_app

    sock = bind(args.host, args.port)          # a port in use fails before the model loads
    try:
        predictor = load_predictor(args.checkpoint, args.device, args.threshold, args.template, args.decoding,
                                   args.min_score)
        app = build_app(predictor, Limits(args.max_files, args.max_file_mb, args.max_megapixels))
        url = url_of(sock)
        print(f"fau serve: {predictor.meta['model']} from {args.checkpoint} at {url} (Ctrl+C stops)", flush=True)
        if args.open:
            import webbrowser

            webbrowser.open(url)
        serve(app, sock)
    finally:
        sock.close()
    return 0
