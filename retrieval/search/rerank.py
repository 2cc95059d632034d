"""Two-stage search for pairwise (cross-attention) models (docs/retrieval.md).

HiRE, HSLM and VSR++'s local branch score every (image, caption) pair jointly, so a gallery of N
items costs N forward passes per query (docs/retrieval.md).  Two-stage search first
shortlists the top-k of a two-tower index, then re-scores only the shortlist with the pairwise
model.  Re-scoring is batched: queries are taken `queries_per_tile` at a time, the union of their
shortlists is encoded once (`encode_images` / `encode_texts`), and each tile is one
`forward_sim(image_block, caption_block)` call; the scores of the shortlisted pairs are gathered
from the tiles.  With one query per tile exactly k pairs per query are scored; more queries per
tile means fewer, larger calls (useful on a GPU) at the price of scoring pairs outside a query's
own shortlist.

The shortcut costs recall when the two-tower model misses the answer: the shortlist recall is the
fraction of queries whose ground-truth item is inside the shortlist, the ceiling of any re-ranker.

Held-out recall ranks a returned list with the evaluator's pessimistic rule (`list_ranks`; the
kernel `shared.metrics.positive_ranks` on the full matrix): a negative scoring >= the best target
counts against it, and a target tied with the list's cut-off score may be outranked by unlisted
items with the same score, which count against it too.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch

from retrieval.data.precomp import PrecompSplit, load_split
from retrieval.evaluation.similarity import FeatureBank, PairwiseModel
from shared.device import inference_mode
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
    with inference_mode(model):
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
    return SearchResult(new_scores, ids, [[items[i] if i >= 0 else {} for i in row] for row in ids],
                        pool=(shortlist.ids >= 0).sum(axis=1))


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


NOT_LISTED = np.iinfo(np.int64).max  # the rank of a query whose targets are not in its list: a miss at every K


def target_table(targets: Sequence[set[int]]) -> np.ndarray:
    """(Q, P) int64 target rows of each query, padded with -1."""
    width = max([len(t) for t in targets] + [1])
    table = np.full((len(targets), width), -1, np.int64)
    for q, target in enumerate(targets):
        table[q, : len(target)] = sorted(target)
    return table


def list_ranks(result: SearchResult, targets: Sequence[set[int]]) -> np.ndarray:
    """0-based pessimistic rank of each query's best listed target in its ranked list (Q,) int64.

    The kernel's rule applied to what the search returned: rank = listed non-targets scoring >= the
    best listed target.  When the list was cut from a larger pool (`result.pool`; unknown = larger)
    and that target ties the lowest listed score, every unlisted pool item may tie it as well and
    is counted against it.  A query with no listed target gets `NOT_LISTED`.  A listed row with a
    NaN or ±inf score is a one-line `UserError`.
    """
    ids, scores = np.asarray(result.ids), np.asarray(result.scores, dtype=np.float64)
    valid = ids >= 0
    if not np.isfinite(scores[valid]).all():
        q, k = np.argwhere(valid & ~np.isfinite(scores))[0]
        raise UserError(f"--heldout: query {q} has score {scores[q, k]} at rank {k + 1} (scores must be finite)")
    table = target_table(targets)
    is_target = valid & (ids[:, :, None] == table[:, None, :]).any(axis=2)
    found = is_target.any(axis=1)
    best = np.where(is_target, scores, -np.inf).max(axis=1)
    negatives_at_or_above = (valid & ~is_target & (scores >= best[:, None])).sum(axis=1)
    listed = valid.sum(axis=1)
    pool = np.full(len(ids), np.iinfo(np.int64).max) if result.pool is None else np.broadcast_to(result.pool, listed.shape)
    lowest = np.where(valid, scores, np.inf).min(axis=1)
    cut_tie = (pool > listed) & (best <= lowest)
    unlisted = np.where(cut_tie, np.minimum(pool - listed, NOT_LISTED // 2), 0)
    return np.where(found, negatives_at_or_above + unlisted, NOT_LISTED).astype(np.int64)


def recall_from_ranks(ranks: np.ndarray, ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """R@K (percent) = 100 · mean(rank < K) of 0-based ranks (NaN for no query)."""
    ranks = np.asarray(ranks)
    return {f"r{k}": float(100.0 * np.mean(ranks < k)) if len(ranks) else float("nan") for k in ks}
