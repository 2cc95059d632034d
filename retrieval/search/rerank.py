"""Two-stage search for pairwise (cross-attention) models (retrieval-models.md §1.1, §8.6).

HiRE, HSLM and VSR++'s local branch score every (image, caption) pair jointly, so a gallery of N
items costs N forward passes per query (anchors-retrieval.md §3.2).  Two-stage search first
shortlists the top-k of a two-tower index, then re-scores only the shortlist with the pairwise
model.  Re-scoring is batched: queries are taken `queries_per_tile` at a time, the union of their
shortlists is encoded once (`encode_images` / `encode_texts`), and each tile is one
`forward_sim(image_block, caption_block)` call; the scores of the shortlisted pairs are gathered
from the tiles.  With one query per tile exactly k pairs per query are scored; more queries per
tile means fewer, larger calls (useful on a GPU) at the price of scoring pairs outside a query's
own shortlist.

The shortcut costs recall when the two-tower model misses the answer: `shortlist_recall` is the
fraction of queries whose ground-truth item is inside the shortlist, the ceiling of any re-ranker.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch

from retrieval.data.precomp import PrecompSplit, load_split
from retrieval.evaluation.similarity import FeatureBank, PairwiseModel, evaluation_mode
from retrieval.search.encoder import Retriever
from retrieval.search.index import Index, SearchResult
from shared.errors import UserError

DEFAULT_QUERIES_PER_TILE = 1  # ours: exact k pairs per query on CPU; raise on a GPU
GALLERY_CHUNK = 256  # ours: shortlisted items per forward_sim tile


def check_pairwise(retriever: Retriever) -> None:
    """One-line error unless the re-ranker implements the `PairwiseModel` protocol."""
    if not isinstance(retriever.model, PairwiseModel):
        raise UserError(f"--rerank {retriever.checkpoint}: {retriever.name} is not a pairwise model "
                        f"(needs encode_images, encode_texts and forward_sim)")


class SplitCache:
    """Precomp splits opened once each, keyed by (folder, split), for the rows of an image index."""

    def __init__(self) -> None:
        self.splits: dict[tuple[str, str], PrecompSplit] = {}

    def get(self, data: str, split: str) -> PrecompSplit:
        key = (data, split)
        if key not in self.splits:
            self.splits[key] = load_split(data, split, feature_dim=None, dev_max_images=None)
        return self.splits[key]


def image_row_features(reranker: Retriever, index: Index, rows: Sequence[int], cache: SplitCache,
                       batch_size: int) -> FeatureBank:
    """Pairwise-model features of index rows (in the given order), read from each row's source split."""
    chunks = []
    start = 0
    rows = list(rows)
    while start < len(rows):
        item = index.items[rows[start]]
        stop = start
        while stop < len(rows) and (index.items[rows[stop]]["data"], index.items[rows[stop]]["split"]) == (item["data"], item["split"]):
            stop += 1
        split = cache.get(item["data"], item["split"])
        bank = reranker.image_features(split, [index.items[r]["index"] for r in rows[start:stop]], batch_size)
        chunks.extend(bank.chunks)
        start = stop
    return FeatureBank(chunks)


def rerank_shortlist(shortlist: SearchResult, items: Sequence[dict[str, Any]], topk: int, queries_per_tile: int,
                     gallery_features: Callable[[list[int]], FeatureBank], query_features: FeatureBank,
                     score_tile: Callable[[Any, Any], torch.Tensor], model: Any) -> SearchResult:
    """Re-score each query's shortlisted rows by tiles and keep its top-`topk` (both directions).

    `gallery_features(rows)` encodes gallery rows, `query_features` holds every query's features and
    `score_tile(gallery_block, query_block)` returns the (rows, queries) scores of one tile.
    """
    n_queries, k = shortlist.ids.shape
    scores = np.full((n_queries, k), -np.inf, np.float32)
    with evaluation_mode(model):
        for q0 in range(0, n_queries, queries_per_tile):
            q1 = min(n_queries, q0 + queries_per_tile)
            block = shortlist.ids[q0:q1]
            union = sorted({int(r) for r in block.ravel() if r >= 0})
            if not union:
                continue
            position = {r: p for p, r in enumerate(union)}
            bank = gallery_features(union)
            queries = query_features.take(q0, q1)
            tile = np.concatenate([score_tile(bank.take(g, min(g + GALLERY_CHUNK, len(bank))), queries).float().cpu().numpy()
                                   for g in range(0, len(bank), GALLERY_CHUNK)], axis=0)  # (|union|, q1 - q0)
            for offset, row_ids in enumerate(block):
                valid = row_ids >= 0
                scores[q0 + offset, valid] = tile[[position[int(r)] for r in row_ids[valid]], offset]
    order = np.argsort(-scores, axis=1, kind="stable")[:, :topk]
    ids = np.take_along_axis(shortlist.ids, order, axis=1)
    new_scores = np.take_along_axis(scores, order, axis=1)
    ids[~np.isfinite(new_scores)] = -1
    return SearchResult(new_scores, ids, [[items[i] if i >= 0 else {} for i in row] for row in ids])


def rerank_text_to_image(reranker: Retriever, index: Index, shortlist: SearchResult, queries: Sequence[str],
                         topk: int = 10, queries_per_tile: int = DEFAULT_QUERIES_PER_TILE,
                         batch_size: int = 128) -> SearchResult:
    """Re-score the shortlisted images of each text query with a pairwise model (t2i, second stage)."""
    check_pairwise(reranker)
    if index.kind != "images":
        raise UserError("text → image re-ranking needs an images index")
    cache = SplitCache()
    return rerank_shortlist(shortlist, index.items, topk, max(1, queries_per_tile),
                   lambda rows: image_row_features(reranker, index, rows, cache, batch_size),
                   reranker.text_features(queries, batch_size),
                   lambda images, texts: reranker.model.forward_sim(images, texts), reranker.model)


def rerank_image_to_text(reranker: Retriever, index: Index, shortlist: SearchResult, images: Any,
                         topk: int = 10, queries_per_tile: int = DEFAULT_QUERIES_PER_TILE,
                         batch_size: int = 128) -> SearchResult:
    """Re-score the shortlisted captions of each query image with a pairwise model (i2t, second stage).

    `images` is any `Retriever.image_loader` input holding the query images in shortlist row order.
    """
    check_pairwise(reranker)
    if index.kind != "captions":
        raise UserError("image → text re-ranking needs a captions index")
    return rerank_shortlist(shortlist, index.items, topk, max(1, queries_per_tile),
                   lambda rows: reranker.text_features([index.items[r]["text"] for r in rows], batch_size),
                   reranker.image_features(images, batch_size=batch_size),
                   lambda texts, imgs: reranker.model.forward_sim(imgs, texts).T, reranker.model)


def shortlist_recall(ids: np.ndarray, targets: Sequence[set[int]]) -> float:
    """Percentage of queries with at least one ground-truth row among their shortlisted `ids`."""
    if len(targets) == 0:
        return float("nan")
    hits = [bool(target & {int(i) for i in row}) for row, target in zip(ids, targets)]
    return 100.0 * float(np.mean(hits))


def recall_at(ids: np.ndarray, targets: Sequence[set[int]], ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """R@K (percent) of ranked `ids` against each query's ground-truth rows."""
    return {f"r{k}": shortlist_recall(ids[:, :k], targets) for k in ks}
