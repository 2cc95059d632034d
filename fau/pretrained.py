"""Pretrained weights named in a config: ``none``, a local ``.safetensors`` file, or a hub name.

``model.backbone.weights`` (VL-FAU's ImageNet Swin, thesis §5.4.2 "pre-trained on ImageNet") takes

* ``none`` — no pretrained weights, on purpose (random initialisation, logged as such);
* a path ending in ``.safetensors`` — a local file, read without network access;
* a Hugging Face hub name, ``owner/name`` or ``hf-hub:owner/name`` (e.g. timm's
  ``timm/swin_base_patch4_window7_224.ms_in1k``) — its ``model.safetensors`` through the hub client,
  so an online user downloads it once and an offline user (``HF_HUB_OFFLINE=1``) reads the usual
  cache (``~/.cache/huggingface``, ``HF_HOME``).

Only safetensors files are read (nothing is unpickled). When the file cannot be had, the error is one
line naming what to pass instead.
"""

from __future__ import annotations

from pathlib import Path

from shared.errors import UserError

NONE = "none"
HUB_PREFIX = "hf-hub:"
HUB_FILE = "model.safetensors"


def is_hub_name(weights: str) -> bool:
    """True for ``hf-hub:owner/name`` and for ``owner/name`` that is not a ``.safetensors`` path."""
    if weights.startswith(HUB_PREFIX):
        return True
    return weights.count("/") == 1 and not weights.endswith(".safetensors") and not weights.startswith((".", "/"))


def resolve_weights(weights: str, key: str) -> Path | None:
    """The local safetensors file `weights` names (None for ``none``); `key` is the config key for errors."""
    if weights.strip().lower() == NONE:
        return None
    if is_hub_name(weights):
        return _from_hub(weights.removeprefix(HUB_PREFIX), key)
    path = Path(weights).expanduser()
    if path.suffix != ".safetensors" or not path.is_file():
        raise UserError(f"config {key}: {weights} is not a local .safetensors file "
                        f"(pass a .safetensors path, a hub name such as timm/<model>.<tag>, or none)")
    return path


def _from_hub(repo_id: str, key: str) -> Path:
    """`repo_id`'s ``model.safetensors`` from the hub client (cache first; offline: cache only)."""
    import huggingface_hub

    try:
        return Path(huggingface_hub.hf_hub_download(repo_id=repo_id, filename=HUB_FILE))
    except Exception as err:  # offline without a cached copy, no network, unknown repo: all one line
        reason = type(err).__name__
        raise UserError(f"config {key}: cannot get {HUB_FILE} of {repo_id} from the Hugging Face hub or its cache "
                        f"({reason}); pass {key}=PATH.safetensors (a local copy), go online once, or "
                        f"{key}=none to train from scratch on purpose") from None
