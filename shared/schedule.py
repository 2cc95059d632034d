"""Learning-rate schedules and optimisers: the one place both tasks set a learning rate.

A config's ``train:`` section names the optimiser and its ``schedule:``; parameter groups take a
multiplier by name prefix (``lr_scales``: ``{backbone: 0.1}`` for VL-FAU's pretrained Swin,
``{text.encoder.bert: 0.1}`` for a BERT tower).  `LRSchedule.apply` sets every group's learning
rate to schedule(epoch, step) × the group's ``lr_scale`` at every step.

Schedules (``schedule.type``):

* ``step``: lr₀ · γ^⌊epoch / step_epochs⌋ (ALGRNet / MGRR-Net: ×0.5 every 2 epochs, thesis §3.3.2 and
  §4.4.1; the retrieval models' ×0.1 after 15 epochs), with an optional linear warm-up over the first
  ``warmup_epochs`` (factor min(1, (iteration + 1) / warm-up iterations), 3SHNet / VSE∞ style);
* ``cosine``: per iteration t of T = epochs · steps, lr₀ · ½(1 + cos(π t / T)), after an optional linear
  warm-up lr₀ · (t + 1) / W over the first W = warmup_epochs · steps iterations (VL-FAU: the thesis,
  §5.4.2, gives AdamW and 15 epochs but no schedule; cosine is our choice, see docs/fau.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, Mapping

import torch
from torch import nn

from shared.config import bounded

SCHEDULES = ("step", "cosine")
OPTIMIZERS = ("sgd", "adam", "adamw")


@dataclass(frozen=True)
class ScheduleConfig:
    """The ``train.schedule`` section."""

    type: Literal["step", "cosine"]
    step_epochs: int = bounded(1, minimum=1, doc="step: epochs between decays")
    gamma: float = bounded(1.0, minimum=0.0, maximum=1.0, doc="step: decay factor")
    warmup_epochs: int = bounded(0, minimum=0, doc="linear warm-up epochs (0: none)")


@dataclass(frozen=True)
class OptimizerConfig:
    """The optimiser keys of a ``train:`` section (momentum/nesterov for SGD only, betas for Adam(W) only)."""

    optimizer: Literal["sgd", "adam", "adamw"]
    lr: float = bounded(minimum=0.0)
    weight_decay: float = bounded(minimum=0.0)
    momentum: float | None = bounded(None, minimum=0.0, maximum=1.0)
    nesterov: bool | None = None
    betas: tuple[float, float] | None = bounded(None, minimum=0.0, maximum=1.0)
    lr_scales: dict[str, float] = bounded({}, minimum=0.0, doc="parameter-name prefix -> lr multiplier")

    def __post_init__(self) -> None:
        if self.optimizer == "sgd":
            if self.momentum is None or self.nesterov is None:
                raise ValueError("optimizer sgd needs momentum and nesterov")
            if self.betas is not None:
                raise ValueError("betas: not used by optimizer 'sgd' (set it to null)")
        else:
            for key in ("momentum", "nesterov"):
                if getattr(self, key) is not None:
                    raise ValueError(f"{key}: not used by optimizer {self.optimizer!r} (set it to null)")


def parameter_groups(model: nn.Module, lr_scales: Mapping[str, float] | None = None) -> list[dict[str, Any]]:
    """Trainable parameters grouped by name prefix: a parameter whose name is a key of `lr_scales` or
    starts with ``key.`` joins that group with ``lr_scale`` = value; the rest form group ``default``
    (scale 1, first).  Frozen parameters are left out; empty groups are dropped."""
    scales = dict(lr_scales or {})
    groups: dict[str, list[nn.Parameter]] = {prefix: [] for prefix in scales}
    rest: list[nn.Parameter] = []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        prefix = next((p for p in scales if name == p or name.startswith(p + ".")), None)
        (groups[prefix] if prefix is not None else rest).append(param)
    out = [{"name": "default", "params": rest, "lr_scale": 1.0}]
    out += [{"name": p, "params": params, "lr_scale": float(scales[p])} for p, params in groups.items() if params]
    return out


def make_optimizer(model: nn.Module, config: OptimizerConfig) -> torch.optim.Optimizer:
    """SGD (momentum, optional Nesterov), Adam or AdamW over `parameter_groups` of `model`."""
    groups = parameter_groups(model, config.lr_scales)
    for group in groups:
        group["lr"] = config.lr * group["lr_scale"]
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum,
                               nesterov=bool(config.nesterov) and config.momentum > 0,
                               weight_decay=config.weight_decay)
    cls = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW
    betas = config.betas if config.betas is not None else (0.9, 0.999)
    return cls(groups, lr=config.lr, betas=betas, weight_decay=config.weight_decay)


class LRSchedule:
    """The learning rate at (epoch, step) of a run with `steps_per_epoch` steps and `epochs` epochs."""

    def __init__(self, base_lr: float, config: ScheduleConfig, epochs: int, steps_per_epoch: int) -> None:
        self.base_lr, self.config = base_lr, config
        self.epochs, self.steps = epochs, max(1, steps_per_epoch)

    def lr(self, epoch: int, step: int) -> float:
        cfg = self.config
        iteration = epoch * self.steps + step
        warmup = cfg.warmup_epochs * self.steps
        if cfg.type == "cosine":
            if iteration < warmup:
                return self.base_lr * (iteration + 1) / warmup
            total = self.epochs * self.steps
            return self.base_lr * 0.5 * (1.0 + math.cos(math.pi * min(iteration, total) / max(total, 1)))
        lr = self.base_lr * cfg.gamma ** (epoch // cfg.step_epochs)
        if iteration < warmup:
            lr *= (iteration + 1) / warmup
        return lr

    def apply(self, optimizer: torch.optim.Optimizer, epoch: int, step: int) -> float:
        """Set every group's lr to ``lr(epoch, step)`` × its ``lr_scale``; return the unscaled lr."""
        lr = self.lr(epoch, step)
        for group in optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        return lr
