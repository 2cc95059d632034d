"""IMC network — the two-branch embedding network of the IMC thesis (J. Chen, *Deep Learning Based
Multimodal Retrieval*, 2023, Ch. 5, Fig. 5.1; docs/retrieval.md#imc).

Image: the ResNet-152 feature → FC (d = 1024) → l2norm (§5.2.1).  Our precomputed features give the
7 × 7 × 2048 ResNet grid; its mean is ResNet-152's pooled feature (decision 'IMC image feature').
Text: GloVe word vectors → Bi-LSTM (Xavier init, dropout 0.5, §5.3.2) → l2norm (§5.2.1).
Loss: MH + λ IMC(I) + λ IMC(T) (Eq. 5.3–5.4), the ``loss.imc`` section.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from shared.config import bounded
from shared.layers import l2_normalize

from retrieval.layers import BiLSTMSentenceEncoder, xavier_linear
from retrieval.losses import RankingLoss
from retrieval.models.base import Outputs, TwoTowerRetrievalModel
from retrieval.models.registry import MODELS


@dataclass(frozen=True)
class IMCConfig:
    """The ``model:`` section of ``imc``."""

    embed_dim: int = bounded(1024, minimum=1, doc="joint embedding size d (§5.2.1)")
    feature_dim: int = bounded(2048, minimum=1, doc="ResNet-152 feature size")
    word_dim: int = bounded(300, minimum=1, doc="GloVe word vector size")
    dropout: float = bounded(0.5, minimum=0.0, maximum=1.0, doc="Bi-LSTM input dropout (§5.3.2)")


@MODELS.register("imc", configs={"tiny": "imc_tiny", "f30k": "imc_f30k", "coco": "imc_coco"},
                 summary="IMC two-branch network (ResNet-152 feature + FC, GloVe + Bi-LSTM) with the IMC loss")
class IMCNet(TwoTowerRetrievalModel):
    """ResNet feature + FC image branch and GloVe + Bi-LSTM text branch (module docstring)."""

    name = "imc"
    Config = IMCConfig

    def image_inputs(self) -> tuple[str, ...]:
        return ("grid",)

    def __init__(self, config: IMCConfig, loss: RankingLoss, vocab_size: int | None = None,
                 word_vectors: np.ndarray | None = None) -> None:
        vocab = self.require_vocab(self.name, vocab_size)
        super().__init__(loss)
        self.config = config
        # named like the other models' projection so `retrieval.data.pairs.check_model_inputs` checks the feature size
        self.region_fc = xavier_linear(config.feature_dim, config.embed_dim)
        self.text_encoder = BiLSTMSentenceEncoder(vocab, config.word_dim, config.embed_dim, config.dropout, word_vectors)

    def image_outputs(self, images: dict[str, torch.Tensor]) -> Outputs:
        pooled = images["grid"].mean(dim=1)  # the ResNet-152 average-pooled feature
        return {"embedding": l2_normalize(self.region_fc(pooled))}

    def text_outputs(self, texts: dict[str, torch.Tensor]) -> Outputs:
        return {"embedding": l2_normalize(self.text_encoder(texts["tokens"], texts["lengths"]))}
