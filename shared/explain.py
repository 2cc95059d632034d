"""The one explanation interface of both tasks: a model's ``explain`` returns named tensors.

Explanations are outputs, never state kept on a module for someone to read later.  A model that can
explain defines ``explain(...)`` with the same inputs as its scoring call (FAU: an image batch;
retrieval: an image batch and a caption batch) and returns a dict of named tensors, batch first — for
example ``region_maps`` (B, A, h, w) of ALGRNet, ``attention`` (B, steps, N, M) of HiRE's cross-modal
reasoning.  Each task documents its names (docs/fau.md, docs/retrieval.md).  Every consumer
(`fau predict --overlay`, `retrieval search --explain`, `retrieval explain`) calls `explain` below,
so a model without the method is refused by name in one line instead of failing deep inside.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch

from shared.errors import UserError

Explanation = dict[str, torch.Tensor]


@runtime_checkable
class Explainer(Protocol):
    """A model that returns its interpretability tensors by name."""

    def explain(self, *inputs: Any) -> Explanation:
        """Named tensors (batch first) explaining the model's outputs for `inputs`."""


def can_explain(model: Any) -> bool:
    return callable(getattr(model, "explain", None))


def explain(model: Any, *inputs: Any, name: str | None = None) -> Explanation:
    """``model.explain(*inputs)`` without gradients; a one-line `UserError` naming the model if it has none."""
    if not can_explain(model):
        label = name or getattr(model, "name", "") or type(model).__name__
        raise UserError(f"model {label!r} does not explain its outputs (no explain method)")
    with torch.inference_mode():
        out = model.explain(*inputs)
    if not isinstance(out, dict):
        raise TypeError(f"{type(model).__name__}.explain must return a dict of named tensors, got {type(out).__name__}")
    return out
