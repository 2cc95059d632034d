"""Retrieval model architectures, registered by name (``--model smfea|3shnet|...``) with their configs.

`build_model(name, config, ...)` builds a registered model from a full config (its ``model:`` and
``loss:`` sections, ``retrieval/configs/``); `load_model(checkpoint, device)` rebuilds a trained one
from its checkpoint.  In Python a model is built with plain arguments, e.g.
``VSEPP(VSEPPConfig(embed_dim=64, word_dim=50), loss=RankingLoss(), vocab_size=100)``.

Models are two-tower (`TwoTowerRetrievalModel`: `embed_images`, `embed_texts`) or pairwise
(`PairwiseRetrievalModel`: `encode_images`, `encode_texts`, `forward_sim`); both have `forward(batch)`
and `training_losses(outputs, batch)` (docs/retrieval.md, "The model boundary").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

# the model modules register themselves in MODELS on import
from retrieval.models import hire as _hire  # noqa: F401
from retrieval.models import imc as _imc  # noqa: F401
from retrieval.models import hslm as _hslm  # noqa: F401
from retrieval.models import shnet as _shnet  # noqa: F401
from retrieval.models import smfea as _smfea  # noqa: F401
from retrieval.models import vse_gpo as _vse_gpo  # noqa: F401
from retrieval.models import vsepp as _vsepp  # noqa: F401
from retrieval.models import vsrpp as _vsrpp  # noqa: F401
from retrieval.losses import RankingLoss
from retrieval.models.base import PairwiseRetrievalModel, RetrievalModel, TwoTowerRetrievalModel
from retrieval.models.registry import CONFIG_DIR, MODELS
from shared.errors import UserError


def build_model(name: str, config: Mapping[str, Any], vocab_size: int | None = None,
                word_vectors: np.ndarray | None = None, bert_source: str | None = None,
                pretrained: bool = True) -> RetrievalModel:
    """The registered model `name` from a full config (``model:`` and ``loss:`` sections).

    `vocab_size` / `word_vectors` (a (vocab, word_dim) float32 matrix, e.g. GloVe) feed GRU text
    encoders; `bert_source` overrides ``model.bert.source`` for BERT models; ``pretrained=False`` builds
    BERT with random weights from its config only (checkpoint loading, parameter counting, tests).
    """
    cls = MODELS.get(name).cls
    try:
        loss = RankingLoss.from_config(config.get("loss"))
        return cls.from_config(dict(config.get("model") or {}), loss, vocab_size, word_vectors, bert_source, pretrained)
    except (ValueError, TypeError) as err:
        raise UserError(f"model {name!r}: {err}") from None


def check_sidecar(meta: Mapping[str, Any], checkpoint: str | Path) -> None:
    """One line naming the sidecar when it is not a retrieval checkpoint's: a model this task does not
    register (e.g. a FAU checkpoint), or a sidecar without the caption settings (``config.data``) or
    the text encoding that rebuilding the model needs."""
    from shared.checkpoint import checkpoint_paths

    sidecar = checkpoint_paths(checkpoint)[1]
    name = meta.get("model")
    if not isinstance(name, str) or name not in MODELS:
        raise UserError(f"{sidecar}: model {name!r} is not a retrieval model (known: {', '.join(MODELS.names())}); "
                        "is it a checkpoint of another task?")
    config = meta.get("config")
    data = config.get("data") if isinstance(config, Mapping) else None
    if not isinstance(data, Mapping) or "max_caption_length" not in data:
        raise UserError(f"{sidecar}: no config.data.max_caption_length (the sidecar is incomplete or not a "
                        "retrieval checkpoint's)")
    if meta.get("text_kind") not in ("bert", "tokens") or (meta.get("text_kind") == "tokens" and not meta.get("vocab")):
        raise UserError(f"{sidecar}: no text encoding (text_kind 'bert', or 'tokens' with its vocabulary)")


def load_model(checkpoint: str | Path, device: str | torch.device = "cpu") -> tuple[RetrievalModel, dict[str, Any], Any]:
    """Rebuild a trained retrieval model (weights checked tensor by tensor) in eval mode on `device`;
    returns (model, sidecar metadata, the caption encoding of `retrieval.text`)."""
    from retrieval.text import text_encoding_from_meta
    from shared.checkpoint import load_checkpoint, load_state_strict
    from shared.device import resolve_device

    tensors, meta = load_checkpoint(checkpoint)
    check_sidecar(meta, checkpoint)
    text, vocab = text_encoding_from_meta(meta)
    model = build_model(meta["model"], dict(meta["config"]), len(vocab) if vocab else None, None, pretrained=False)
    load_state_strict(model, tensors, checkpoint)
    target = resolve_device(device) if isinstance(device, str) else device
    return model.to(target).eval(), meta, text


__all__ = ["CONFIG_DIR", "MODELS", "PairwiseRetrievalModel", "RetrievalModel", "TwoTowerRetrievalModel",
           "build_model", "load_model"]
