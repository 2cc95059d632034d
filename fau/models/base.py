"""The boundary every FAU model implements (docs/fau.md, "The model boundary").

A model is an ``nn.Module`` built from a frozen dataclass config (its ``Config``, the ``model:``
section of a YAML file) plus the runtime sizes of the data: ``Model(Model.Config(...), num_aus=12,
prior=None)``, or ``Model.from_config(section, num_aus=..., prior=...)`` from a YAML mapping.

* ``forward(images)`` takes a normalised batch (B, 3, H, W) (mean = std = 0.5, `fau.data.loader`) and
  returns a dict of named tensors: ``au_logits`` (B, A), the final per-AU logit the trainer, metrics
  and predict read; ``landmarks`` (B, 49, 2) in crop pixels for the alignment models; and
  model-specific extras (``au_logits_local``, ``region_maps``, ``grade_logits`` ...).
* ``training_losses(outputs, batch)`` returns every named loss plus ``total`` (the one the trainer
  back-propagates). ``batch`` carries ``image``, ``labels`` (B, A) in {-1, 0, 1}, ``landmarks``
  (B, 49, 2), ``au_weights`` (A,) and, for the paralysis task, ``grades`` and ``grade_weights``.
* ``explain(images)``, on models that explain: the interpretability tensors by name, batch first
  (ALGRNet / MGRR-Net ``region_maps``, ``region_centres``, ``region_scales``, ``landmarks``; VL-FAU
  ``dair_maps``); consumers call `shared.explain.explain`, which refuses other models by name.
* ``describe(outputs, labels)``: generated descriptions for models with a language head (VL-FAU).

Losses and metrics read names, never positions; the trainer knows no model.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar, Mapping, Sequence

import torch
from torch import nn

from fau.aus import resolve_aus
from shared.config import from_dict
from shared.errors import UserError


class FAUModel(nn.Module, abc.ABC):
    """Base of every FAU model: construction from a config, input checking, the boundary above."""

    #: model name in `fau.models.MODELS`
    name: ClassVar[str] = ""
    #: the frozen dataclass of the ``model:`` config section
    Config: ClassVar[type]

    def __init__(self, num_aus: int, input_size: int) -> None:
        super().__init__()
        self.num_aus, self.input_size = num_aus, input_size

    @classmethod
    def from_config(cls, section: Mapping[str, Any], **runtime: Any) -> "FAUModel":
        """The model from a ``model:`` mapping, read strictly into ``cls.Config`` (one-line errors
        naming the dotted key), and the runtime sizes (``num_aus``, ``prior``)."""
        return cls(from_dict(cls.Config, section, "model"), **runtime)

    @classmethod
    def without_pretrained(cls, section: Mapping[str, Any]) -> dict[str, Any]:
        """The ``model:`` section with its pretrained-weight sources switched off, for building a
        model whose every tensor is about to come from a checkpoint (`fau.models.load_model`) or
        that is only counted (`fau info`); models without pretrained parts return it unchanged."""
        return dict(section)

    @classmethod
    def num_outputs(cls, config: Any) -> int:
        """How many label columns a model of `config` predicts (the dataset's AU count by default)."""
        return len(resolve_aus(config.dataset))

    def check_images(self, images: torch.Tensor) -> None:
        """Raise a one-line error unless `images` is (B, 3, input_size, input_size)."""
        expected = (3, self.input_size, self.input_size)
        if images.ndim != 4 or tuple(images.shape[1:]) != expected:
            raise UserError(f"{self.name}: expected images (B, {', '.join(map(str, expected))}), "
                            f"got {tuple(images.shape)}")

    @abc.abstractmethod
    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Named outputs for a (B, 3, H, W) batch (see the module docstring)."""

    @abc.abstractmethod
    def training_losses(self, outputs: Mapping[str, torch.Tensor],
                        batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Every named loss of this model plus ``total`` (the one the trainer back-propagates)."""

    def describe(self, outputs: Mapping[str, torch.Tensor], labels: Sequence[str],
                 decoding: str = "greedy") -> list[dict[str, Any]] | None:
        """Generated natural-language descriptions, one dict per image of the batch ``outputs`` came from:
        ``{"global": str, "local": {label: str, ...}}`` (label = "AU1", ... in `labels` order).

        ``None`` for models without a language head (ALGRNet, MGRR-Net); VL-FAU overrides it
        (`decoding` = "greedy" or "beam").
        """
        return None


def check_label_count(name: str, dataset: str, regions: int, num_aus: int) -> None:
    """A model's AU (or PAU) count must equal the data's label count (one-line error otherwise)."""
    if regions != num_aus:
        raise UserError(f"{name}: model.dataset {dataset!r} has {regions} AUs but the data has {num_aus} labels")
