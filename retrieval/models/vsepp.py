"""VSE++ — mean-pooling two-tower baseline (Faghri et al., "VSE++: Improving Visual-Semantic Embeddings
with Hard Negatives", BMVC 2018; docs/retrieval.md#vse).

Image: regions → FC (Xavier) → masked mean → l2norm.
Text: words → Bi-GRU (GloVe-initialised embedding, directions averaged) → masked mean → l2norm.
Score: the cosine of the two embeddings; loss: the bidirectional hinge triplet (VSE++ Eq. 4–5).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from shared.config import bounded
from shared.layers import l2_normalize, masked_mean

from retrieval.layers import GRUTextEncoder, RegionEncoder
from retrieval.losses import RankingLoss
from retrieval.models.base import Outputs, TwoTowerRetrievalModel
from retrieval.models.registry import MODELS


@dataclass(frozen=True)
class VSEPPConfig:
    """The ``model:`` section of ``vsepp``."""

    embed_dim: int = bounded(1024, minimum=1, doc="joint embedding size")
    region_dim: int = bounded(2048, minimum=1, doc="region feature size")
    word_dim: int = bounded(300, minimum=1, doc="word embedding size")
    gru_layers: int = bounded(1, minimum=1)
    word_dropout: float = bounded(0.0, minimum=0.0, maximum=1.0)
    finetune_words: bool = True


@MODELS.register("vsepp", configs={"tiny": "vsepp_tiny", "f30k": "vsepp_f30k"},
                 summary="VSE++ mean-pooling two-tower baseline (Bi-GRU text)")
class VSEPP(TwoTowerRetrievalModel):
    """Mean-pooling two-tower baseline with a Bi-GRU text encoder."""

    name = "vsepp"
    Config = VSEPPConfig

    def __init__(self, config: VSEPPConfig, loss: RankingLoss, vocab_size: int | None = None,
                 word_vectors: np.ndarray | None = None) -> None:
        vocab = self.require_vocab(self.name, vocab_size)
        super().__init__(loss)
        self.config = config
        self.region_encoder = RegionEncoder(config.region_dim, config.embed_dim)
        self.text_encoder = GRUTextEncoder(vocab, config.word_dim, config.embed_dim, config.gru_layers, True,
                                           config.word_dropout, word_vectors, config.finetune_words)

    def image_outputs(self, images: dict[str, torch.Tensor]) -> Outputs:
        mask = images["region_mask"]
        regions, _ = self.region_encoder(images["regions"], mask)
        return {"embedding": l2_normalize(masked_mean(regions, mask, dim=1))}

    def text_outputs(self, texts: dict[str, torch.Tensor]) -> Outputs:
        words, mask = self.text_encoder(texts["tokens"], texts["lengths"])
        return {"embedding": l2_normalize(masked_mean(words, mask, dim=1))}
