"""Description quality of a model with a language head (VL-FAU), as thesis Tab 5.4 reports it.

Teacher-forced top-5 word accuracy of the local and global decoders (the thesis does not define it
further: docs/fau.md, decision 'word top-5 accuracy') and the fraction of greedy local descriptions
whose active/inactive state matches the label (ours: decision 'description state').
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader

from fau.data.loader import AlignedFaceDataset
from shared.device import to_device


LANGUAGE_METRICS = ("word_top5_local", "word_top5_global", "description_state")


@torch.inference_mode()
def language_scores(model: torch.nn.Module, dataset: AlignedFaceDataset, batch_size: int,
                    device: torch.device) -> dict[str, Any]:
    """Description quality of a language-head model over `dataset` (whose items carry the model's
    token targets): each metric of ``model.language_statistics`` as a fraction, and the generated
    description of the first item as a sample."""
    model.eval()
    totals: dict[str, list[float]] = {}
    sample = None
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        batch = to_device(batch, device)
        outputs = model(batch["image"])
        for name, (hits, count) in model.language_statistics(outputs, batch).items():
            total = totals.setdefault(name, [0.0, 0.0])
            total[0] += hits
            total[1] += count
        if sample is None:
            sample = model.describe({k: v[:1] for k, v in outputs.items()}, dataset.data.columns)[0]
    scores: dict[str, Any] = {name: (hits / count if count else float("nan")) for name, (hits, count) in totals.items()}
    scores["sample"] = sample
    return scores
