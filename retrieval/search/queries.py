"""What `retrieval search` does, as functions: read queries, search, re-rank, score held-out captions.

* text → image: text queries (arguments or a file, one a line) against an images index;
* image → text: one query image (an id of the index's source split, or a ``.npy`` / ``.npz`` feature
  file) against a captions index;
* held-out evaluation: `N` captions of the indexed split (one per image, evenly spaced; images index)
  or `N` images (captions index) whose answers are known, giving R@1/5/10 and, with a re-ranker,
  the shortlist recall that bounds it.  Ranks follow the evaluator's pessimistic tie rule
  (`retrieval.search.rerank.list_ranks`), so a constant scorer scores at most chance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from retrieval.data.precomp import PrecompSplit
from retrieval.search.encoder import Retriever, check_queries
from retrieval.search.index import Index, SearchResult
from retrieval.search.rerank import (
    NOT_LISTED, SplitCache, list_ranks, recall_from_ranks, rerank_image_to_text, rerank_text_to_image,
)
from shared.errors import UserError


def read_query_file(path: str | Path) -> list[str]:
    """Queries from a utf-8 text file, one per line (blank lines skipped)."""
    file = Path(path)
    if not file.is_file():
        raise UserError(f"--queries {file}: file not found")
    try:
        lines = [line.strip() for line in file.read_text(encoding="utf-8").splitlines()]
    except UnicodeDecodeError as err:
        raise UserError(f"--queries {file}: not utf-8 text ({err.reason} at byte {err.start})") from None
    queries = [line for line in lines if line]
    if not queries:
        raise UserError(f"--queries {file}: no query in the file")
    return queries


def read_feature_file(path: Path) -> dict[str, np.ndarray]:
    """One image's features: ``.npy`` = region features (K, D); ``.npz`` = named arrays (regions, grid, ...)."""
    try:
        if path.suffix == ".npy":
            arrays = {"regions": np.load(path, allow_pickle=False)}
        else:
            with np.load(path, allow_pickle=False) as data:
                arrays = {key: data[key] for key in data.files}
    except (ValueError, OSError) as err:
        raise UserError(f"--image {path}: not a readable feature file ({str(err).splitlines()[0]})") from None
    single = {"regions": 2, "grid": 2, "boxes": 2, "segmentations": 3, "seg_maps": 2, "cat_onehots": 1, "images": 2}
    return {key: value[None] if value.ndim == single.get(key, -1) else value for key, value in arrays.items()}


def image_query(image: str, index: Index, data: str | None, split: str | None) -> tuple[Any, str]:
    """The query image as an image input (a split + row, or feature arrays) and a label for reports."""
    path = Path(image)
    if path.suffix in (".npy", ".npz") and path.is_file():
        return read_feature_file(path), path.name
    if data is None and not index.items:
        raise UserError("--image: the index is empty; pass --data to find the image id")
    data = data or index.items[0]["data"]
    split = split or index.items[0]["split"]
    source = SplitCache().get(data, split)
    ids = source.ids if source.ids is not None else [str(i) for i in range(source.n_images)]
    if image not in ids:
        raise UserError(f"--image {image!r}: neither a .npy/.npz feature file nor an image id of {data} {split}")
    return rows_of(source, [ids.index(image)]), f"image {image}"


def rows_of(split: PrecompSplit, rows: Sequence[int]) -> dict[str, Any]:
    """Every image array of a split (and its scene graphs) restricted to `rows`, as an image input."""
    out: dict[str, Any] = {attr: np.asarray(getattr(split, attr)[rows]) for attr in
                           ("images", "grid", "segmentations", "seg_maps", "cat_onehots", "boxes")
                           if getattr(split, attr) is not None}
    if split.scene_graphs is not None:
        out["scene_graphs"] = [split.scene_graphs[r] for r in rows]
    return out


def heldout_text_queries(index: Index, count: int) -> tuple[list[str], list[set[int]]]:
    """`count` captions of the indexed images (image i gives its caption i mod 5), with their answer rows."""
    cache = SplitCache()
    rows = np.unique(np.linspace(0, index.count - 1, min(count, index.count)).astype(int))
    queries, targets = [], []
    for row in rows:
        item = index.items[row]
        captions = cache.get(item["data"], item["split"]).image_captions(item["index"])
        queries.append(captions[item["index"] % len(captions)])
        targets.append({int(row)})
    return queries, targets


def heldout_image_queries(index: Index, count: int) -> tuple[dict[str, np.ndarray], list[set[int]], list[str]]:
    """`count` images behind a captions index (evenly spaced), with the rows of their captions."""
    first = index.items[0]
    if any((item["data"], item["split"]) != (first["data"], first["split"]) for item in index.items):
        raise UserError("--heldout on a captions index needs captions from one split")
    source = SplitCache().get(first["data"], first["split"])
    by_image: dict[int, set[int]] = {}
    for row, item in enumerate(index.items):
        by_image.setdefault(int(item["image"]), set()).add(row)
    images = sorted(by_image)
    chosen = [images[i] for i in np.unique(np.linspace(0, len(images) - 1, min(count, len(images))).astype(int))]
    arrays = rows_of(source, chosen)
    labels = [source.ids[i] if source.ids else str(i) for i in chosen]
    return arrays, [by_image[i] for i in chosen], labels


def check_shortlist(shortlist: int, topk: int) -> int:
    """The shortlist length, which must hold at least the `topk` results asked for."""
    if shortlist < topk:
        raise UserError(f"--shortlist {shortlist} is smaller than --topk {topk}")
    return shortlist


def search_texts(retriever: Retriever, index: Index, queries: Sequence[str], topk: int, reranker: Retriever | None,
                 shortlist: int, queries_per_tile: int, batch_size: int) -> tuple[SearchResult, SearchResult | None]:
    """(final result, shortlist or None): two-tower search, then the pairwise re-ranking when asked."""
    if index.kind != "images":
        raise UserError("text queries need an images index (this one holds captions; use --image)")
    queries = check_queries(queries)
    embeddings = index.encode_queries(retriever, queries)
    if reranker is None:
        return index.search(embeddings, topk), None
    first = index.search(embeddings, check_shortlist(shortlist, topk))
    return rerank_text_to_image(reranker, index, first, queries, topk, queries_per_tile, batch_size), first


def search_images(retriever: Retriever, index: Index, images: Any, topk: int, reranker: Retriever | None,
                  shortlist: int, queries_per_tile: int, batch_size: int) -> tuple[SearchResult, SearchResult | None]:
    """Image → text over a captions index (optionally re-ranked)."""
    if index.kind != "captions":
        raise UserError("--image queries need a captions index (build one with `retrieval index build --captions`)")
    index.check_model(retriever)
    embeddings = retriever.encode_images(images, batch_size)
    if reranker is None:
        return index.search(embeddings, topk), None
    first = index.search(embeddings, check_shortlist(shortlist, topk))
    return rerank_image_to_text(reranker, index, first, images, topk, queries_per_tile, batch_size), first


def heldout_report(result: SearchResult, first: SearchResult | None, targets: Sequence[set[int]]) -> dict[str, Any]:
    """R@1/5/10 of the final ranking and, after a re-ranking, the shortlist's recall and the first stage's R@K.

    Pessimistic throughout: a target reached the shortlist only if it did under every order of tied
    first-stage scores (its first-stage rank is below the shortlist length); otherwise it is a miss
    whatever the re-ranker says.
    """
    if first is None:
        return {"queries": len(targets), **recall_from_ranks(list_ranks(result, targets))}
    first_ranks = list_ranks(first, targets)
    shortlisted = first_ranks < (np.asarray(first.ids) >= 0).sum(axis=1)
    final = np.where(shortlisted, list_ranks(result, targets), NOT_LISTED)
    report: dict[str, Any] = {"queries": len(targets), **recall_from_ranks(final)}
    report["shortlist"] = int(first.ids.shape[1])
    report["shortlist_recall"] = float(100.0 * np.mean(shortlisted)) if len(targets) else float("nan")
    report["first_stage"] = recall_from_ranks(first_ranks)
    return report
