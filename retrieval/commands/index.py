"""Build or extend a searchable index of a trained two-tower model (`retrieval.search.Index`).

``retrieval index build --checkpoint CKPT --data DIR [--split test] --out INDEX [--captions |
--captions-file BANK.txt] [--dtype float32|float16] [--backend auto|exact|flat|ivf|hnsw|ivfpq]``
encodes every image of the split once (batched, on the GPU when present, resumable: rerun the same
command after an interruption) into l2-normalised embeddings with id ↔ image path metadata and a
manifest (model, checkpoint sha256, dimension, count, checksums).  ``--captions`` indexes the
split's captions instead (a caption bank for image → text search).
``retrieval index add --index INDEX --data DIR --split S`` (or ``--captions-file``) appends rows.
"""

from __future__ import annotations

import argparse
from typing import Any

HELP = "build or extend an embedding index (images or a caption bank) for `retrieval search`"


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default=None, help="dataset folder (precomp layout) whose split is encoded")
    parser.add_argument("--name", default=None, help="dataset name when --data holds several")
    parser.add_argument("--split", default="test", help="split to encode (default test)")
    parser.add_argument("--captions-file", default=None, help="caption bank: a utf-8 text file, one caption a line")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--chunk-size", type=int, default=None,
                        help="images per resumable chunk; under torchrun the unit shared out over the ranks (default 4096)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    build = sub.add_parser("build", help="encode a split (or a caption bank) into a new index")
    build.add_argument("--checkpoint", required=True, help="two-tower checkpoint (.safetensors with its .json)")
    build.add_argument("--out", required=True, help="index folder to write")
    build.add_argument("--captions", action="store_true", help="index the split's captions (image → text search)")
    build.add_argument("--dtype", default="float32", choices=("float32", "float16"), help="storage of the embeddings")
    build.add_argument("--backend", default="auto", choices=("auto", "exact", "flat", "ivf", "hnsw", "ivfpq"),
                       help="auto: exact up to 10^6 items, FAISS IVF-PQ (bounded memory, exact re-rank) beyond")
    build.add_argument("--nlist", type=int, default=0, help="IVF cells (0: 4·sqrt(N))")
    build.add_argument("--nprobe", type=int, default=16, help="IVF cells visited per query")
    build.add_argument("--hnsw-m", type=int, default=32, help="HNSW graph degree")
    build.add_argument("--ef-search", type=int, default=64, help="HNSW candidates per query")
    build.add_argument("--pq-dim", type=int, default=0, help="IVF-PQ: PCA dimension (0: min(d, 256))")
    build.add_argument("--pq-m", type=int, default=0, help="IVF-PQ: code bytes per row (0: pq-dim / 8)")
    build.add_argument("--rerank", type=int, default=100, help="IVF-PQ: shortlist re-scored exactly (default 100)")
    build.add_argument("--train-size", type=int, default=0, help="IVF-PQ: k-means training sample (0: 40 per cell)")
    _common(build)
    add = sub.add_parser("add", help="append a split's images (or captions) to an existing index")
    add.add_argument("--index", required=True, help="index folder")
    add.add_argument("--checkpoint", default=None, help="the index's checkpoint (default: the path in its manifest)")
    _common(add)


def run(args: argparse.Namespace) -> int:
    from shared.errors import UserError

    if (args.data is None) == (args.captions_file is None):
        raise UserError(f"index {args.action} needs exactly one of --data DIR or --captions-file FILE")
    from shared.distributed import cleanup, init_distributed

    if args.chunk_size is not None and args.chunk_size < 1:
        raise UserError(f"--chunk-size must be at least 1, got {args.chunk_size}")
    progress = not args.quiet
    info = init_distributed(args.device)  # under torchrun: the image chunks are shared out over the ranks
    if info.enabled:
        if args.captions_file:
            raise UserError("--captions-file: a caption bank is encoded by one process (run without torchrun)")
        args.device = str(info.device)
    try:
        return _run(args, info, progress)
    finally:
        if info.enabled:
            cleanup(synchronise=False)


def _run(args: argparse.Namespace, info: Any, progress: bool) -> int:
    from retrieval.search.backends import BackendSpec
    from retrieval.search.encoder import Retriever
    from retrieval.search.index import Index
    from retrieval.search.queries import read_query_file
    from shared.errors import UserError

    if args.action == "build":
        retriever = Retriever.load(args.checkpoint, args.device)
        spec = BackendSpec(args.backend, args.nlist, args.nprobe, args.hnsw_m, ef_search=args.ef_search,
                           pq_dim=args.pq_dim, pq_m=args.pq_m, rerank=args.rerank,
                           train_size=args.train_size).validate()
        kind = "captions" if args.captions or args.captions_file else "images"
        index = Index.empty_for(retriever, kind, args.dtype, spec)
        target, work_dir = index, args.out
    else:
        target = Index.load(args.index, args.device if args.device != "auto" else "cpu")
        retriever = Retriever.load(target.checkpoint_for(args.checkpoint), args.device)
        work_dir = args.index
    if args.captions_file:
        added = target.add_captions(retriever, read_query_file(args.captions_file), str(args.captions_file),
                                    args.batch_size, progress)
    else:
        added = target.add_split(retriever, args.data, args.split, name=args.name, batch_size=args.batch_size,
                                 work_dir=work_dir, progress=progress, rank=info.rank, world=info.world_size,
                                 chunk=args.chunk_size)
        if added is None:  # not rank 0: rank 0 adds every rank's chunks and writes the index
            return 0
    out = target.save(work_dir)
    spec = target.backend_spec
    print(f"{target.model}: {added} {target.kind} added, {target.count} in {out} "
          f"({target.dim}-d {target.dtype}, backend {spec.kind})")
    return 0
