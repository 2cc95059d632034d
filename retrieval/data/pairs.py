"""Torch views of a precomputed split: (image, caption) training pairs and the evaluation streams.

Training items are captions: item j is caption j with its image j // 5 (the SCAN rule), so an
epoch visits every caption once and every image five times.  Evaluation reads every image once
and every caption once (`ImageStream`, `CaptionStream`).  Only the image arrays the model reads
(`TwoTowerRetrievalModel.image_inputs`) are touched, from memory-mapped files.

Captions become either vocabulary ids (GRU models: ``tokens`` with ``<start>``/``<end>``, ``lengths``)
or BERT word pieces (``input_ids``, ``attention_mask``), padded per batch by `collate_*`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from retrieval.data.inputs import ImageInputs
from retrieval.data.precomp import PrecompSplit
from retrieval.data.vocab import Vocabulary
from retrieval.parsing.region_graph import IOU_THRESHOLD, region_adjacency, scene_graph_adjacency

IMAGE_ARRAYS = {"regions": "images", "grid": "grid", "segmentations": "segmentations",
                "seg_maps": "seg_maps", "cat_onehots": "cat_onehots", "boxes": "boxes", "region_graph": "boxes"}


@dataclass
class TextEncoding:
    """How captions become ids: a vocabulary (``tokens``) or a BERT tokenizer (``bert``)."""

    kind: str
    vocab: Vocabulary | None = None
    tokenizer: Any = None
    max_length: int = 64

    def encode(self, caption: str) -> list[int]:
        if self.kind == "tokens":
            return list(self.vocab.encode(caption))[: self.max_length]
        return self.tokenizer(caption, truncation=True, max_length=self.max_length)["input_ids"]

    @property
    def pad_id(self) -> int:
        return 0 if self.kind == "tokens" else int(self.tokenizer.pad_token_id)


def region_graph_item(split: PrecompSplit, index: int, iou_threshold: float = IOU_THRESHOLD) -> torch.Tensor:
    """(R, R) bool VSSG adjacency of image `index` (HiRE, docs/retrieval.md#hire): IoU > μ (`iou_threshold`,
    the model's ``model.iou_threshold``; 0.4 in the thesis §7.5.1) edges of ``{split}_boxes.npy`` plus the
    ``{split}_scene_graphs.jsonl`` edges (when present) with their closure."""
    boxes = np.asarray(split.boxes[index])
    semantic = None
    if split.scene_graphs is not None:
        semantic = scene_graph_adjacency([split.scene_graphs[index]], boxes.shape[0])[0]
    return torch.from_numpy(region_adjacency(boxes, threshold=iou_threshold, semantic=semantic))


def image_item(split: PrecompSplit, index: int, keys: Sequence[str]) -> dict[str, torch.Tensor]:
    """The image arrays of image `index` named by `keys` (``region_mask`` and ``region_graph`` are derived;
    the graph with the μ of `keys` when it is a model's `ImageInputs`)."""
    item: dict[str, torch.Tensor] = {}
    for key in keys:
        if key == "region_mask":
            continue
        if key == "region_graph":
            item[key] = region_graph_item(split, index, ImageInputs.of(keys).iou_threshold)
            continue
        array = getattr(split, IMAGE_ARRAYS[key])
        if array is None:
            raise KeyError(key)
        value = np.asarray(array[index])
        item[key] = torch.from_numpy(value.astype(np.int64 if key == "seg_maps" else np.float32))
    if "region_mask" in keys:
        item["region_mask"] = torch.ones(item["regions"].shape[0], dtype=torch.bool)
    return item


def check_image_inputs(split: PrecompSplit, keys: Sequence[str], where: str) -> None:
    """One-line error when the model needs an array the split does not have."""
    from shared.errors import UserError

    for key in keys:
        if key != "region_mask" and getattr(split, IMAGE_ARRAYS[key]) is None:
            file = {"regions": "ims", "region_graph": "boxes"}.get(key, key)
            raise UserError(f"{where}: the model needs {key!r} but the split has no such array "
                            f"(file {{split}}_{file}.npy)")


def model_feature_dim(model: Any) -> int | None:
    """Size of the feature vectors the model's region (or grid-cell) projection reads, None if unknown.

    Every model here projects regions with ``region_encoder`` (`RegionEncoder`, its ``fc``) or HiRE's
    ``region_fc``; the input size of that linear layer is the feature dimension it was built for.
    """
    for attr in ("region_encoder", "region_fc"):
        layer = getattr(model, attr, None)
        layer = getattr(layer, "fc", layer)
        if isinstance(layer, torch.nn.Linear):
            return int(layer.in_features)
    return None


def check_model_inputs(split: Any, model: Any, where: str) -> None:
    """`check_image_inputs` for `model`, then its feature dimension against the split's region / grid arrays.

    A mismatch (e.g. 1024-d features for a model built for 2048-d BUTD features) is a one-line
    `UserError` naming the file and both sizes, not a matrix-shape error deep in the model.
    """
    from shared.errors import UserError

    keys = model.image_inputs()
    check_image_inputs(split, keys, where)
    expected = model_feature_dim(model)
    if expected is None:
        return
    for key in ("regions", "grid"):
        array = getattr(split, IMAGE_ARRAYS[key]) if key in keys else None
        if array is None or array.shape[-1] == expected:
            continue
        file = split.array_file(IMAGE_ARRAYS[key]) if isinstance(split, PrecompSplit) else f"{where} {key!r}"
        raise UserError(f"{file}: features are {array.shape[-1]}-d but the model expects {expected}-d "
                        f"(its region_dim / feature_dim)")


def collate_images(items: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {key: torch.stack([item[key] for item in items]) for key in items[0]}


def collate_texts(items: Sequence[dict[str, Any]], pad_id: int, kind: str) -> dict[str, torch.Tensor]:
    ids = [item["ids"] for item in items]
    longest = max(len(x) for x in ids)
    padded = torch.full((len(ids), longest), pad_id, dtype=torch.long)
    for row, seq in enumerate(ids):
        padded[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
    lengths = torch.tensor([len(x) for x in ids], dtype=torch.long)
    if kind == "tokens":
        out = {"tokens": padded, "lengths": lengths}
    else:
        out = {"input_ids": padded, "attention_mask": (torch.arange(longest)[None, :] < lengths[:, None]).long()}
    if "tree_labels" in items[0]:
        out["tree_labels"] = torch.stack([item["tree_labels"] for item in items])
    return out


class PairDataset(Dataset):
    """Caption j paired with image j // 5 (training)."""

    def __init__(self, split: PrecompSplit, text: TextEncoding, image_keys: Sequence[str],
                 tree_labels: np.ndarray | None = None) -> None:
        self.split, self.text, self.image_keys = split, text, ImageInputs.of(image_keys)
        self.tree_labels = None if tree_labels is None else torch.from_numpy(np.asarray(tree_labels, dtype=np.int64))
        self.encoded = [text.encode(c) for c in split.captions]

    def __len__(self) -> int:
        return self.split.n_captions

    def __getitem__(self, j: int) -> dict[str, Any]:
        image = int(self.split.caption_image[j])
        item: dict[str, Any] = {"image": image_item(self.split, image, self.image_keys), "ids": self.encoded[j],
                                "image_id": image, "index": j}
        if self.tree_labels is not None:
            item["tree_labels"] = self.tree_labels[j]
        return item

    def collate(self, items: Sequence[dict[str, Any]]) -> dict[str, Any]:
        return {"images": collate_images([i["image"] for i in items]),
                "texts": collate_texts(items, self.text.pad_id, self.text.kind),
                "image_ids": torch.tensor([i["image_id"] for i in items], dtype=torch.long)}


class ImageStream(Dataset):
    """Every image of a split once (evaluation, index building)."""

    def __init__(self, split: PrecompSplit, image_keys: Sequence[str]) -> None:
        self.split, self.image_keys = split, ImageInputs.of(image_keys)

    def __len__(self) -> int:
        return self.split.n_images

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return image_item(self.split, i, self.image_keys)

    collate: Callable = staticmethod(collate_images)


class CaptionStream(Dataset):
    """Every caption of a split once (evaluation); tree labels are not needed to embed."""

    def __init__(self, captions: Sequence[str], text: TextEncoding) -> None:
        self.text = text
        self.encoded = [text.encode(c) for c in captions]

    def __len__(self) -> int:
        return len(self.encoded)

    def __getitem__(self, j: int) -> dict[str, Any]:
        return {"ids": self.encoded[j]}

    def collate(self, items: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        return collate_texts(items, self.text.pad_id, self.text.kind)
