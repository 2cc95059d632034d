"""Device choice and mixed precision: CUDA when present, CPU otherwise, always overridable."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Mapping

import torch

from shared.errors import UserError


def resolve_device(name: str | None = "auto") -> torch.device:
    """Return the device for `name`: ``auto`` (cuda → cpu), ``cpu``, ``cuda`` or ``cuda:N``."""
    if name in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"--device {name!r} is not a device name (use auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name!r}: CUDA is not available on this machine")
    return device


def autocast(device: torch.device, enabled: bool = True) -> contextlib.AbstractContextManager:
    """Float16 autocast on CUDA; a no-op context on CPU or when `enabled` is False."""
    if enabled and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def grad_scaler(device: torch.device, enabled: bool = True) -> torch.amp.GradScaler:
    """A gradient scaler that is active only with CUDA autocast (inert on CPU)."""
    return torch.amp.GradScaler(device.type, enabled=enabled and device.type == "cuda")


@contextlib.contextmanager
def inference_mode(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Evaluate `model` without gradients, restoring its train/eval mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            yield model
    finally:
        model.train(was_training)


def to_device(batch: Any, device: torch.device | str) -> Any:
    """Move every tensor inside a (nested) dict / list / tuple to `device`; other values pass through."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, Mapping):
        return {key: to_device(value, device) for key, value in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(value, device) for value in batch)
    return batch
