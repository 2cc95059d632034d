"""HSLM export: every word's SAF gate (HSLM paper Eq. 21) and most-attended region (Eq. 16) per caption."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from retrieval.data.pairs import CaptionStream, TextEncoding
from retrieval.data.precomp import PrecompSplit
from retrieval.explain.common import image_batch
from shared.explain import explain


def hslm_caption(words: Sequence[str], gates: np.ndarray, global_gate: float, attention: np.ndarray, score: float,
                 boxes: np.ndarray | None) -> dict[str, Any]:
    """One (image, caption) pair of HSLM: every word with its SAF gate (Eq. 21, decision 'HSLM similarity head'), its share of the
    gated sum and its most-attended region (Eq. 16), plus the global-alignment gate and the score."""
    total = float(gates.sum() + global_gate)
    entries = []
    for j, word in enumerate(words):
        k = int(np.argmax(attention[j]))
        region: dict[str, Any] = {"index": k, "weight": float(attention[j, k])}
        if boxes is not None:
            region["box"] = [float(x) for x in boxes[k]]
        entries.append({"word": word, "gate": float(gates[j]), "weight": float(gates[j]) / max(total, 1e-12),
                        "top_region": region})
    return {"score": score, "global_gate": global_gate, "words": entries}


def _explain_hslm(model: torch.nn.Module, split: PrecompSplit, indices: Sequence[int], context: dict[str, Any]
                  ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    text: TextEncoding = context["text"]
    images = []
    for i in indices:
        captions = split.image_captions(i)
        stream = CaptionStream(captions, text)
        texts = stream.collate([stream[j] for j in range(len(stream))])
        details = explain(model, image_batch(model, split, [i] * len(captions)), texts, name="hslm")
        boxes = None if split.boxes is None else np.asarray(split.boxes[i])
        entries = []
        for c, caption in enumerate(captions):
            n = int(texts["lengths"][c])
            words = text.vocab.decode(texts["tokens"][c, :n].tolist(), skip_specials=False)
            entry = hslm_caption(words, details["word_gates"][c, :n].cpu().numpy(), float(details["global_gate"][c]),
                                 details["cross_attention"][c, :n].cpu().numpy(), float(details["scores"][c]), boxes)
            entries.append({"caption": 5 * i + c, "text": caption, **entry})
        images.append({"captions": entries})
    return {"boxes": split.boxes is not None}, images
