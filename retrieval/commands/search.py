"""Search an index: text → image, image → text, optional pairwise re-ranking and explanations.

``retrieval search --index INDEX "a red cube left of a blue sphere" [--topk 10] [--json OUT]``;
``--queries FILE`` reads one query a line; ``--image ID_OR_FEATURES`` searches a captions index with
an image of the index's split (or a ``.npy``/``.npz`` feature file).  ``--rerank CKPT`` shortlists
``--shortlist`` items with the index's two-tower model and re-scores them with a pairwise model
(HiRE, HSLM, VSR++).  ``--heldout N`` uses N captions (or images) of the indexed split, whose
answers are known, and reports R@1/5/10 and the shortlist recall.  ``--explain DIR`` writes one PNG
per hit on SynScenes (salience + matched words).
"""

from __future__ import annotations

import argparse

HELP = "search an index with text (→ images) or an image (→ captions); optional re-ranking and PNG explanations"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("query", nargs="*", help="text queries (each argument one query)")
    parser.add_argument("--index", required=True, help="index folder (retrieval index build)")
    parser.add_argument("--queries", default=None, help="file of text queries, one a line")
    parser.add_argument("--image", default=None, help="image id in the index's split, or a .npy/.npz feature file")
    parser.add_argument("--data", default=None, help="with --image ID: dataset folder holding the image")
    parser.add_argument("--split", default=None, help="with --image ID: split holding the image")
    parser.add_argument("--heldout", type=int, default=None, metavar="N",
                        help="evaluate on N queries of the indexed split with known answers (R@K, shortlist recall)")
    parser.add_argument("--topk", type=int, default=10)
    parser.add_argument("--checkpoint", default=None, help="the index's checkpoint (default: the path in its manifest)")
    parser.add_argument("--rerank", default=None, metavar="CKPT", help="pairwise checkpoint re-scoring the shortlist")
    parser.add_argument("--shortlist", type=int, default=100, help="items shortlisted for --rerank (default 100)")
    parser.add_argument("--queries-per-tile", type=int, default=1,
                        help="queries whose shortlists share one forward_sim tile (default 1: exactly k pairs per query)")
    parser.add_argument("--explain", default=None, metavar="DIR", help="write one PNG per hit (SynScenes)")
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=128)


def run(args: argparse.Namespace) -> int:
    from retrieval.search.encoder import Retriever
    from retrieval.search.explain import explain_hits
    from retrieval.search.index import Index
    from retrieval.search.queries import (
        heldout_image_queries, heldout_report, heldout_text_queries, image_query, read_query_file, search_images,
        search_texts,
    )
    from shared.errors import UserError
    from shared.io import write_json

    for flag, value in (("--topk", args.topk), ("--shortlist", args.shortlist),
                        ("--queries-per-tile", args.queries_per_tile), ("--batch-size", args.batch_size)):
        if value < 1:
            raise UserError(f"{flag} {value}: must be at least 1")
    sources = sum([bool(args.query), args.queries is not None, args.image is not None, args.heldout is not None])
    if sources != 1:
        raise UserError("search needs exactly one of: query text, --queries FILE, --image ID_OR_FEATURES, --heldout N")
    index = Index.load(args.index)
    retriever = Retriever.load(index.checkpoint_for(args.checkpoint), args.device)
    index.device = str(retriever.device)  # exact search runs beside the model (GPU when present)
    reranker = Retriever.load(args.rerank, args.device) if args.rerank else None
    options = (args.topk, reranker, args.shortlist, args.queries_per_tile, args.batch_size)
    targets = None
    if args.heldout is not None:
        if args.heldout < 1:
            raise UserError(f"--heldout {args.heldout}: must be at least 1")
        if index.kind == "images":
            labels, targets = heldout_text_queries(index, args.heldout)
            result, first = search_texts(retriever, index, labels, *options)
        else:
            images, targets, ids = heldout_image_queries(index, args.heldout)
            labels = [f"image {i}" for i in ids]
            result, first = search_images(retriever, index, images, *options)
    elif args.image is not None:
        images, label = image_query(args.image, index, args.data, args.split)
        labels = [label]
        result, first = search_images(retriever, index, images, *options)
    else:
        labels = read_query_file(args.queries) if args.queries else list(args.query)
        result, first = search_texts(retriever, index, labels, *options)
    report = {"index": str(args.index), "model": index.model, "kind": index.kind, "backend": index.backend_spec.kind,
              "rerank": None if reranker is None else {"model": reranker.name, "checkpoint": args.rerank,
                                                       "shortlist": args.shortlist},
              "results": [{"query": q, "hits": result.hits(i)} for i, q in enumerate(labels)]}
    if targets is not None:
        report["heldout"] = heldout_report(result, first, targets)
    if args.explain:
        report["explanations"] = explain_hits(reranker or retriever, index, result, labels, args.explain)
    if targets is None:
        for entry in report["results"][:20]:
            print(f"query: {entry['query']}")
            for hit in entry["hits"]:
                what = hit.get("text") or hit.get("path") or f"image {hit.get('id')}"
                print(f"  {hit['rank']:>3}  {hit['score']:.4f}  {what}")
    else:
        h = report["heldout"]
        line = f"held-out {h['queries']} queries: R@1 {h['r1']:.1f}  R@5 {h['r5']:.1f}  R@10 {h['r10']:.1f}"
        if "shortlist_recall" in h:
            line += f"  (shortlist {h['shortlist']} recall {h['shortlist_recall']:.1f}; first stage R@5 {h['first_stage']['r5']:.1f})"
        print(line)
    if reranker is not None and "heldout" not in report:
        print(f"re-ranked the top {args.shortlist} with {reranker.name}; the shortlist caps recall "
              f"(measure it with --heldout N)")
    if args.json:
        write_json(args.json, report)
    return 0
