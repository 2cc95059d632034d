"""Training utilities both trainers use: step-decay LR, progress bars and resumable state.

A resumable training state is a checkpoint (see `shared.checkpoint`) holding the model weights
under ``model/``, the optimiser's tensors under ``optim/`` with its scalar state in the JSON
sidecar, and the epoch just finished.  Data order must be a function of (seed, epoch) (see
`shared.distributed.set_epoch`) so that a resumed run continues exactly like an uninterrupted one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, TypeVar

import torch
from tqdm.auto import tqdm

from shared.checkpoint import CheckpointError, checkpoint_paths, load_checkpoint, load_state_strict, save_checkpoint, split_prefixed

T = TypeVar("T")

LAST = "last"


def progress(iterable: Iterable[T], desc: str, enabled: bool = True, total: int | None = None) -> Iterator[T]:
    """A tqdm bar on the main process; a plain iterator elsewhere (or when disabled)."""
    return iter(tqdm(iterable, desc=desc, total=total, disable=not enabled, leave=False, dynamic_ncols=True))


def _optimizer_split(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for param_id, slots in state["state"].items():
        for slot, value in slots.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim/{param_id}/{slot}"] = value
            else:
                scalars.setdefault(str(param_id), {})[slot] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _optimizer_join(optimizer: torch.optim.Optimizer, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for name, value in split_prefixed(tensors, "optim").items():
        param_id, slot = name.split("/", 1)
        state.setdefault(int(param_id), {})[slot] = value
    for param_id, slots in meta.get("scalars", {}).items():
        state.setdefault(int(param_id), {}).update(slots)
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_training_state(run_dir: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                        epoch: int, meta: Mapping[str, Any], name: str = LAST) -> Path:
    """Save model + optimiser + finished `epoch` as ``run_dir/<name>`` (atomic)."""
    opt_tensors, opt_meta = _optimizer_split(optimizer)
    tensors = {f"model/{k}": v for k, v in model.state_dict().items()} | opt_tensors
    return save_checkpoint(Path(run_dir) / name, tensors, {**meta, "epoch": epoch, "optimizer": opt_meta})


def resume_training_state(run_dir: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                          name: str = LAST) -> int:
    """Restore the last saved state if present; return the epoch to start from (0 if none)."""
    weights, _ = checkpoint_paths(Path(run_dir) / name)
    if not weights.exists():
        return 0
    tensors, meta = load_checkpoint(weights)
    if "optimizer" not in meta or "epoch" not in meta:
        raise CheckpointError(f"checkpoint {weights}: not a training state (no optimizer/epoch)")
    load_state_strict(model, split_prefixed(tensors, "model"), weights)
    _optimizer_join(optimizer, tensors, meta["optimizer"])
    return int(meta["epoch"]) + 1


def backward_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                  parameters: Iterable[torch.nn.Parameter] | None = None, grad_clip: float = 0.0) -> None:
    """One optimiser step: zero grads, (loss-scaled) backward, optional clip of the unscaled
    gradient norm, step, scaler update.  With an inert scaler (CPU) this is the plain sequence."""
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if grad_clip > 0:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(list(parameters or []), grad_clip)
    scaler.step(optimizer)
    scaler.update()
