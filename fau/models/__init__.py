"""FAU model architectures, registered by name (``--model algrnet|mgrrnet|vlfau``) with their configs.

`build_model(name, section, num_aus, prior)` builds a registered model from the ``model:`` section
of a YAML config (``fau/configs/``); `load_model(checkpoint, device)` rebuilds a trained one from
its checkpoint. In Python a model is built with plain arguments, e.g.
``ALGRNet(ALGRNetConfig(fusion=FusionConfig(mode="simple")), num_aus=12)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

# the model modules register themselves in MODELS on import
from fau.models import algrnet as _algrnet  # noqa: F401
from fau.models import mgrrnet as _mgrrnet  # noqa: F401
from fau.models import vlfau as _vlfau  # noqa: F401
from fau.models.base import FAUModel
from fau.models.registry import CONFIG_DIR, MODELS
from shared.config import from_dict


def build_model(name: str, section: Mapping[str, Any], num_aus: int, prior: np.ndarray | None = None) -> FAUModel:
    """Build the registered model `name` from its ``model:`` config section.

    `num_aus` is the number of label columns (checked against the config's dataset AU set, or the
    PAU count for ALGRNet's paralysis task); `prior` is the (A, A) co-occurrence prior of the
    training folds (MGRR-Net with ``graph_init: prior``).
    """
    return MODELS.get(name).cls.from_config(section, num_aus=num_aus, prior=prior)


def output_count(name: str, section: Mapping[str, Any], labels: Sequence[str]) -> int:
    """The runtime size `name` is built with: the data's label count for AU models; for ALGRNet's
    paralysis task its paralysis-AU (PAU) count, since the grades are one label column."""
    cls = MODELS.get(name).cls
    if section.get("task", "au") == "paralysis":
        return cls.num_outputs(from_dict(cls.Config, section, "model"))
    return len(labels)


def load_model(checkpoint: str | Path, device: str | torch.device = "cpu") -> tuple[FAUModel, dict[str, Any]]:
    """Rebuild a trained FAU model from its checkpoint (weights checked tensor by tensor), in eval mode
    on `device`; returns (model, sidecar metadata)."""
    from shared.checkpoint import load_checkpoint, load_state_strict
    from shared.device import resolve_device
    from shared.errors import UserError

    tensors, meta = load_checkpoint(checkpoint)
    prior = np.asarray(meta["prior"], dtype=np.float32) if meta.get("prior") is not None else None
    section = MODELS.get(meta["model"]).cls.without_pretrained(meta["config"]["model"])
    model = build_model(meta["model"], section, num_aus=output_count(meta["model"], section, meta["labels"]),
                        prior=prior)
    wanted = getattr(getattr(model, "vocab", None), "version", None)
    if wanted is not None and meta.get("template_version") not in (None, wanted):
        raise UserError(f"{checkpoint}: trained with language template {meta['template_version']!r}, "
                        f"but model.language.template now gives {wanted!r}")
    load_state_strict(model, tensors, checkpoint)
    return model.to(resolve_device(device) if isinstance(device, str) else device).eval(), meta


__all__ = ["CONFIG_DIR", "MODELS", "FAUModel", "build_model", "load_model", "output_count"]
