"""HiRE's extra cross-modal negatives: K images and K captions from outside each training batch.

The thesis §7.5.1: "Similar to Qu et al. (2021), during the training process, we also add some negative
samples from another modality for each query with the same number as the batch size."  For every batch
`ExtraNegatives.collate` draws K training images and K training captions whose image is none of the
batch's images (so no extra is ever a positive of a query), and adds them under ``batch["extra"]``:

    {"images": image arrays (K, ...), "texts": word pieces / tokens (K, L),
     "image_ids": (K,) the extra images' indices, "text_image_ids": (K,) the extra captions' images}

Each image query is then scored against the batch captions plus the K extra captions, each caption
query against the batch images plus the K extra images (`retrieval.models.hire.HiRE.forward`,
`retrieval.losses.RankingLoss.from_scores`).  Draws are uniform without replacement over the allowed
items and a function of (seed, epoch, rank, the batch's caption indices) only — the same on a resumed
run, in a loader worker or in the main process, and different on each DDP rank.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from retrieval.data.pairs import PairDataset, collate_images, collate_texts, image_item
from retrieval.data.precomp import CAPTIONS_PER_IMAGE


def draw_outside(rng: np.random.Generator, population: int, count: int, excluded: np.ndarray,
                 owner: np.ndarray | None = None, per_owner: int = 1) -> np.ndarray:
    """`count` distinct indices of ``range(population)`` whose owner (``owner[i]``, default i) is not in
    `excluded`, uniformly without replacement: the first `count` allowed entries of a random ordered draw
    that is long enough to survive removing every excluded index (`per_owner` indices per excluded owner)."""
    excluded = np.unique(excluded)
    draw = rng.choice(population, size=min(population, count + per_owner * len(excluded)), replace=False)
    owners = draw if owner is None else owner[draw]
    kept = draw[~np.isin(owners, excluded)][:count]
    if len(kept) < count:
        raise ValueError(f"only {len(kept)} of {population} items lie outside the batch; {count} extra negatives asked")
    return kept.astype(np.int64)


class ExtraNegatives:
    """The training collate with extra negatives (module docstring): `pairs`' batch + ``batch["extra"]``."""

    def __init__(self, pairs: PairDataset, count: int, seed: int, rank: int = 0) -> None:
        if count < 1:
            raise ValueError(f"extra negatives: count {count} < 1")
        self.pairs, self.count, self.seed, self.rank = pairs, int(count), int(seed), int(rank)
        self.caption_image = pairs.split.caption_image
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Draws of epoch `epoch` (call before the epoch's loader iterator starts its workers)."""
        self.epoch = int(epoch)

    def sample(self, caption_indices: Sequence[int], image_ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """(extra image indices (K,), extra caption indices (K,)) for a batch of caption / image indices."""
        entropy = [self.seed, self.epoch, self.rank, *(int(j) for j in caption_indices)]
        rng = np.random.default_rng(np.random.SeedSequence(entropy))
        excluded = np.asarray(image_ids, dtype=np.int64)
        images = draw_outside(rng, self.pairs.split.n_images, self.count, excluded)
        captions = draw_outside(rng, self.pairs.split.n_captions, self.count, excluded,
                                owner=self.caption_image, per_owner=CAPTIONS_PER_IMAGE)
        return images, captions

    def collate(self, items: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """`PairDataset.collate` of `items` plus their extra negatives under ``"extra"``."""
        batch = self.pairs.collate(items)
        images, captions = self.sample([item["index"] for item in items], batch["image_ids"].tolist())
        pairs = self.pairs
        batch["extra"] = {
            "images": collate_images([image_item(pairs.split, int(i), pairs.image_keys) for i in images]),
            "texts": collate_texts([{"ids": pairs.encoded[int(j)]} for j in captions], pairs.text.pad_id, pairs.text.kind),
            "image_ids": torch.from_numpy(images),
            "text_image_ids": torch.from_numpy(self.caption_image[captions]),
        }
        return batch
