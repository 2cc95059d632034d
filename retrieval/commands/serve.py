"""Open a local demo page over an index: type a sentence, see the gallery images it finds.

``retrieval serve --index runs/retrieval-default/index [--rerank CKPT] [--captions BANK] [--port 7861]``
serves one page (no CDN, nothing fetched at run time) where a sentence gives the top-k gallery
images as pictures (SynScenes' rendered scenes, or the photos of a `retrieval features` gallery)
with their scores and, where the model explains, the matched words and salient regions; picking a
gallery image gives its best captions from a caption bank (``--captions``, a captions index; by
default the captions of the indexed split); a button runs the held-out check of
``retrieval search --heldout`` and shows its R@K.  The server listens on 127.0.0.1 only unless
``--host`` says otherwise; Ctrl+C stops it.  Needs the serve extra: ``pip install -e '.[serve]'``.
"""

from __future__ import annotations

import argparse

HELP = "local web demo of an index: a sentence in, gallery images with scores and explanations out"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--index", required=True, help="images index folder (retrieval index build)")
    parser.add_argument("--checkpoint", default=None, help="the index's checkpoint (default: the path in its manifest)")
    parser.add_argument("--rerank", default=None, metavar="CKPT", help="pairwise checkpoint re-scoring the shortlist")
    parser.add_argument("--shortlist", type=int, default=100, help="items shortlisted for --rerank (default 100)")
    parser.add_argument("--captions", default=None, metavar="INDEX",
                        help="caption bank: a captions index (default: the indexed split's captions, encoded at start)")
    parser.add_argument("--port", type=int, default=7861, help="TCP port (default 7861)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 exposes the demo)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--max-query-chars", type=int, default=1000, help="longest query accepted (default 1000)")
    parser.add_argument("--open", action="store_true", help="open the page in the default web browser")


def run(args: argparse.Namespace) -> int:
    from shared.errors import UserError
    from shared.serve import bind, require_serve_extra, serve, url_of

    require_serve_extra("retrieval serve")
    if args.max_query_chars < 1:
        raise UserError(f"--max-query-chars must be positive, got {args.max_query_chars}")
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port {args.port}: must be between 0 and 65535")
    from retrieval.serve.adapter import load_gallery
    from retrieval.serve.app import Limits, build_app

    sock = bind(args.host, args.port)          # a port in use fails before the models load
    try:
        gallery = load_gallery(args.index, args.checkpoint, args.rerank, args.captions, args.device, args.shortlist)
        app = build_app(gallery, Limits(max_query_chars=args.max_query_chars))
        url = url_of(sock)
        rerank = f", re-ranked by {gallery.reranker.name}" if gallery.reranker else ""
        print(f"retrieval serve: {gallery.index.count} images ({gallery.index.model}{rerank}) at {url} (Ctrl+C stops)",
              flush=True)
        if args.open:
            import webbrowser

            webbrowser.open(url)
        serve(app, sock)
    finally:
        sock.close()
    return 0
