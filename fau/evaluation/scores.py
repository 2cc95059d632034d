"""AU probabilities of a model over a dataset and their per-AU / macro scores.

Scores are F1-frame, accuracy and ROC-AUC per AU at threshold 0.5, accumulated over the whole split
with unknown labels (−1) skipped, and their macro averages (thesis §2.2.3 and §4.4.2 for the metrics;
threshold and aggregation: docs/fau.md, decision 'decision threshold'). Evaluation runs on every
rank: each rank scores its share of the rows and the probabilities are gathered in row order.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from fau.data.loader import AlignedFaceDataset
from shared.distributed import DistInfo, all_gather_concat
from shared.errors import UserError
from shared.metrics import MultilabelCounts


@torch.inference_mode()
def predict_dataset(model: torch.nn.Module, dataset: AlignedFaceDataset, batch_size: int,
                    info: DistInfo) -> tuple[np.ndarray, np.ndarray]:
    """AU probabilities and labels for every item, sharded over ranks and gathered in row order."""
    was_training = model.training
    model.eval()
    shard = Subset(dataset, range(info.rank, len(dataset), info.world_size))
    probs, labels, rows = [], [], []
    for batch in DataLoader(shard, batch_size=batch_size, shuffle=False):
        outputs = model(batch["image"].to(info.device))
        probs.append(torch.sigmoid(outputs["au_logits"].float()).cpu())
        labels.append(batch["labels"])
        rows.append(batch["index"])
    model.train(was_training)
    if not probs:
        raise UserError(f"no frames to evaluate ({len(dataset)} in the split)")
    prob, label, row = (all_gather_concat(torch.cat(x).to(info.device)).cpu() for x in (probs, labels, rows))
    order = torch.argsort(row)
    return prob[order].numpy(), label[order].numpy()


def score_rows(model: torch.nn.Module, dataset: AlignedFaceDataset, batch_size: int, info: DistInfo,
               names: list[str]) -> dict[str, dict[str, float]]:
    """Per-AU and macro F1 / accuracy / AUC of `model` on `dataset` (all ranks, gathered)."""
    probs, labels = predict_dataset(model, dataset, batch_size, info)
    counts = MultilabelCounts(len(names))
    counts.update(probs, labels)
    return counts.summary(names)
