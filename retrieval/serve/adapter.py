"""The demo's one door into the retrieval library: load an index, search it, explain hits, caption images.

Everything comes from `retrieval.search` (the functions behind ``retrieval search``: the same query
checks, two-tower search, pairwise re-ranking, held-out R@K with its pessimistic tie rule, and the
SynScenes hit drawing of ``--explain``); this module only shapes the answers for a web page: hits as
JSON with their pictures, explanations as PNG data URLs, and a caption bank for image → text.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from retrieval.search.encoder import Retriever
from retrieval.search.explain import GRID_SIDE, TOP_REGIONS, TOP_WORDS, draw_hit, encode_png, grid_boxes, \
    pair_explanation, words_of
from retrieval.search.index import Index
from retrieval.search.queries import heldout_report, heldout_text_queries, rows_of, search_images, search_texts
from retrieval.search.rerank import SplitCache
from shared.errors import UserError

log = logging.getLogger(__name__)

#: queries per forward_sim tile of the re-ranker (as `retrieval search`'s default: exactly k pairs per query)
QUERIES_PER_TILE = 1
BATCH = 128


@dataclass
class Gallery:
    """An images index with its model, an optional re-ranker and an optional caption bank."""

    index: Index
    retriever: Retriever
    reranker: Retriever | None = None
    captions: Index | None = None
    captions_source: str = ""
    shortlist: int = 100
    cache: SplitCache = field(default_factory=SplitCache)

    @property
    def explainer(self) -> Retriever:
        """The model whose scores the page shows (the re-ranker when there is one)."""
        return self.reranker or self.retriever


def load_gallery(index_path: str, checkpoint: str | None, rerank: str | None, captions: str | None,
                 device: str, shortlist: int) -> Gallery:
    """The images index (checked against its checkpoint), the re-ranker and the caption bank.

    Without `captions` the bank is the captions of the indexed split(s), encoded now; a gallery
    without captions (photos indexed without ``--captions``) has no bank.
    """
    index = Index.load(index_path)
    if index.kind != "images":
        raise UserError(f"--index {index_path}: a {index.kind} index; the demo searches an images index "
                        f"(pass a captions index as --captions)")
    if not index.count:
        raise UserError(f"--index {index_path}: the index is empty")
    retriever = Retriever.load(checkpoint or index.checkpoint, device)
    index.check_model(retriever)
    index.device = str(retriever.device)
    reranker = Retriever.load(rerank, device) if rerank else None
    if shortlist < 1:
        raise UserError(f"--shortlist {shortlist}: must be at least 1")
    gallery = Gallery(index, retriever, reranker, shortlist=shortlist)
    if captions:
        bank = Index.load(captions, index.device)
        if bank.kind != "captions":
            raise UserError(f"--captions {captions}: an {bank.kind} index, not a caption bank "
                            f"(build one with `retrieval index build --captions`)")
        bank.check_model(retriever)
        gallery.captions, gallery.captions_source = bank, str(captions)
    else:
        bank = Index.empty_for(retriever, "captions")
        bank.device = index.device
        for data, split in dict.fromkeys((item["data"], item["split"]) for item in index.items):
            if gallery.cache.get(data, split).n_captions:
                bank.add_split(retriever, data, split, batch_size=BATCH, progress=False)
        if bank.count:
            gallery.captions = bank
            gallery.captions_source = "the indexed split"
    return gallery


def describe(gallery: Gallery) -> dict[str, Any]:
    """What the page states about the loaded index and models."""
    index = gallery.index
    return {"model": index.model, "count": index.count, "backend": index.backend_spec.kind,
            "rerank": None if gallery.reranker is None else gallery.reranker.name, "shortlist": gallery.shortlist,
            "captions": 0 if gallery.captions is None else gallery.captions.count,
            "captions_source": gallery.captions_source,
            "pictures": sum(picture_path(gallery, row) is not None for row in range(min(index.count, 50))) > 0}


def picture_path(gallery: Gallery, row: int) -> Path | None:
    """The picture of an index row: SynScenes' rendered scene, or the photo a `retrieval features` gallery lists."""
    if not 0 <= row < gallery.index.count:
        raise UserError(f"image row {row}: the index holds rows 0..{gallery.index.count - 1}")
    item = gallery.index.items[row]
    path = item.get("path")
    if path is None:
        split = gallery.cache.get(item["data"], item["split"])
        path = split.paths[item["index"]] if split.paths is not None else None
    return Path(path) if path is not None and Path(path).is_file() else None


def gallery_page(gallery: Gallery, offset: int, limit: int) -> list[dict[str, Any]]:
    """Rows `offset`..`offset+limit` of the index: row, id, whether a picture exists."""
    rows = range(max(offset, 0), min(max(offset, 0) + limit, gallery.index.count))
    return [{"row": row, "id": gallery.index.items[row].get("id", str(row)),
             "picture": picture_path(gallery, row) is not None} for row in rows]


def _data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def explain_hit(gallery: Gallery, hit: dict[str, Any], query: str) -> dict[str, Any]:
    """Salient regions and matched words of one hit (as ``retrieval search --explain`` draws them)."""
    import cv2

    model = gallery.explainer
    split = gallery.cache.get(hit["data"], hit["split"])
    vector = gallery.index.vectors[hit["row"]] if model.family == "two-tower" else None
    salience, strengths = pair_explanation(model, split, hit["index"], query, vector)
    words = words_of(query)
    order = np.argsort(-np.asarray(strengths), kind="stable")[:TOP_WORDS] if strengths else []
    out: dict[str, Any] = {"words": words, "strengths": [float(s) for s in strengths],
                           "matched_words": [words[i] for i in order],
                           "top_regions": [int(k) for k in np.argsort(-salience, kind="stable")[:TOP_REGIONS]]}
    path = picture_path(gallery, hit["row"])
    if path is None:
        return out
    picture = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if picture is None:
        return out
    picture = cv2.cvtColor(picture, cv2.COLOR_BGR2RGB)
    if len(salience) == GRID_SIDE ** 2 and split.boxes is None:
        boxes = grid_boxes(picture.shape[1], picture.shape[0])
    else:
        boxes = None if split.boxes is None else np.asarray(split.boxes[hit["index"]])
    if boxes is not None and len(boxes) == len(salience):
        canvas = draw_hit(picture, boxes, salience, query, strengths,
                          f"#{hit['rank']} image {hit['id']}  score {hit['score']:.3f}  ({model.name})")
        out["png"] = _data_url(encode_png(canvas))
    return out


def search(gallery: Gallery, query: str, topk: int, explain: bool) -> dict[str, Any]:
    """Top-`topk` gallery images of one sentence (re-ranked when there is a re-ranker), optionally explained."""
    result, first = search_texts(gallery.retriever, gallery.index, [query], topk, gallery.reranker,
                                 max(gallery.shortlist, topk), QUERIES_PER_TILE, BATCH)
    hits = result.hits(0)
    note = None
    if explain:
        for hit in hits:
            try:
                hit["explanation"] = explain_hit(gallery, hit, query)
            except UserError as err:
                note = "no explanation: " + str(err).removeprefix("--explain: ")
                break
    shown = [{key: hit[key] for key in ("rank", "row", "score", "id", "explanation") if key in hit} for hit in hits]
    for hit in shown:
        hit["picture"] = picture_path(gallery, hit["row"]) is not None
    return {"query": query, "hits": shown, "note": note,
            "scored_by": gallery.explainer.name if gallery.reranker is None
            else f"{gallery.reranker.name} re-ranking the top {max(gallery.shortlist, topk)} of {gallery.index.model}"}


def captions_of(gallery: Gallery, row: int, topk: int) -> dict[str, Any]:
    """The best captions of the caption bank for gallery image `row` (image → text search)."""
    if gallery.captions is None:
        raise UserError("no caption bank: this gallery has no captions; start the demo with "
                        "--captions INDEX (`retrieval index build --captions ...`)")
    picture_path(gallery, row)  # checks the row
    item = gallery.index.items[row]
    split = gallery.cache.get(item["data"], item["split"])
    images = rows_of(split, [item["index"]])
    result, _ = search_images(gallery.retriever, gallery.captions, images, topk, gallery.reranker,
                              max(gallery.shortlist, topk), QUERIES_PER_TILE, BATCH)
    hits = []
    for hit in result.hits(0):
        own = (hit.get("data"), hit.get("split"), hit.get("image")) == (item["data"], item["split"], item["index"])
        hits.append({"rank": hit["rank"], "score": hit["score"], "text": hit.get("text", ""), "own": own})
    return {"row": row, "id": item.get("id", str(row)), "captions": hits}


def heldout(gallery: Gallery, count: int) -> dict[str, Any]:
    """R@1/5/10 of `count` captions of the indexed split (one per image, answers known), as ``--heldout``."""
    if count < 1:
        raise UserError(f"held-out check: {count} queries; ask for at least 1")
    for data, split in dict.fromkeys((item["data"], item["split"]) for item in gallery.index.items):
        if not gallery.cache.get(data, split).n_captions:
            raise UserError(f"held-out check: {data} {split} has no captions, so no query has a known answer")
    queries, targets = heldout_text_queries(gallery.index, count)
    result, first = search_texts(gallery.retriever, gallery.index, queries, 10, gallery.reranker,
                                 max(gallery.shortlist, 10), QUERIES_PER_TILE, BATCH)
    return heldout_report(result, first, targets)
