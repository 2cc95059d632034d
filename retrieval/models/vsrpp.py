"""VSR++ — global visual semantic reasoning + local cross-modal attention (the VSR++ slides; docs/retrieval.md#vsr).

The slides give the components and the fusion, not the layers; the layers follow our proposal
(docs/retrieval.md#vsr): VSRN (the public code KunpengLi1994/VSRN) for the global branch, SCAN for the local one:

  regions (K, 2048) → FC (Xavier) → l2norm → `GraphReasoning` (4 × Rs_GCN) → l2norm → V* (K, D)
  V* → GRU(D, D) over the regions in detector order → last hidden → l2norm → g_I            (global image)
  words → Emb → Bi-GRU(D), directions averaged → W (M, D); g_T = l2norm(mean W)        (decision 'VSR++ global text', global text)
  S_G = g_I · g_T                                                                          (cosine)
  S_L = SCAN text-to-image attention (decision 'VSR++ local branch'): c_jk = cos(w_j, v*_k); ĉ = l2norm_words(LeakyReLU_0.1(c));
        α_jk = softmax_k(λ ĉ_jk), λ = 9; a_j = Σ_k α_jk v*_k; S_L = mean_j cos(w_j, a_j)
  S   = S_G + μ S_L, μ = 2.0                                                                (slide "fusion")
Losses: one triplet on S (decision 'VSR++ fusion', "Fusion-similarity") + L_generation (`CaptionDecoder` on V*, weight 1).

S_L is computed without materialising the attended contexts: w_j · a_j = Σ_k α_jk c_jk and
|a_j|² = α_j G α_jᵀ with G = V* V*ᵀ (K × K per image), so a tile of Bi × Bt pairs holds (M, K) maps
only, never (M, D) contexts.  The global branch alone is a two-tower model: `global_image_embeddings`
/ `global_text_embeddings` give indexable l2-normalised vectors for a shortlist (`retrieval search`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from shared.config import bounded
from shared.layers import l2_normalize, masked_mean, masked_softmax

from retrieval.layers import GRUTextEncoder, RegionEncoder, length_mask
from retrieval.layers.caption_decoder import CaptionDecoder
from retrieval.layers.graph_reasoning import GraphReasoning, compact_valid, run_gru
from retrieval.losses import RankingLoss
from retrieval.models.base import Outputs, PairwiseRetrievalModel
from retrieval.models.registry import MODELS

EPS = 1e-8


@dataclass(frozen=True)
class CaptionConfig:
    """``model.caption``: the L_generation decoder on V*."""

    hidden: int = bounded(512, minimum=1)
    word_dim: int = bounded(300, minimum=1)
    input_dropout: float = bounded(0.2, minimum=0.0, maximum=1.0)
    rnn_dropout: float = bounded(0.5, minimum=0.0, maximum=1.0)
    max_length: int = bounded(40, minimum=2)
    reduction: Literal["token_mean", "sequence_sum"] = "sequence_sum"


@dataclass(frozen=True)
class VSRPPConfig:
    """The ``model:`` section of ``vsrpp`` (each option: docs/retrieval.md#vsr)."""

    embed_dim: int = bounded(1024, minimum=1)
    region_dim: int = bounded(2048, minimum=1)
    word_dim: int = bounded(300, minimum=1)
    word_init: Literal["random", "glove"] = "random"
    word_dropout: float = bounded(0.0, minimum=0.0, maximum=1.0)
    gcn_layers: int = bounded(4, minimum=0)
    text_rnn: Literal["bigru", "gru"] = "bigru"
    global_text: Literal["mean", "last"] = "mean"
    local_smooth: float = bounded(9.0, minimum=0.0)
    local_pooling: Literal["mean", "lse"] = "mean"
    local_lse: float = bounded(6.0, minimum=0.0)
    mu: float = bounded(2.0, minimum=0.0, doc="weight of S_L in S = S_G + μ S_L")
    fusion: Literal["similarity", "loss"] = "similarity"
    caption: CaptionConfig = field(default_factory=CaptionConfig)
    aux_weights: dict[str, float] = bounded({"caption": 1.0}, minimum=0.0)


# tile sizing: ~8 live float32 (M, K) maps per pair at K = 36 regions and M = 64 words (data.max_caption_length)
PAIR_BYTES = 4 * 8 * 36 * 64


def scan_t2i_scores(regions: torch.Tensor, region_mask: torch.Tensor, words: torch.Tensor, word_mask: torch.Tensor,
                    smooth: float = 9.0, pooling: str = "mean", lse: float = 6.0) -> torch.Tensor:
    """(Bi, Bt) SCAN text-to-image local scores of every image against every caption (decision 'VSR++ local branch').

    `regions` (Bi, K, D) and `words` (Bt, M, D) are l2-normalised, padded items zero.  Every pair is
    scored on its own: nothing is normalised across the tile.  ``pooling="lse"`` is SCAN's LogSumExp
    pooling (1/λ₂) log Σ_j exp(λ₂ r_j) instead of the mean of r_j over the valid words.
    """
    cos = torch.einsum("ikd,tmd->itmk", regions, words)
    keep_words = word_mask.to(cos.dtype)[None, :, :, None]
    clipped = F.leaky_relu(cos, 0.1) * keep_words
    clipped = clipped / clipped.norm(dim=2, keepdim=True).clamp_min(EPS)
    alpha = masked_softmax(smooth * clipped, region_mask.to(torch.bool)[:, None, None, :], dim=-1)
    dot = (alpha * cos).sum(dim=-1)
    gram = regions @ regions.transpose(1, 2)
    norm_sq = (torch.einsum("itmk,ikl->itml", alpha, gram) * alpha).sum(dim=-1)
    relevance = dot / (norm_sq.clamp_min(0.0).sqrt() * words.norm(dim=-1).unsqueeze(0)).clamp_min(EPS)
    mask = word_mask.to(torch.bool).unsqueeze(0).expand_as(relevance)
    if pooling == "mean":
        return masked_mean(relevance, mask, dim=-1)
    filled = (lse * relevance).masked_fill(~mask, float("-inf"))
    return torch.logsumexp(filled, dim=-1) / lse


@MODELS.register("vsrpp", configs={"tiny": "vsrpp_tiny", "f30k": "vsrpp_f30k", "coco": "vsrpp_coco"},
                 summary="VSR++ global reasoning + local attention cross-interaction model (Bi-GRU text)")
class VSRPP(PairwiseRetrievalModel):
    """VSR++ (module docstring): pairwise because of S_L; image/text features carry the global vectors."""

    name = "vsrpp"
    Config = VSRPPConfig

    def __init__(self, config: VSRPPConfig, loss: RankingLoss, vocab_size: int | None = None,
                 word_vectors: np.ndarray | None = None) -> None:
        vocab_size = self.require_vocab(self.name, vocab_size)
        super().__init__(loss, config.aux_weights)
        self.config = config
        dim = config.embed_dim
        self.mu, self.fusion = float(config.mu), config.fusion
        self.local_smooth, self.local_lse = float(config.local_smooth), float(config.local_lse)
        self.local_pooling = config.local_pooling
        self.global_text = config.global_text
        self.region_encoder = RegionEncoder(config.region_dim, dim)
        self.reasoning = GraphReasoning(dim, config.gcn_layers)
        self.image_rnn = torch.nn.GRU(dim, dim, batch_first=True)
        init = word_vectors if config.word_init == "glove" else None
        self.text_encoder = GRUTextEncoder(vocab_size, config.word_dim, dim, 1, config.text_rnn == "bigru",
                                           config.word_dropout, init)
        cap = config.caption
        self.caption = CaptionDecoder(vocab_size, dim, cap.hidden, cap.word_dim, cap.input_dropout,
                                      cap.rnn_dropout, cap.max_length, cap.reduction)
        self.pair_bytes = PAIR_BYTES

    def encode_images(self, images: dict[str, torch.Tensor]) -> Outputs:
        """V* (B, K, D) l2-normalised reasoned regions, their mask and g_I (B, D) (also ``pooled`` for IMC)."""
        mask = images["region_mask"].to(torch.bool)
        projected, _ = self.region_encoder(images["regions"], mask)
        reasoned = self.reasoning(l2_normalize(projected), mask)
        reasoned = l2_normalize(reasoned) * mask.unsqueeze(-1).to(reasoned.dtype)
        ordered, lengths = compact_valid(reasoned, mask)
        _, last = run_gru(self.image_rnn, ordered, lengths)
        glob = l2_normalize(last)
        return {"regions": reasoned, "region_mask": mask, "global": glob, "pooled": glob}

    def encode_texts(self, texts: dict[str, torch.Tensor]) -> Outputs:
        """l2-normalised word features W (B, M, D), ``mask`` and g_T (B, D) (decision 'VSR++ global text')."""
        encoder = self.text_encoder
        embedded = encoder.dropout(encoder.embed(texts["tokens"]))
        states, last = run_gru(encoder.rnn, embedded, texts["lengths"])
        mask = length_mask(texts["lengths"].to(states.device), states.shape[1])
        glob = l2_normalize(masked_mean(states, mask, dim=1) if self.global_text == "mean" else last)
        words = l2_normalize(states) * mask.unsqueeze(-1).to(states.dtype)
        return {"words": words, "mask": mask, "global": glob, "pooled": glob}

    def similarity_parts(self, image_feats: Outputs, text_feats: Outputs) -> tuple[torch.Tensor, torch.Tensor]:
        """(S_G, S_L), each (Bi, Bt)."""
        global_scores = image_feats["global"] @ text_feats["global"].T
        local_scores = scan_t2i_scores(image_feats["regions"], image_feats["region_mask"], text_feats["words"],
                                       text_feats["mask"], self.local_smooth, self.local_pooling, self.local_lse)
        return global_scores, local_scores

    def forward_sim(self, image_feats: Outputs, text_feats: Outputs) -> torch.Tensor:
        """S = S_G + μ S_L (VSR++ paper "global-local similarity fusion")."""
        global_scores, local_scores = self.similarity_parts(image_feats, text_feats)
        return global_scores + self.mu * local_scores

    def global_image_embeddings(self, images: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, D) g_I: the two-tower half of VSR++ for a shortlist index (S_G alone)."""
        return self.encode_images(images)["global"]

    def global_text_embeddings(self, texts: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, D) g_T, the caption side of `global_image_embeddings`."""
        return self.encode_texts(texts)["global"]

    def training_losses(self, outputs: dict[str, Any], batch: dict[str, Any]) -> Outputs:
        """``fusion: similarity`` — the base triplet on S (decision 'VSR++ fusion'); ``fusion: loss`` — the slides'
        "Fusion-loss" ablation: one triplet on S_G plus one on S_L (scores still fused at test time)."""
        if self.fusion == "similarity":
            return super().training_losses(outputs, batch)
        image_feats, text_feats = outputs["image"], outputs["text"]
        global_scores, local_scores = self.similarity_parts(image_feats, text_feats)
        images, texts = self.pooled(image_feats, text_feats)
        ids = batch.get("image_ids")
        terms = self.loss.from_scores(global_scores, ids, images, texts)
        local = self.loss.from_scores(local_scores, ids)
        terms.update({f"local_{k}": v for k, v in local.items()})
        return self.add_auxiliary(terms, self.loss.total(terms) + local["rank"], image_feats, text_feats, batch)

    def auxiliary_losses(self, image_out: Outputs, text_out: Outputs, batch: dict[str, Any]) -> Outputs:
        """``caption``: L_generation on V* for the positive pair's caption (decision 'VSR++ caption target')."""
        texts = batch["texts"]
        return {"caption": self.caption.loss(image_out["regions"], image_out["region_mask"], texts["tokens"],
                                             texts["lengths"])}
