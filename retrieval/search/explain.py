"""Search explanations on SynScenes: one PNG per hit with region salience and the matched words.

For each hit the rendered scene (``images/{id:06d}.png`` beside the precomp folder) is drawn with
the model's most salient regions (their boxes, line strength ∝ salience) and the query below it,
the words that matched highlighted.  Where the salience and the word matching come from:

* a model with ``explain_pair(image_batch, text_batch)`` (the hook for pairwise models such as
  HiRE, whose word–region attention is the explanation, retrieval-models.md §3) returns
  ``{"region_salience": (1, K), "word_region": (1, L, K)}`` for one (image, caption) pair; a word's
  match strength is its largest attention weight over the regions;
* otherwise the image tower's ``salience`` output (3SHNet VSeM α_i, thesis Eq. 8.2–8.3) and, for
  the words, occlusion: the drop of the cosine when the word is deleted from the query (two-tower
  models, retrieval-models.md §1.1).  Models with neither give a one-line error.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from retrieval.evaluation.similarity import evaluation_mode, to_device
from retrieval.search.encoder import Retriever
from retrieval.search.index import Index, SearchResult
from retrieval.search.rerank import SplitCache
from shared.errors import UserError
from shared.io import atomic_open

SCALE = 4  # ours: upscaling of the 192 × 128 SynScenes render for legible overlays
TOP_REGIONS = 5  # ours: salient regions drawn per hit
TOP_WORDS = 3  # ours: words highlighted as matched
BAND = 56  # pixel height of the caption band under the scene
GRID_SIDE = 7  # grid features: 7 × 7 cells over the whole picture


def words_of(query: str) -> list[str]:
    """Whitespace words of a query, punctuation stripped (the units highlighted in the picture)."""
    return [w for w in (re.sub(r"[^\w'-]", "", t) for t in query.split()) if w]


def occlusion_word_scores(retriever: Retriever, image_vector: np.ndarray, query: str) -> list[float]:
    """Cosine drop when each word is deleted from the query (two-tower models; larger = matched)."""
    words = words_of(query)
    if len(words) < 2:
        return [1.0] * len(words)
    variants = [query] + [" ".join(words[:i] + words[i + 1:]) for i in range(len(words))]
    scores = retriever.encode_texts(variants) @ image_vector.astype(np.float32)
    return [float(scores[0] - s) for s in scores[1:]]


def grid_boxes(width: int, height: int) -> np.ndarray:
    """(49, 4) boxes of the 7 × 7 grid cells, row-major (3SHNet grid variant)."""
    xs, ys = np.linspace(0, width, GRID_SIDE + 1), np.linspace(0, height, GRID_SIDE + 1)
    return np.array([[xs[c], ys[r], xs[c + 1], ys[r + 1]] for r in range(GRID_SIDE) for c in range(GRID_SIDE)], np.float32)


def pair_explanation(retriever: Retriever, split: Any, image_index: int, query: str,
                     image_vector: np.ndarray | None) -> tuple[np.ndarray, list[float]]:
    """(region salience (K,), per-word match strength) of one (image, query) pair."""
    model = retriever.model
    image_batch = next(iter(retriever.image_loader(split, 1, [image_index])))
    with evaluation_mode(model):
        image_batch = to_device(image_batch, retriever.device)
        if hasattr(model, "explain_pair"):
            text_batch = to_device(next(iter(retriever.text_loader([query], 1))), retriever.device)
            out = model.explain_pair(image_batch, text_batch)
            attention = out["word_region"][0].float().cpu().numpy()  # (L tokens, K)
            word_strength = attention.max(axis=1).tolist()
            return out["region_salience"][0].float().cpu().numpy(), word_strength[: len(words_of(query))]
        outputs = model.image_outputs(image_batch) if hasattr(model, "image_outputs") else {}
    if "salience" not in outputs or image_vector is None:
        raise UserError(f"--explain: {retriever.name} exposes no region salience (3SHNet) or explain_pair (HiRE)")
    return outputs["salience"][0].float().cpu().numpy(), occlusion_word_scores(retriever, image_vector, query)


def draw_hit(picture: np.ndarray, boxes: np.ndarray, salience: np.ndarray, query: str, strengths: Sequence[float],
             title: str) -> np.ndarray:
    """The scene with its top salient boxes and the query (matched words in red) underneath."""
    h, w = picture.shape[:2]
    canvas = np.full((h * SCALE + BAND, w * SCALE, 3), 255, np.uint8)
    canvas[: h * SCALE] = cv2.resize(picture, (w * SCALE, h * SCALE), interpolation=cv2.INTER_NEAREST)
    top = np.argsort(-salience, kind="stable")[:TOP_REGIONS]
    peak = float(salience[top[0]]) if len(top) else 1.0
    for k in top[::-1]:
        x0, y0, x1, y1 = (np.asarray(boxes[k], np.float32) * SCALE).astype(int).tolist()
        strength = float(salience[k]) / peak if peak > 0 else 0.0
        colour = (255, int(200 * (1 - strength)), 0)
        cv2.rectangle(canvas, (x0, y0), (x1, y1), colour, 1 + int(3 * strength))
        cv2.putText(canvas, f"{salience[k]:.2f}", (x0 + 2, max(y0 + 12, 12)), cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, 1,
                    cv2.LINE_AA)
    words = words_of(query)
    matched = set(np.argsort(-np.asarray(strengths), kind="stable")[:TOP_WORDS].tolist()) if strengths else set()
    x, y = 6, h * SCALE + 20
    cv2.putText(canvas, title, (6, h * SCALE + 44), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (90, 90, 90), 1, cv2.LINE_AA)
    for i, word in enumerate(words):
        colour = (220, 0, 0) if i in matched else (0, 0, 0)
        (tw, _), _ = cv2.getTextSize(word + " ", cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
        if x + tw > canvas.shape[1] - 4:
            break
        cv2.putText(canvas, word, (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 2 if i in matched else 1, cv2.LINE_AA)
        x += tw
    return canvas


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of an RGB image (OpenCV encodes BGR)."""
    ok, data = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError("PNG encoding failed")
    return data.tobytes()


def explain_hits(retriever: Retriever, index: Index, result: SearchResult, queries: Sequence[str],
                 out_dir: str | Path) -> list[dict[str, Any]]:
    """Write ``q{query}_r{rank}_{id}.png`` for every hit of every text query; returns one record per PNG."""
    if index.kind != "images":
        raise UserError("--explain draws image hits; it needs an images index (text → image search)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cache, records = SplitCache(), []
    for q, query in enumerate(queries):
        for hit in result.hits(q):
            if "path" not in hit:
                raise UserError(f"--explain: image {hit['id']} has no rendered picture (SynScenes keeps images/{{id}}.png)")
            split = cache.get(hit["data"], hit["split"])
            vector = index.vectors[hit["row"]] if retriever.family == "two-tower" else None
            salience, strengths = pair_explanation(retriever, split, hit["index"], query, vector)
            picture = cv2.cvtColor(cv2.imread(hit["path"], cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
            boxes = (grid_boxes(picture.shape[1], picture.shape[0]) if len(salience) == GRID_SIDE ** 2 and split.boxes is None
                     else np.asarray(split.boxes[hit["index"]]) if split.boxes is not None else None)
            if boxes is None or len(boxes) != len(salience):
                raise UserError(f"--explain: no boxes for the {len(salience)} regions of image {hit['id']}")
            canvas = draw_hit(picture, boxes, salience, query, strengths,
                              f"#{hit['rank']} image {hit['id']}  score {hit['score']:.3f}  ({retriever.name})")
            file = out / f"q{q:03d}_r{hit['rank']:02d}_{hit['id']}.png"
            with atomic_open(file, "wb") as handle:
                handle.write(encode_png(canvas))
            words = words_of(query)
            order = np.argsort(-np.asarray(strengths), kind="stable")[:TOP_WORDS] if strengths else []
            records.append({"query": q, "rank": hit["rank"], "id": hit["id"], "png": str(file),
                            "matched_words": [words[i] for i in order],
                            "top_regions": [int(k) for k in np.argsort(-salience, kind="stable")[:TOP_REGIONS]]})
    return records

