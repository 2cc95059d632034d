"""Torch view of a prepared dataset: aligned crops → normalised training/evaluation batches.

Each item is a dict (the batch keys every FAU model reads, see `fau.models.base`):
``image`` float32 (3, crop, crop) normalised with mean = std = 0.5 (JAA-Net's normalisation),
``labels`` int64 (A,) in {-1, 0, 1}, ``landmarks`` float32 (49, 2) in crop pixels (zeros for a frame
without landmarks), ``landmark_mask`` bool (): the frame has ground-truth landmarks (a frame prepared
with ``--no-align`` may have none; `fau.losses.alignment_loss` skips it), ``index`` (row).
Training items take a random crop and a horizontal flip that also permutes the landmarks; the
randomness of item i in epoch e is drawn from a generator seeded by (seed, e, i), so a run resumed
at epoch e sees exactly the crops an uninterrupted run would.  Evaluation items take the centre crop.
The stored 200-px crops are first resized to ``image_size`` (the tiny CPU configs use smaller faces).

Optional, only when the trainer asks for them (VL-FAU): ``extras``, per-row tensors added to every
item under their own keys (the language-target tokens), and Cutout (DeVries & Taylor 2017): with
probability p one square of side s, centred uniformly in the training crop and clipped at its
border, set to 0 (the mean) after normalisation ("we randomly employ the cutout augmentation",
thesis §5.4.2; size and probability: docs/fau.md, decision 'Cutout').
"""

from __future__ import annotations

from typing import Mapping, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from fau.data.table import PreparedDataset
from fau.face.align import centre_crop, random_crop_flip
from fau.face.pipeline import load_image

MEAN = 0.5
STD = 0.5


def normalise(image: np.ndarray) -> torch.Tensor:
    """HxWx3 uint8 → (3, H, W) float32 in [-1, 1] (mean = std = 0.5)."""
    tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255.0)
    return tensor.sub_(MEAN).div_(STD)


class AlignedFaceDataset(Dataset):
    """Rows `indices` of a prepared dataset, as model-ready items (see the module docstring)."""

    def __init__(self, data: PreparedDataset, indices: Sequence[int], image_size: int, crop: int,
                 train: bool, seed: int = 0, cache: bool = False,
                 extras: Mapping[str, torch.Tensor] | None = None, cutout: tuple[int, float] = (0, 0.0)) -> None:
        if crop > image_size:
            raise ValueError(f"crop {crop} is larger than image_size {image_size}")
        self.data, self.indices = data, np.asarray(indices, dtype=np.int64)
        self.image_size, self.crop, self.train, self.seed = image_size, crop, train, seed
        self.labels = torch.from_numpy(data.labels().astype(np.int64))
        stored = int(data.meta.get("crop_size", 200))
        self.landmarks = (data.landmarks * (image_size / stored)).astype(np.float32)
        self.extras = dict(extras or {})
        self.cutout_size, self.cutout_prob = cutout
        self.epoch = 0
        self._cache: dict[int, np.ndarray] | None = {} if cache else None

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose random crops `__getitem__` draws (call before iterating)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.indices)

    def _image(self, row: int) -> np.ndarray:
        if self._cache is not None and row in self._cache:
            return self._cache[row]
        image = load_image(self.data.image_path(row))
        if image.shape[0] != self.image_size or image.shape[1] != self.image_size:
            image = cv2.resize(image, (self.image_size, self.image_size), interpolation=cv2.INTER_AREA)
        if self._cache is not None:
            self._cache[row] = image
        return image

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        row = int(self.indices[item])
        image, points = self._image(row), self.landmarks[row]
        rng = None
        if self.train:
            rng = np.random.default_rng([self.seed, self.epoch, row])
            image, points = random_crop_flip(image, points, self.crop, rng=rng)
        else:
            image, points = centre_crop(image, points, self.crop)
        tensor = normalise(image)
        if rng is not None and self.cutout_size > 0 and rng.random() < self.cutout_prob:
            cut_out(tensor, self.cutout_size, rng)
        return {
            "image": tensor,
            "labels": self.labels[row],
            "landmarks": torch.from_numpy(np.nan_to_num(points).astype(np.float32)),
            "landmark_mask": torch.tensor(bool(np.isfinite(points).all())),
            "index": torch.tensor(row),
            **{key: value[row] for key, value in self.extras.items()},
        }


def cut_out(image: torch.Tensor, size: int, rng: np.random.Generator) -> None:
    """Cutout in place: zero one `size` × `size` square of a (3, H, W) image, centred uniformly and
    clipped at the border (DeVries & Taylor 2017)."""
    h, w = image.shape[-2:]
    y, x = int(rng.integers(h)) - size // 2, int(rng.integers(w)) - size // 2
    image[:, max(0, y):min(h, y + size), max(0, x):min(w, x + size)] = 0.0
