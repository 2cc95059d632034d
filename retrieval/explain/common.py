"""What every explanation export shares: the selected images, their batches, the top-5 captions."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from retrieval.data.pairs import CaptionStream, TextEncoding, collate_images, image_item
from retrieval.data.precomp import PrecompSplit
from retrieval.evaluation.similarity import compute_similarity
from shared.errors import UserError

DEFAULT_IMAGES = 10
TOP_CAPTIONS = 5


def select_images(images: Sequence[int] | None, n_images: int, where: str) -> list[int]:
    """The requested image indices (default: the first ten), each checked against the split size."""
    if images is None:
        return list(range(min(DEFAULT_IMAGES, n_images)))
    chosen = [int(i) for i in images]
    if not chosen:
        raise UserError(f"--images: no image index given for {where}")
    bad = [i for i in chosen if not 0 <= i < n_images]
    if bad:
        raise UserError(f"--images: index {bad[0]} is out of range for {where} ({n_images} images, 0..{n_images - 1})")
    return chosen


def image_batch(model: torch.nn.Module, split: PrecompSplit, indices: Sequence[int]) -> dict[str, torch.Tensor]:
    keys = model.image_inputs()
    return collate_images([image_item(split, i, keys) for i in indices])


def caption_scores(model: torch.nn.Module, split: PrecompSplit, indices: Sequence[int], text: TextEncoding,
                   batch_size: int, progress: bool) -> np.ndarray:
    """(len(indices), n_captions) scores of the selected images against every caption of the split,
    with the evaluator's similarity (`retrieval.evaluation.compute_similarity`, docs/retrieval.md)."""
    captions = CaptionStream(split.captions, text)
    loader = DataLoader(captions, batch_size=batch_size, collate_fn=captions.collate)
    images = [image_batch(model, split, indices[start:start + batch_size])
              for start in range(0, len(indices), batch_size)]
    with torch.inference_mode():
        return compute_similarity(model, images, loader, progress=progress)


def retrieved_captions(row: np.ndarray, index: int, captions: Sequence[str], k: int = TOP_CAPTIONS) -> list[dict[str, Any]]:
    """Top-`k` captions of image `index` by its score row; caption j is ground truth when j // 5 == index (the five captions per image of the F30K / COCO layouts)."""
    order = np.argsort(-row, kind="stable")[:k]
    return [{"caption": int(j), "text": captions[j], "score": float(row[j]), "ground_truth": int(j) // 5 == index}
            for j in order]
