"""Baselines built from the same parts (issue 9 "Baselines"; retrieval-models.md §8.1).

* ``vsepp`` — VSE++-style mean pooling (Faghri et al.): regions → FC (Xavier) → masked mean → l2norm;
  words → Bi-GRU (GloVe-initialised embedding, directions averaged) → masked mean → l2norm.
* ``vse_gpo`` — VSE∞-style (J. Chen et al. 2021) GPO two-tower: regions → FC + MLP residual → GPO →
  l2norm (training drops regions with p = 0.2 as VSE∞ does); BERT → FC → GPO → l2norm.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from shared.layers import l2_normalize, masked_mean

from retrieval.losses import RankingLoss
from retrieval.models.base import Outputs, TwoTowerRetrievalModel
from retrieval.models.encoders import GPO, BertGPOTextTower, GRUTextEncoder, RegionEncoder, build_bert
from retrieval.models.shnet import drop_regions

VSEPP_DEFAULTS: dict[str, Any] = {"embed_dim": 1024, "region_dim": 2048, "word_dim": 300, "gru_layers": 1,
                                  "word_dropout": 0.0, "finetune_words": True}
VSE_GPO_DEFAULTS: dict[str, Any] = {"embed_dim": 1024, "region_dim": 2048, "mlp_hidden": 512, "gpo_dim": 32,
                                    "region_dropout": 0.2,
                                    "bert": {"dir": None, "pretrained": True, "arch": None}}


def _check(options: dict[str, Any], defaults: dict[str, Any], name: str) -> dict[str, Any]:
    unknown = set(options) - set(defaults)
    if unknown:
        raise ValueError(f"unknown {name} options {sorted(unknown)}")
    return {**defaults, **options}


class VSEPP(TwoTowerRetrievalModel):
    """Mean-pooling two-tower baseline with a Bi-GRU text encoder."""

    def __init__(self, vocab_size: int, loss: RankingLoss, word_vectors: np.ndarray | None = None, **options: Any) -> None:
        cfg = _check(options, VSEPP_DEFAULTS, "vsepp")
        super().__init__(loss)
        self.region_encoder = RegionEncoder(cfg["region_dim"], cfg["embed_dim"])
        self.text_encoder = GRUTextEncoder(vocab_size, cfg["word_dim"], cfg["embed_dim"], cfg["gru_layers"], True,
                                           cfg["word_dropout"], word_vectors, cfg["finetune_words"])

    def image_outputs(self, images: dict[str, torch.Tensor]) -> Outputs:
        mask = images["region_mask"]
        regions, _ = self.region_encoder(images["regions"], mask)
        return {"embedding": l2_normalize(masked_mean(regions, mask, dim=1))}

    def text_outputs(self, texts: dict[str, torch.Tensor]) -> Outputs:
        words, mask = self.text_encoder(texts["tokens"], texts["lengths"])
        return {"embedding": l2_normalize(masked_mean(words, mask, dim=1))}

    @classmethod
    def from_config(cls, model: dict[str, Any], loss: RankingLoss, vocab_size: int | None,
                    word_vectors: np.ndarray | None, bert_dir: str | None, pretrained: bool) -> "VSEPP":
        if vocab_size is None:
            raise ValueError("vsepp needs vocab_size (GRU text encoder)")
        return cls(vocab_size, loss, word_vectors, **model)


class VSEGPO(TwoTowerRetrievalModel):
    """GPO-pooled two-tower baseline with a BERT text encoder."""

    text_kind = "bert"

    def __init__(self, loss: RankingLoss, bert: nn.Module, **options: Any) -> None:
        cfg = _check(options, VSE_GPO_DEFAULTS, "vse_gpo")
        super().__init__(loss)
        self.region_dropout = float(cfg["region_dropout"])
        self.region_encoder = RegionEncoder(cfg["region_dim"], cfg["embed_dim"], cfg["mlp_hidden"])
        self.image_gpo = GPO(cfg["gpo_dim"], cfg["gpo_dim"])
        self.text = BertGPOTextTower(bert, cfg["embed_dim"], cfg["gpo_dim"])

    def image_outputs(self, images: dict[str, torch.Tensor]) -> Outputs:
        mask = images["region_mask"].to(torch.bool)
        if self.training and self.region_dropout > 0:
            mask = drop_regions(mask, self.region_dropout)
        _, regions = self.region_encoder(images["regions"], mask)
        return {"embedding": l2_normalize(self.image_gpo(regions, mask))}

    def text_outputs(self, texts: dict[str, torch.Tensor]) -> Outputs:
        return {"embedding": l2_normalize(self.text(texts))}

    @classmethod
    def from_config(cls, model: dict[str, Any], loss: RankingLoss, vocab_size: int | None,
                    word_vectors: np.ndarray | None, bert_dir: str | None, pretrained: bool) -> "VSEGPO":
        options = dict(model)
        bert_cfg = {**VSE_GPO_DEFAULTS["bert"], **options.pop("bert", {})}
        load = pretrained and bert_cfg["pretrained"]
        return cls(loss, build_bert(bert_dir or bert_cfg["dir"], load, None if load else bert_cfg["arch"]), **options)
