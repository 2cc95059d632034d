"""3SHNet — Visual Semantic-Spatial Self-Highlighting Network (thesis Ch. 8; docs/retrieval.md#3shnet).

Variants: ``region`` (36 BUTD regions + region mask) and ``grid`` (49 ResNeXt cells, all valid);
the region+grid ensemble averages the two models' similarity matrices at evaluation
(`retrieval.evaluation.ensemble`), nothing to build here.

Image tower (thesis §8.3, concrete choices of the official code XuriGe1995/3SHNet):
  f     = FC(V)                                  Linear 2048→D, Xavier
  v     = f + MLP(2048, 512, D)(V)               VSE∞ region embedding
  sem   = VSeM(f, V^s)                           Eq. 8.1–8.3, sigmoid salience gates α
  sp    = VSpM(f, V^m)                           Eq. 8.4–8.10, PE + Conv2d over the 64×64 map, λ-smoothed attention
  fused = MLP(D, 512, D)(sem + sp + v)
  seg   = LN(Drop(ReLU(Linear(133, D)(V^s cells)))) + MLP residual     49 segmentation tokens
  cat   = LN(Drop(ReLU(Linear(133, D)(category multi-hot))))           1 token (code only, decision '3SHNet category token' flag)
  img   = l2norm(GPO([cat] + v + fused + seg))   padded regions masked out of every token set
Text tower: l2norm(GPO(FC(BERT(tokens)))).
Loss: bidirectional triplet, hardest negatives, margin 0.2 (Eq. 8.11), sum-of-hinges warm-up in epoch 0 (code).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from torch import nn

from shared.config import bounded
from shared.layers import MLP, l2_normalize, masked_softmax

from retrieval.layers import GPO, BertConfig, BertGPOTextTower, RegionEncoder, bert_from_config, drop_regions
from retrieval.layers.blocks import SmoothedAttention, apply_to_valid, sinusoidal_positional_encoding
from retrieval.losses import RankingLoss
from retrieval.models.base import Outputs, TwoTowerRetrievalModel
from retrieval.models.registry import MODELS

NUM_CLASSES_MINUS_ONE = 132  # class ids 0..132 normalised to [0, 1] (docs/retrieval.md, decision 'segmentation map scale')


@dataclass(frozen=True)
class ThreeSHNetConfig:
    """The ``model:`` section of ``3shnet`` (each option: docs/retrieval.md#3shnet)."""

    variant: Literal["region", "grid"] = "region"
    embed_dim: int = bounded(1024, minimum=1)
    feature_dim: int = bounded(2048, minimum=1)
    num_categories: int = bounded(133, minimum=1, doc="panoptic categories of the segmentation inputs")
    mlp_hidden: int = bounded(512, minimum=1)
    salience: Literal["sigmoid", "softmax"] = "sigmoid"
    salience_similarity: Literal["scaled_dot", "cosine"] = "cosine"
    spatial_pe_dim: int = bounded(8, minimum=1)
    spatial_channels: int = bounded(128, minimum=1)
    spatial_stride: int = bounded(2, minimum=1)
    spatial_smooth: float = bounded(4.0, minimum=0.0, doc="λ of the smoothed spatial attention")
    spatial_similarity: Literal["cosine", "scaled_dot"] = "cosine"
    seg_dropout: float = bounded(0.1, minimum=0.0, maximum=1.0)
    category_token: bool = True
    region_dropout: float = bounded(0.2, minimum=0.0, maximum=1.0)
    gpo_dim: int = bounded(32, minimum=1)
    bert: BertConfig = field(default_factory=BertConfig)


class SegmentationTokens(nn.Module):
    """LN(Dropout(ReLU(Linear(133, D)(x)))) [+ MLP(D, D/2, D) residual] — the code's segmentation embeddings."""

    def __init__(self, num_categories: int, dim: int, hidden: int, dropout: float, residual: bool) -> None:
        super().__init__()
        self.embed = nn.Sequential(nn.Linear(num_categories, dim), nn.ReLU(), nn.Dropout(dropout), nn.LayerNorm(dim))
        self.mlp = MLP(dim, hidden, dim) if residual else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.embed(x)
        return out + self.mlp(out) if self.mlp is not None else out


class VSeM(nn.Module):
    """Visual-semantic modelling (Eq. 8.1–8.3): segmentation query q, salience α_i, gated fusion.

    q = seg-embed(AvgPool(V^s)) (+ MLP residual); r_i = f_i + MLP(f_i);
    α_i = sigmoid(cos(q, r_i) / √D) (Eq. 8.2 and §8.4.5, ``similarity="cosine"``; ``"scaled_dot"`` is the
    authors' code, sigmoid(q·r_i / √D);
    ``gate="softmax"`` is the Fig. 8.4 variant); out_i = ReLU(W_1(α_i r_i ⊙ tanh(W_s α_i r_i) + q)).
    """

    def __init__(self, num_categories: int, dim: int, hidden: int, dropout: float, gate: str = "sigmoid",
                 similarity: str = "cosine") -> None:
        super().__init__()
        if gate not in ("sigmoid", "softmax") or similarity not in ("scaled_dot", "cosine"):
            raise ValueError(f"VSeM gate {gate!r} / similarity {similarity!r} not supported")
        self.query = SegmentationTokens(num_categories, dim, hidden, dropout, residual=True)
        self.region_mlp = MLP(dim, hidden, dim)
        self.scale = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)
        self.gate, self.similarity, self.dim = gate, similarity, dim

    def forward(self, regions: torch.Tensor, segmentation: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """regions f (B, K, D), segmentation (B, 133, 7, 7), mask (B, K) → (features (B, K, D), α (B, K))."""
        q = self.query(segmentation.flatten(2).mean(dim=2))
        r = regions + apply_to_valid(self.region_mlp, regions, mask)
        logits = (r * q.unsqueeze(1)).sum(dim=-1)
        if self.similarity == "cosine":
            logits = logits / (r.norm(dim=-1) * q.norm(dim=-1, keepdim=True)).clamp_min(1e-8)
        logits = logits / math.sqrt(self.dim)
        alpha = torch.sigmoid(logits) * mask if self.gate == "sigmoid" else masked_softmax(logits, mask, dim=1)
        gated = alpha.unsqueeze(-1) * r
        out = torch.relu(self.out(gated * torch.tanh(self.scale(gated)) + q.unsqueeze(1)))
        return out * mask.unsqueeze(-1), alpha


class VSpM(nn.Module):
    """Visual-spatial modelling (Eq. 8.4–8.10) over the segmentation map.

    Map (B, 64, 64) class ids → /132 (decision 'segmentation map scale') ⊕ 1-D sinusoidal PE of the pixel index p ∈ [1, HW] (d = 8)
    → Conv2d(d+1, C^p, 3, stride, pad 1) + BN + ReLU → keys (B, H'W', C^p) (code: stride 1, C^p = 128;
    decision '3SHNet spatial resolution').  Queries U^l f_i = MLP(D, 512, C^p); β = softmax_j(λ c_ij) with λ = 4 (`SmoothedAttention`);
    out_i = MLP(C^p, 512, D)(Σ_j β_ij k_j + U^l f_i).
    """

    def __init__(self, dim: int, hidden: int, pe_dim: int = 8, channels: int = 128, stride: int = 1,
                 smooth: float = 4.0, similarity: str = "scaled_dot") -> None:
        super().__init__()
        self.pe_dim = pe_dim
        self.conv = nn.Sequential(nn.Conv2d(pe_dim + 1, channels, 3, stride=stride, padding=1),
                                  nn.BatchNorm2d(channels), nn.ReLU())
        self.query = MLP(dim, hidden, channels)
        self.attention = SmoothedAttention(smooth, similarity)
        self.out = MLP(channels, hidden, dim)

    def keys(self, seg_map: torch.Tensor) -> torch.Tensor:
        """(B, H, W) class-id map → (B, H'W', C^p) refined positional keys."""
        batch, height, width = seg_map.shape
        pe = sinusoidal_positional_encoding(height * width, self.pe_dim, start=1, device=seg_map.device)
        pe = pe.T.reshape(1, self.pe_dim, height, width).expand(batch, -1, -1, -1)
        normalised = (seg_map.float() / NUM_CLASSES_MINUS_ONE).unsqueeze(1)
        return self.conv(torch.cat([pe, normalised], dim=1)).flatten(2).transpose(1, 2)

    def forward(self, regions: torch.Tensor, seg_map: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """regions f (B, K, D), seg_map (B, 64, 64) → (features (B, K, D), attention β (B, K, H'W'))."""
        keys = self.keys(seg_map)
        q = apply_to_valid(self.query, regions, mask)
        context, attention = self.attention(q, keys)
        out = apply_to_valid(self.out, context + q, mask)
        return out, attention


@MODELS.register("3shnet", configs={"tiny": "shnet_tiny", "tiny_grid": "shnet_grid_tiny", "f30k": "shnet_f30k",
                                    "coco": "shnet_coco", "f30k_grid": "shnet_grid_f30k", "coco_grid": "shnet_grid_coco"},
                 summary="3SHNet semantic-spatial self-highlighting two-tower (BERT text; region or grid)")
class ThreeSHNet(TwoTowerRetrievalModel):
    """3SHNet (``variant`` region | grid); `explain` returns the salience α and the spatial attention β."""

    name = "3shnet"
    Config = ThreeSHNetConfig
    text_kind = "bert"

    def __init__(self, config: ThreeSHNetConfig, loss: RankingLoss, vocab_size: int | None = None,
                 word_vectors: np.ndarray | None = None) -> None:
        bert = bert_from_config(config.bert)   # built first: the parameter initialisation order is part of a seeded result
        super().__init__(loss)
        self.config = config
        dim, hidden, cats = config.embed_dim, config.mlp_hidden, config.num_categories
        self.variant, self.region_dropout = config.variant, float(config.region_dropout)
        self.region_encoder = RegionEncoder(config.feature_dim, dim, hidden)
        self.vsem = VSeM(cats, dim, hidden, config.seg_dropout, config.salience, config.salience_similarity)
        self.vspm = VSpM(dim, hidden, config.spatial_pe_dim, config.spatial_channels, config.spatial_stride,
                         config.spatial_smooth, config.spatial_similarity)
        self.fuse = MLP(dim, hidden, dim)
        self.segmentation_tokens = SegmentationTokens(cats, dim, hidden, config.seg_dropout, residual=True)
        self.category_token = (SegmentationTokens(cats, dim, hidden, config.seg_dropout, residual=False)
                               if config.category_token else None)
        self.image_gpo = GPO(config.gpo_dim, config.gpo_dim)
        self.text = BertGPOTextTower(bert, dim, config.gpo_dim)

    def image_inputs(self) -> tuple[str, ...]:
        visual = ("grid",) if self.variant == "grid" else ("regions", "region_mask")
        return visual + ("segmentations", "seg_maps") + (("cat_onehots",) if self.category_token is not None else ())

    def _visual_tokens(self, images: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        if self.variant == "grid":
            features = images["grid"]
            return features, torch.ones(features.shape[:2], dtype=torch.bool, device=features.device)
        mask = images["region_mask"].to(torch.bool)
        if self.training and self.region_dropout > 0:
            mask = drop_regions(mask, self.region_dropout)
        return images["regions"], mask

    def image_outputs(self, images: dict[str, torch.Tensor]) -> Outputs:
        """Image embedding plus VSeM salience α (B, K) and VSpM attention β (B, K, H'W')."""
        features, mask = self._visual_tokens(images)
        f, v = self.region_encoder(features, mask)
        sem, alpha = self.vsem(f, images["segmentations"], mask)
        sp, beta = self.vspm(f, images["seg_maps"], mask)
        fused = apply_to_valid(self.fuse, sem + sp + v, mask)
        seg = self.segmentation_tokens(images["segmentations"].flatten(2).transpose(1, 2))
        seg_mask = torch.ones(seg.shape[:2], dtype=torch.bool, device=seg.device)
        tokens, masks = [v, fused, seg], [mask, mask, seg_mask]
        if self.category_token is not None:
            tokens.insert(0, self.category_token(images["cat_onehots"].float()).unsqueeze(1))
            masks.insert(0, seg_mask[:, :1])
        pooled = self.image_gpo(torch.cat(tokens, dim=1), torch.cat(masks, dim=1))
        return {"embedding": l2_normalize(pooled), "salience": alpha, "spatial_attention": beta}

    def text_outputs(self, texts: dict[str, torch.Tensor]) -> Outputs:
        return {"embedding": l2_normalize(self.text(texts))}

    def explain(self, images: dict[str, torch.Tensor], texts: dict[str, torch.Tensor] | None = None) -> Outputs:
        """``salience`` α (B, K) of the VSeM gate (Eq. 8.2) and ``spatial_attention`` β (B, K, H'W') of
        VSpM (Eq. 8.8), per image; the caption does not change them (two towers)."""
        out = self.image_outputs(images)
        return {"salience": out["salience"], "spatial_attention": out["spatial_attention"]}
