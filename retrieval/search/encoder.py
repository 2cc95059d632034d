"""The Python face of a trained checkpoint: `retrieval.load(CKPT)` → `Retriever`.

Mirrors the command line (docs/retrieval.md): ``encode_images`` (a precomp split, a
feature array or a mapping of feature arrays) and ``encode_texts`` (raw strings) give l2-normalised
embeddings of a two-tower model (docs/retrieval.md, "The model boundary": the cosine is their dot product); ``score(images, texts)``
gives the (images × texts) score matrix for either family — two-tower by dot products, pairwise
(cross-attention) by batched ``forward_sim`` tiles (`retrieval.evaluation.similarity`).

Captions are encoded exactly as in evaluation (`TextEncoding`: GRU vocabulary ids with ``<unk>``
for unknown words, or BERT word pieces), truncated to the checkpoint's ``data.max_caption_length``;
an empty query is a one-line `UserError`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from retrieval.data.pairs import IMAGE_ARRAYS, CaptionStream, ImageStream, check_model_inputs
from retrieval.data.precomp import PrecompSplit
from retrieval.evaluation.similarity import FeatureBank, compute_similarity, model_device
from shared.device import inference_mode, to_device
from shared.checkpoint import checkpoint_paths
from shared.errors import UserError
from shared.training import progress as progress_bar

ImageInput = PrecompSplit | np.ndarray | Mapping[str, np.ndarray]
DEFAULT_BATCH = 128


def file_sha256(path: str | Path, block: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def image_source(images: ImageInput) -> Any:
    """A split-like object (`n_images` plus the `IMAGE_ARRAYS` attributes) for any image input.

    A bare array is region features (N, K, D); a mapping may use the model's input names
    (``regions``, ``grid``, ``segmentations``, ``seg_maps``, ``cat_onehots``, ``boxes``) or the
    split's (``images`` for regions); ``scene_graphs`` (a list of edge lists) feeds HiRE's region graph.
    """
    if isinstance(images, PrecompSplit):
        return images
    arrays = {"regions": images} if isinstance(images, np.ndarray) else dict(images)
    graphs = arrays.pop("scene_graphs", None)
    fields = {attr: None for attr in IMAGE_ARRAYS.values()}
    for key, value in arrays.items():
        attr = IMAGE_ARRAYS.get(key, key)
        if attr not in fields:
            raise UserError(f"image input {key!r}: unknown array (expected one of {', '.join(IMAGE_ARRAYS)})")
        fields[attr] = np.asarray(value)
    lengths = {len(v) for v in fields.values() if v is not None}
    if len(lengths) != 1:
        raise UserError(f"image input: arrays disagree on the number of images ({sorted(lengths)})")
    return SimpleNamespace(n_images=lengths.pop(), scene_graphs=graphs, **fields)


def check_queries(texts: Sequence[str]) -> list[str]:
    """The queries as a list; an empty or blank query is a one-line error naming it."""
    if isinstance(texts, str):
        raise UserError("encode_texts expects a list of strings, got one string")
    out = [str(t) for t in texts]
    for number, text in enumerate(out, start=1):
        if not text.strip():
            raise UserError(f"query {number} is empty")
    return out


class Retriever:
    """A loaded retrieval checkpoint with encode/score methods (the `retrieval.load` object)."""

    def __init__(self, model: torch.nn.Module, meta: Mapping[str, Any], text: Any, checkpoint: str | Path) -> None:
        self.model, self.meta, self.text = model, dict(meta), text
        self.checkpoint = Path(checkpoint)
        self._sha256: str | None = None

    @classmethod
    def load(cls, checkpoint: str | Path, device: str = "auto") -> "Retriever":
        """Rebuild a checkpoint (`retrieval.models.load_model`) on `device` (auto: CUDA when present)."""
        from retrieval.models import load_model

        model, meta, text = load_model(checkpoint, device)
        return cls(model, meta, text, checkpoint)

    @property
    def name(self) -> str:
        return str(self.meta["model"])

    @property
    def family(self) -> str:
        """``two-tower`` (indexable) or ``pairwise`` (re-ranking only)."""
        return str(getattr(self.model, "family", "two-tower"))

    @property
    def sha256(self) -> str:
        """sha256 of the checkpoint's weights file (recorded in index manifests)."""
        if self._sha256 is None:
            self._sha256 = file_sha256(checkpoint_paths(self.checkpoint)[0])
        return self._sha256

    @property
    def device(self) -> torch.device:
        return model_device(self.model)

    def require_two_tower(self, what: str) -> None:
        if self.family != "two-tower":
            raise UserError(f"{self.checkpoint}: {self.name} is a pairwise model and cannot {what}; "
                            f"index with a two-tower model and pass this one as --rerank")

    # -- loaders ------------------------------------------------------------------------------
    def image_loader(self, images: ImageInput, batch_size: int = DEFAULT_BATCH,
                     indices: Sequence[int] | None = None) -> DataLoader:
        """Batches of the model's image inputs (only the arrays it reads), optionally a subset."""
        source = image_source(images)
        check_model_inputs(source, self.model, "image input")
        stream = ImageStream(source, self.model.image_inputs())
        dataset = stream if indices is None else Subset(stream, [int(i) for i in indices])
        return DataLoader(dataset, batch_size=batch_size, collate_fn=stream.collate)

    def text_loader(self, texts: Sequence[str], batch_size: int = DEFAULT_BATCH) -> DataLoader:
        """Batches of encoded captions (vocabulary ids or word pieces, padded per batch)."""
        stream = CaptionStream(check_queries(texts), self.text)
        return DataLoader(stream, batch_size=batch_size, collate_fn=stream.collate)

    # -- embeddings (two-tower) -----------------------------------------------------------------
    def _embed(self, embed, loader: DataLoader, desc: str, progress: bool) -> np.ndarray:
        chunks = []
        with inference_mode(self.model):
            for batch in progress_bar(loader, desc, enabled=progress):
                chunks.append(embed(to_device(batch, self.device)).float().cpu().numpy())
        return np.concatenate(chunks, axis=0) if chunks else np.zeros((0, 0), np.float32)

    def encode_images(self, images: ImageInput, batch_size: int = DEFAULT_BATCH, progress: bool = False,
                      indices: Sequence[int] | None = None) -> np.ndarray:
        """(N, D) float32 l2-normalised image embeddings (two-tower models only)."""
        self.require_two_tower("embed images for an index")
        return self._embed(self.model.embed_images, self.image_loader(images, batch_size, indices), "encode images",
                           progress)

    def encode_texts(self, texts: Sequence[str], batch_size: int = DEFAULT_BATCH, progress: bool = False) -> np.ndarray:
        """(N, D) float32 l2-normalised caption embeddings of raw strings (two-tower models only)."""
        self.require_two_tower("embed captions for an index")
        return self._embed(self.model.embed_texts, self.text_loader(texts, batch_size), "encode texts", progress)

    # -- pairwise features ----------------------------------------------------------------------
    def image_features(self, images: ImageInput, indices: Sequence[int] | None = None,
                       batch_size: int = DEFAULT_BATCH) -> FeatureBank:
        """Per-image features of a pairwise model (`encode_images`), kept as a `FeatureBank`."""
        with inference_mode(self.model):
            return FeatureBank([self.model.encode_images(to_device(b, self.device))
                                for b in self.image_loader(images, batch_size, indices)])

    def text_features(self, texts: Sequence[str], batch_size: int = DEFAULT_BATCH) -> FeatureBank:
        """Per-caption features of a pairwise model (`encode_texts`), kept as a `FeatureBank`."""
        with inference_mode(self.model):
            return FeatureBank([self.model.encode_texts(to_device(b, self.device))
                                for b in self.text_loader(texts, batch_size)])

    # -- scores ---------------------------------------------------------------------------------
    def score(self, images: ImageInput, texts: Sequence[str], batch_size: int = DEFAULT_BATCH,
              progress: bool = False) -> np.ndarray:
        """(N_images, N_texts) float32 scores: cosine for two-tower, `forward_sim` tiles for pairwise."""
        return compute_similarity(self.model, self.image_loader(images, batch_size), self.text_loader(texts, batch_size),
                                  progress=progress)
