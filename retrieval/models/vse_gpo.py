"""VSE∞ — GPO-pooled two-tower baseline (J. Chen et al., "Learning the Best Pooling Strategy for Visual
Semantic Embedding", CVPR 2021; docs/retrieval.md#vse).

Image: regions → FC + MLP residual → GPO (§3.2 of the paper) → l2norm; training drops regions with
p = 0.2 as the VSE∞ code does.  Text: BERT → FC → GPO → l2norm.  Score: cosine; loss: hinge triplet.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from shared.config import bounded
from shared.layers import l2_normalize

from retrieval.layers import GPO, BertConfig, BertGPOTextTower, RegionEncoder, bert_from_config, drop_regions
from retrieval.losses import RankingLoss
from retrieval.models.base import Outputs, TwoTowerRetrievalModel
from retrieval.models.registry import MODELS


@dataclass(frozen=True)
class VSEGPOConfig:
    """The ``model:`` section of ``vse_gpo``."""

    embed_dim: int = bounded(1024, minimum=1, doc="joint embedding size")
    region_dim: int = bounded(2048, minimum=1, doc="region feature size")
    mlp_hidden: int = bounded(512, minimum=1, doc="hidden size of the region MLP residual")
    gpo_dim: int = bounded(32, minimum=1, doc="GPO positional-encoding and GRU size")
    region_dropout: float = bounded(0.2, minimum=0.0, maximum=1.0, doc="training region drop rate")
    bert: BertConfig = field(default_factory=BertConfig)


@MODELS.register("vse_gpo", configs={"tiny": "vse_gpo_tiny", "f30k": "vse_gpo_f30k"},
                 summary="VSE∞ GPO two-tower baseline (BERT text)")
class VSEGPO(TwoTowerRetrievalModel):
    """GPO-pooled two-tower baseline with a BERT text encoder."""

    name = "vse_gpo"
    Config = VSEGPOConfig
    text_kind = "bert"

    def __init__(self, config: VSEGPOConfig, loss: RankingLoss, vocab_size: int | None = None,
                 word_vectors: np.ndarray | None = None) -> None:
        bert = bert_from_config(config.bert)   # built first: the parameter initialisation order is part of a seeded result
        super().__init__(loss)
        self.config = config
        self.region_dropout = float(config.region_dropout)
        self.region_encoder = RegionEncoder(config.region_dim, config.embed_dim, config.mlp_hidden)
        self.image_gpo = GPO(config.gpo_dim, config.gpo_dim)
        self.text = BertGPOTextTower(bert, config.embed_dim, config.gpo_dim)

    def image_outputs(self, images: dict[str, torch.Tensor]) -> Outputs:
        mask = images["region_mask"].to(torch.bool)
        if self.training and self.region_dropout > 0:
            mask = drop_regions(mask, self.region_dropout)
        _, regions = self.region_encoder(images["regions"], mask)
        return {"embedding": l2_normalize(self.image_gpo(regions, mask))}

    def text_outputs(self, texts: dict[str, torch.Tensor]) -> Outputs:
        return {"embedding": l2_normalize(self.text(texts))}
