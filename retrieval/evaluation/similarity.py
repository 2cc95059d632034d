"""Exact similarity matrices for the two model interfaces (docs/retrieval.md).

The evaluator and the search index talk to models only through these two protocols:

* `TwoTowerModel` — every image and every caption is embedded once (float32); the score is the
  dot product, computed in row chunks on the model's device.
* `PairwiseModel` — per-item features are encoded once, then (image block × caption block) tiles
  are scored by one batched `forward_sim` call each; the tile shape comes from a memory budget.
  There is never a per-caption Python loop, and the result does not depend on the tiling as long
  as the model scores every (image, caption) pair independently.

Features returned by `encode_images`/`encode_texts` are a tensor or a mapping of tensors, all with
the batch as first dimension.  Variable-length items (captions) are zero-padded; when encoded
batches of different lengths are joined into a tile they are zero-padded to the tile's maximum, so
a model must carry its own lengths or masks inside the features.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Iterable, Mapping, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from retrieval.evaluation.tiles import Shard, TileJournal
from shared.device import inference_mode, to_device
from shared.distributed import barrier

logger = logging.getLogger(__name__)

Features = torch.Tensor | Mapping[str, torch.Tensor]


@runtime_checkable
class TwoTowerModel(Protocol):
    """A model whose score is the dot product of independent image and text embeddings.

    `embed_images(batch)` returns (B, D) image embeddings and `embed_texts(batch)` (B, D) caption
    embeddings for whatever batch objects the model's data loader yields.  Normalise inside the
    model if the score is meant to be a cosine.
    """

    def embed_images(self, batch: Any) -> torch.Tensor:
        """(B, D) image embeddings of one loader batch."""

    def embed_texts(self, batch: Any) -> torch.Tensor:
        """(B, D) caption embeddings of one loader batch."""


@runtime_checkable
class PairwiseModel(Protocol):
    """A cross-attention model scoring (image, caption) pairs jointly.

    `encode_images(batch)` / `encode_texts(batch)` return per-item features (a tensor or a mapping
    of tensors, batch first; captions zero-padded and carrying their lengths or masks).
    `forward_sim(image_block, caption_block)` returns the (Bi, Bt) score tile of every image in
    the block against every caption in the block.  Every pair must be scored independently of the
    other items in the tile (no normalisation across the batch), so tiling never changes a score.
    A model may define `pair_bytes: int`, its working memory per (image, caption) pair, to size
    tiles; otherwise `estimate_pair_bytes` is used.
    """

    def encode_images(self, batch: Any) -> Features:
        """Per-image features (batch first), computed once per image."""

    def encode_texts(self, batch: Any) -> Features:
        """Per-caption features (batch first, zero-padded, with lengths/masks), computed once."""

    def forward_sim(self, image_block: Features, caption_block: Features) -> torch.Tensor:
        """(Bi, Bt) scores of every image in the block against every caption in the block."""


def model_device(model: Any) -> torch.device:
    """The device of the model's first parameter (CPU for parameter-free models)."""
    if isinstance(model, torch.nn.Module):
        for param in model.parameters():
            return param.device
    return torch.device("cpu")


def _embed_all(embed, batches: Iterable[Any], device: torch.device, desc: str, progress: bool) -> torch.Tensor:
    chunks = [embed(to_device(batch, device)).float() for batch in tqdm(batches, desc=desc, leave=False, disable=not progress)]
    return torch.cat(chunks, dim=0)


def two_tower_similarity(
    model: TwoTowerModel, image_batches: Iterable[Any], text_batches: Iterable[Any], chunk_size: int = 4096,
    progress: bool = True,
) -> np.ndarray:
    """(N_img, N_cap) float32 dot-product scores: each item embedded once, chunked matmul on device."""
    device = model_device(model)
    with _evaluating(model):
        images = _embed_all(model.embed_images, image_batches, device, "embed images", progress)
        texts = _embed_all(model.embed_texts, text_batches, device, "embed texts", progress)
        out = np.empty((images.shape[0], texts.shape[0]), dtype=np.float32)
        for start in range(0, images.shape[0], chunk_size):
            out[start : start + chunk_size] = (images[start : start + chunk_size] @ texts.T).cpu().numpy()
    return out


class FeatureBank:
    """Encoded features kept as their encoded chunks; `take(a, b)` joins items [a, b) into a tile."""

    def __init__(self, chunks: list[Features]):
        self.chunks = chunks
        sizes = [_batch_size(chunk) for chunk in chunks]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def item_numel(self) -> int:
        """Elements of one (padded) item summed over all feature tensors, from the first chunk."""
        first = self.chunks[0]
        tensors = first.values() if isinstance(first, Mapping) else [first]
        return int(sum(t[0].numel() for t in tensors))

    def take(self, start: int, stop: int) -> Features:
        """Items [start, stop) as one tile, chunks joined with zero padding to the tile maximum."""
        pieces = []
        first = int(np.searchsorted(self.offsets, start, side="right") - 1)
        for index in range(first, len(self.chunks)):
            lo, hi = self.offsets[index], self.offsets[index + 1]
            if lo >= stop:
                break
            pieces.append(_slice(self.chunks[index], max(start - lo, 0), min(stop, hi) - lo))
        return _concat(pieces)


def _batch_size(features: Features) -> int:
    tensor = next(iter(features.values())) if isinstance(features, Mapping) else features
    return int(tensor.shape[0])


def _slice(features: Features, a: int, b: int) -> Features:
    if isinstance(features, Mapping):
        return {key: value[a:b] for key, value in features.items()}
    return features[a:b]


def _pad_cat(tensors: list[torch.Tensor]) -> torch.Tensor:
    if len(tensors) == 1:
        return tensors[0]
    shape = [max(t.shape[d] for t in tensors) for d in range(1, tensors[0].ndim)]
    padded = []
    for t in tensors:
        pad = []
        for d in reversed(range(1, t.ndim)):
            pad.extend([0, shape[d - 1] - t.shape[d]])
        padded.append(F.pad(t, pad) if any(pad) else t)
    return torch.cat(padded, dim=0)


def _concat(pieces: list[Features]) -> Features:
    if isinstance(pieces[0], Mapping):
        return {key: _pad_cat([piece[key] for piece in pieces]) for key in pieces[0]}
    return _pad_cat(pieces)


def estimate_pair_bytes(image_bank: FeatureBank, text_bank: FeatureBank, factor: int = 4) -> int:
    """Working memory per (image, caption) pair when the model gives none: `factor` float32 copies
    of one image's plus one caption's features (a cross-attention pair materialises the attended
    context, of the order of either item's features "GPU memory per block")."""
    return 4 * factor * (image_bank.item_numel() + text_bank.item_numel())


def tile_shape(n_images: int, n_texts: int, pair_bytes: int, budget_bytes: int) -> tuple[int, int]:
    """Largest near-square (Bi, Bt) with Bi·Bt·pair_bytes ≤ budget (at least 1 × 1), capped by N."""
    pairs = max(1, budget_bytes // max(1, pair_bytes))
    side = max(1, math.isqrt(pairs))
    bi = min(n_images, side)
    bt = min(n_texts, max(1, pairs // bi))
    bi = min(n_images, max(bi, pairs // bt))
    return bi, bt


def pairwise_similarity(
    model: PairwiseModel,
    image_batches: Iterable[Any],
    text_batches: Iterable[Any],
    memory_budget_mb: float = 512.0,
    tile: tuple[int, int] | None = None,
    progress: bool = True,
    shard: Shard = Shard(),
    journal: TileJournal | None = None,
) -> np.ndarray:
    """(N_img, N_cap) float32 scores of a pairwise model over tiles.

    Items are encoded once; each tile is one `forward_sim(image_block, caption_block)` call.
    The tile shape is `tile` if given, else derived from `memory_budget_mb` and the model's
    `pair_bytes` (or `estimate_pair_bytes`).  With `shard` (under torchrun) this rank scores its
    share of the tiles and one all-reduce joins the shares; with `journal` finished tiles are kept
    on disk and reused by a rerun (`retrieval.evaluation.tiles`).
    """
    device = model_device(model)
    with _evaluating(model):
        images = FeatureBank([model.encode_images(to_device(b, device)) for b in tqdm(image_batches, desc="encode images", leave=False, disable=not progress)])
        texts = FeatureBank([model.encode_texts(to_device(b, device)) for b in tqdm(text_batches, desc="encode texts", leave=False, disable=not progress)])
        n_img, n_txt = len(images), len(texts)
        if tile is None:
            pair_bytes = int(getattr(model, "pair_bytes", 0)) or estimate_pair_bytes(images, texts)
            tile = tile_shape(n_img, n_txt, pair_bytes, int(memory_budget_mb * 2**20))
        bi, bt = tile
        if journal is not None:
            journal.open((bi, bt), (n_img, n_txt), create=shard.rank == 0)
            barrier()  # rank 0 has written the manifest before the others look for it
            journal.open((bi, bt), (n_img, n_txt), create=False)
        out = (np.empty if shard.world == 1 else np.zeros)((n_img, n_txt), dtype=np.float32)
        steps = shard.mine([(i, t) for i in range(0, n_img, bi) for t in range(0, n_txt, bt)])
        reused = 0
        for i, t in tqdm(steps, desc=f"score tiles {bi}x{bt}", leave=False, disable=not progress):
            shape = (min(i + bi, n_img) - i, min(t + bt, n_txt) - t)
            block = journal.load(i, t, shape) if journal is not None else None
            if block is None:
                block = model.forward_sim(images.take(i, i + shape[0]), texts.take(t, t + shape[1])).float().cpu().numpy()
                if journal is not None:
                    journal.save(i, t, block)
            else:
                reused += 1
            out[i : i + bi, t : t + bt] = block
        if reused:
            logger.info("reused %d of %d tiles from %s", reused, len(steps), journal.folder)
    if shard.world > 1:
        out = _sum_over_ranks(out, device)
    return out


def _sum_over_ranks(out: np.ndarray, device: torch.device) -> np.ndarray:
    """Join the ranks' shares: each pair was scored by exactly one rank and is 0 elsewhere."""
    import torch.distributed as dist

    target = device if dist.get_backend() == "nccl" else torch.device("cpu")
    total = torch.from_numpy(out).to(target)
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total.cpu().numpy()


def compute_similarity(model: Any, image_batches: Iterable[Any], text_batches: Iterable[Any], **kwargs: Any) -> np.ndarray:
    """Dispatch on the interface: `PairwiseModel` → tiled scoring, `TwoTowerModel` → dot products."""
    if isinstance(model, PairwiseModel):
        return pairwise_similarity(model, image_batches, text_batches, **kwargs)
    if isinstance(model, TwoTowerModel):
        return two_tower_similarity(model, image_batches, text_batches, **kwargs)
    raise TypeError(f"{type(model).__name__} implements neither TwoTowerModel nor PairwiseModel")


def _evaluating(model: Any) -> Any:
    """`shared.device.inference_mode` for a module; plain inference mode for a protocol-only scorer."""
    return inference_mode(model) if isinstance(model, torch.nn.Module) else torch.inference_mode()
