"""Retrieval model registry: `build_model("smfea" | "3shnet" | "vsepp" | "vse_gpo", config, ...)`.

Models are two-tower (`retrieval.models.base.TwoTowerRetrievalModel`: `embed_images`, `embed_texts`) or pairwise
(`retrieval.models.pairwise.PairwiseRetrievalModel`: `encode_images`, `encode_texts`, `forward_sim`); both have
`forward(batch)` and `compute_losses(image_out, text_out, batch)`.  A model is built from a config
alone: the ``model:`` section holds the architecture options and ``loss:`` the ranking loss
(`retrieval.losses.RankingLoss.from_config`: margin, hardest, warm-up, optional IMC).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shared.errors import UserError
from shared.registry import Registry

from retrieval.losses import RankingLoss
from retrieval.models.base import RetrievalModel, TwoTowerRetrievalModel
from retrieval.models.baselines import VSEGPO, VSEPP
from retrieval.models.hire import HiREI2T, HiRET2I
from retrieval.models.hslm import HSLM
from retrieval.models.shnet import ThreeSHNet
from retrieval.models.smfea import SMFEA
from retrieval.models.vsrpp import VSRPP

MODELS: Registry[RetrievalModel] = Registry("retrieval model")
MODELS.register("smfea")(SMFEA)
MODELS.register("3shnet")(ThreeSHNet)
MODELS.register("vsepp")(VSEPP)
MODELS.register("vse_gpo")(VSEGPO)
MODELS.register("hire_i2t")(HiREI2T)
MODELS.register("hire_t2i")(HiRET2I)
MODELS.register("vsrpp")(VSRPP)
MODELS.register("hslm")(HSLM)

CONFIG_STEMS = {"smfea": "smfea", "3shnet": "shnet", "vsepp": "vsepp", "vse_gpo": "vse_gpo",
                "hire_i2t": "hire_i2t", "hire_t2i": "hire_t2i", "vsrpp": "vsrpp", "hslm": "hslm"}
"""Config file stem per model name: ``retrieval/configs/<stem>_<dataset|tiny>.yaml``."""


def build_model(name: str, config: dict[str, Any], vocab_size: int | None = None,
                word_vectors: np.ndarray | None = None, bert_dir: str | None = None,
                pretrained: bool = True) -> RetrievalModel:
    """The model `name` from a full config (``model:`` and ``loss:`` sections).

    `vocab_size` / `word_vectors` (a (vocab, word_dim) float32 matrix, e.g. GloVe) feed GRU text
    encoders; `bert_dir` overrides ``model.bert.dir`` for BERT models; ``pretrained=False`` builds
    BERT with random weights from its config only (parameter counting, tests).
    """
    cls = MODELS.get(name)
    try:
        loss = RankingLoss.from_config(config.get("loss"))
        return cls.from_config(dict(config.get("model") or {}), loss, vocab_size, word_vectors, bert_dir, pretrained)
    except (ValueError, TypeError) as err:
        raise UserError(f"model {name!r}: {err}") from None


__all__ = ["CONFIG_STEMS", "MODELS", "RetrievalModel", "TwoTowerRetrievalModel", "build_model"]
