"""FAU model architectures, registered by name (``--model algrnet|mgrrnet|vlfau``).

`build_model(name, config, num_aus, prior)` is the one constructor the trainer, evaluator, `fau info`
and predict use; `config` is the ``model:`` section of a YAML config (``fau/configs/``).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from shared.registry import Registry

MODELS: Registry = Registry("fau model")

# the model modules register themselves in MODELS on import (after MODELS exists)
from fau.models import algrnet as _algrnet  # noqa: E402,F401
from fau.models import mgrrnet as _mgrrnet  # noqa: E402,F401
from fau.models import vlfau as _vlfau  # noqa: E402,F401
from fau.models.base import FAUModel  # noqa: E402


def build_model(name: str, config: Mapping[str, Any], num_aus: int, prior: np.ndarray | None = None) -> FAUModel:
    """Build the registered model `name` from its ``model:`` config section.

    `num_aus` is the number of label columns (checked against the config's dataset AU set, or the
    PAU count for ALGRNet's paralysis task); `prior` is the (A, A) co-occurrence prior of the
    training folds (MGRR-Net with ``graph_init: prior``).
    """
    return MODELS.get(name)(config=config, num_aus=num_aus, prior=prior)


__all__ = ["MODELS", "FAUModel", "build_model"]
