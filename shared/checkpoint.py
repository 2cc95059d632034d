"""Checkpoints: safetensors weights plus a JSON sidecar; loading never unpickles code.

A checkpoint ``run/best.safetensors`` is accompanied by ``run/best.json`` holding the model name,
its config, the label set, the split or fold, the code version and any training state needed to
resume (epoch, optimiser tensors are stored in the weights file under an ``optim/`` prefix).
Both files are written atomically, the weights first, and both carry the same random ``save_id``
(the sidecar as a key, the weights in their safetensors header), so a crash between the two renames
leaves a pair that refuses to load ("written by different saves") instead of new weights read with an
old sidecar.  Problems become one-line `CheckpointError`s that name the file.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from shared.errors import UserError
from shared.io import atomic_path, write_json
from shared.version import __version__

WEIGHTS_SUFFIX = ".safetensors"
META_SUFFIX = ".json"
REQUIRED_META = ("model", "config")
SAVE_ID = "save_id"


class CheckpointError(UserError):
    """A checkpoint that is missing, truncated, or does not match the model it is loaded into."""


def checkpoint_paths(path: str | Path) -> tuple[Path, Path]:
    """Return (weights, sidecar) for a checkpoint given either file or the common stem."""
    path = Path(path)
    stem = path.with_suffix("") if path.suffix in (WEIGHTS_SUFFIX, META_SUFFIX) else path
    return stem.with_name(stem.name + WEIGHTS_SUFFIX), stem.with_name(stem.name + META_SUFFIX)


def save_checkpoint(path: str | Path, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> Path:
    """Write `tensors` (e.g. a state dict) and `meta` (JSON-serialisable) atomically.

    `meta` must contain ``model`` and ``config``; ``code_version`` is added.  Tensors are saved
    contiguous on the CPU; shared storage (tied weights) is cloned so safetensors accepts it.
    """
    missing = [key for key in REQUIRED_META if key not in meta]
    if missing:
        raise ValueError(f"checkpoint metadata lacks {missing}")
    weights, sidecar = checkpoint_paths(path)
    flat = {name: t.detach().to("cpu").contiguous().clone() for name, t in tensors.items()}
    save_id = uuid.uuid4().hex
    with atomic_path(weights) as tmp:
        save_file(flat, str(tmp), metadata={"format": "pt", "model": str(meta["model"]), SAVE_ID: save_id})
    write_json(sidecar, {**meta, "code_version": __version__, SAVE_ID: save_id})
    return weights


def load_meta(path: str | Path) -> dict[str, Any]:
    """Read and validate the JSON sidecar of a checkpoint."""
    weights, sidecar = checkpoint_paths(path)
    if not sidecar.is_file():
        if not weights.is_file():
            raise CheckpointError(f"checkpoint {weights}: no such checkpoint (neither {weights.name} nor {sidecar.name} exists)")
        raise CheckpointError(f"checkpoint {sidecar}: sidecar JSON not found (it must sit beside {weights.name})")
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"checkpoint {sidecar}: not valid JSON ({err.msg if hasattr(err, 'msg') else err})") from None
    missing = [key for key in REQUIRED_META if key not in meta]
    if missing:
        raise CheckpointError(f"checkpoint {sidecar}: missing keys {missing}")
    return meta


def load_tensors(path: str | Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Read the safetensors weights; a truncated or corrupt file gives a one-line error."""
    weights, _ = checkpoint_paths(path)
    if not weights.is_file():
        raise CheckpointError(f"checkpoint {weights}: weights file not found")
    try:
        return load_file(str(weights), device=str(device))
    except (SafetensorError, OSError, ValueError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(f"checkpoint {weights}: unreadable or truncated ({reason})") from None


def weights_save_id(path: str | Path) -> str | None:
    """The ``save_id`` in the header of a checkpoint's weights file (None for files written before it existed)."""
    weights, _ = checkpoint_paths(path)
    try:
        with safe_open(str(weights), framework="pt") as handle:
            return (handle.metadata() or {}).get(SAVE_ID)
    except (SafetensorError, OSError, ValueError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(f"checkpoint {weights}: unreadable or truncated ({reason})") from None


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Return (tensors, meta) of a checkpoint; weights and sidecar must come from the same save."""
    meta = load_meta(path)
    tensors = load_tensors(path, device)
    saved = weights_save_id(path)
    if meta.get(SAVE_ID) is not None and saved is not None and saved != meta[SAVE_ID]:
        weights, sidecar = checkpoint_paths(path)
        raise CheckpointError(f"checkpoint {weights}: weights and {sidecar.name} were written by different saves "
                              "(an interrupted write?); save or copy the pair again")
    return tensors, meta


def load_state_strict(module: torch.nn.Module, tensors: Mapping[str, torch.Tensor], source: str | Path) -> None:
    """Load a state dict exactly: missing, unexpected or mis-shaped tensors are a one-line error.

    The message names the checkpoint and the first mismatching tensor.
    """
    expected = module.state_dict()
    for name, value in expected.items():
        if name not in tensors:
            raise CheckpointError(f"checkpoint {source}: tensor {name!r} missing (model expects {tuple(value.shape)})")
        if tuple(tensors[name].shape) != tuple(value.shape):
            raise CheckpointError(
                f"checkpoint {source}: tensor {name!r} has shape {tuple(tensors[name].shape)}, model expects {tuple(value.shape)}"
            )
    extra = [name for name in tensors if name not in expected]
    if extra:
        raise CheckpointError(f"checkpoint {source}: unexpected tensor {extra[0]!r} not in the model")
    module.load_state_dict(dict(tensors), strict=True)


def split_prefixed(tensors: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors stored under ``prefix/`` with the prefix removed (e.g. ``optim/``)."""
    head = prefix.rstrip("/") + "/"
    return {name[len(head) :]: t for name, t in tensors.items() if name.startswith(head)}


def load_matching(module: torch.nn.Module, tensors: Mapping[str, torch.Tensor]) -> tuple[list[str], list[str]]:
    """Initialise from another run (``--init-from``: DISFA from BP4D, F30K from COCO).

    Copies every tensor whose name and shape match and returns (loaded, skipped) names, so the
    caller can say what was *not* transferred (never a silent ``strict=False``).
    """
    state = module.state_dict()
    loaded, skipped = [], []
    for name, value in state.items():
        source = tensors.get(name)
        if source is not None and tuple(source.shape) == tuple(value.shape):
            state[name] = source
            loaded.append(name)
        else:
            skipped.append(name)
    module.load_state_dict(state)
    return loaded, skipped


def describe_transfer(source: str | Path, loaded: list[str], skipped: list[str]) -> str:
    """One line for the log: how many tensors came from `source` and which stayed fresh."""
    head = ", ".join(skipped[:6]) + (" ..." if len(skipped) > 6 else "")
    return f"init from {source}: {len(loaded)} tensors loaded, {len(skipped)} kept fresh" + (f" ({head})" if skipped else "")
