"""HiRE export: the image's strongest VSSG edges (thesis Eq. 7.6) and each caption's strongest word–region
attention pairs (Eq. 7.9)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from retrieval.data.pairs import CaptionStream, TextEncoding
from retrieval.data.precomp import PrecompSplit
from retrieval.explain.common import image_batch
from shared.explain import explain

TOP_PAIRS = 5   # HiRE word–region pairs per caption
TOP_EDGES = 10  # HiRE VSSG edges per image


def hire_pairs(attention: np.ndarray, words: Sequence[str], direction: str, boxes: np.ndarray | None,
               k: int = TOP_PAIRS) -> list[dict[str, Any]]:
    """Top-`k` word–region pairs of one HiRE (image, caption) pair by the first local–local attention β
    (Eq. 7.9): i2t rows are regions attending over words, t2i rows words over regions; [CLS]/[SEP] skipped."""
    by_region = attention if direction == "i2t" else attention.T                 # (K, n words)
    inner = by_region[:, 1 : len(words) - 1]
    pairs = []
    for flat in np.argsort(-inner, axis=None, kind="stable")[:k]:
        region, word = np.unravel_index(flat, inner.shape)
        entry: dict[str, Any] = {"word": words[word + 1], "position": int(word) + 1, "region": int(region),
                                 "weight": float(inner[region, word])}
        if boxes is not None:
            entry["box"] = [float(x) for x in boxes[region]]
        pairs.append(entry)
    return pairs


def hire_edges(edges: np.ndarray, adjacency: np.ndarray, boxes: np.ndarray | None, k: int = TOP_EDGES) -> list[dict[str, Any]]:
    """The `k` strongest VSSG edges (i ≠ j) of one image with their learned, row-normalised weight E_ij (Eq. 7.6, decision 'HiRE graph normalisation')."""
    rows, cols = np.nonzero(adjacency & ~np.eye(len(adjacency), dtype=bool))
    order = np.argsort(-edges[rows, cols], kind="stable")[:k]
    out = []
    for i, j in zip(rows[order], cols[order]):
        entry: dict[str, Any] = {"from": int(i), "to": int(j), "weight": float(edges[i, j])}
        if boxes is not None:
            entry["boxes"] = [[float(x) for x in boxes[i]], [float(x) for x in boxes[j]]]
        out.append(entry)
    return out


def _explain_hire(model: torch.nn.Module, split: PrecompSplit, indices: Sequence[int], context: dict[str, Any]
                  ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    text: TextEncoding = context["text"]
    images = []
    for i in indices:
        captions = split.image_captions(i)
        batch = image_batch(model, split, [i] * len(captions))
        stream = CaptionStream(captions, text)
        texts = stream.collate([stream[j] for j in range(len(stream))])
        details = explain(model, batch, texts, name=model.name)
        edges = details["edges"][0].cpu().numpy() if "edges" in details else None
        scores = details["scores"]
        attention = details["attention"][:, 0].cpu().numpy()                   # first interaction step
        boxes = None if split.boxes is None else np.asarray(split.boxes[i])
        entries = []
        for c, caption in enumerate(captions):
            n = int(texts["attention_mask"][c].sum())
            words = text.tokenizer.convert_ids_to_tokens(texts["input_ids"][c, :n].tolist())
            pair_attention = attention[c][:, :n] if model.direction == "i2t" else attention[c][:n]
            entries.append({"caption": 5 * i + c, "text": caption, "score": float(scores[c]),
                            "top_pairs": hire_pairs(pair_attention, words, model.direction, boxes)})
        entry: dict[str, Any] = {"captions": entries}
        if edges is not None:
            entry["graph_edges"] = hire_edges(edges, batch["region_graph"][0].numpy(), boxes)
        images.append(entry)
    return {"direction": model.direction, "graph": model.graph is not None, "boxes": split.boxes is not None}, images
