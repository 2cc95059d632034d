"""Search explanations on SynScenes: one PNG per hit with region salience and the matched words.

For each hit the rendered scene (``images/{id:06d}.png`` beside the precomp folder) is drawn with
the model's most salient regions (their boxes, line strength ∝ salience) and the query below it,
the words that matched highlighted.  Both come from the model's ``explain(images, texts)`` through
`shared.explain.explain` (a model without one is refused by name in one line):

* two-tower models give a per-region weight — 3SHNet's VSeM salience α_i (``salience``, thesis Eq. 8.2)
  or SMFEA's region pooling weights (``region_attention``, Eq. 6.1–6.3); a word's match strength is
  occlusion: the drop of the cosine when the word is deleted from the query;
* cross-attention models give a word × region map — HSLM's ``cross_attention`` (B, M, K) (Eq. 16), HiRE's
  first-step ``attention`` β (Eq. 7.8; i2t: regions × words, t2i: words × regions); a region's salience is
  its mean attention over the words, a word's match strength its largest weight over the regions.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from retrieval.data.precomp import GRID_SIDE
from retrieval.search.encoder import Retriever
from retrieval.search.index import Index, SearchResult
from retrieval.search.rerank import SplitCache
from shared.device import to_device
from shared.errors import UserError
from shared.explain import explain
from shared.io import atomic_open

SCALE = 4  # ours: upscaling of the 192 × 128 SynScenes render for legible overlays
TOP_REGIONS = 5  # ours: salient regions drawn per hit
TOP_WORDS = 3  # ours: words highlighted as matched
BAND = 56  # pixel height of the caption band under the scene


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


def word_region_map(explanation: dict[str, Any], model: Any) -> np.ndarray | None:
    """(words, regions) attention of the first pair of a cross-attention model's explanation, or None."""
    if "cross_attention" in explanation:                                        # HSLM (B, M, K)
        return explanation["cross_attention"][0].float().cpu().numpy()
    if "attention" in explanation:                                              # HiRE (B, steps, N, M)
        first = explanation["attention"][0, 0].float().cpu().numpy()
        return first.T if getattr(model, "direction", "i2t") == "i2t" else first
    return None


def pair_explanation(retriever: Retriever, split: Any, image_index: int, query: str,
                     image_vector: np.ndarray | None) -> tuple[np.ndarray, list[float]]:
    """(region salience (K,), per-word match strength) of one (image, query) pair (module docstring)."""
    model = retriever.model
    image_batch = to_device(next(iter(retriever.image_loader(split, 1, [image_index]))), retriever.device)
    text_batch = to_device(next(iter(retriever.text_loader([query], 1))), retriever.device)
    was_training = model.training
    model.eval()
    try:
        explanation = explain(model, image_batch, text_batch, name=retriever.name)
    finally:
        model.train(was_training)
    words = words_of(query)
    attention = word_region_map(explanation, model)
    if attention is not None:
        rows = attention[1:]                                  # skip <start> / [CLS]: words follow in order
        return attention.mean(axis=0), rows.max(axis=1).tolist()[: len(words)]
    salience = explanation.get("salience", explanation.get("region_attention"))
    if salience is None or image_vector is None:
        raise UserError(f"--explain: {retriever.name} gives no region salience or word-region attention "
                        f"(it explains {', '.join(sorted(explanation))})")
    return salience[0].float().cpu().numpy(), occlusion_word_scores(retriever, image_vector, query)


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

