"""HiRE — Hybrid-modal Interaction with multiple Relational Enhancements (thesis Ch. 7; docs/retrieval.md#hire).

A cross-interaction (pairwise) model in two directional versions, registered as ``hire_i2t`` and
``hire_t2i``; HiRE* averages their similarity matrices at evaluation (`retrieval.evaluation.ensemble`).

Per item (computed once, `encode_images` / `encode_texts`):
  V = FC(regions) (2048→D_v), T = FC(BERT(words)) (768→D_s)                 §7.3
  V^A = VSA(V), T^A = TSA(T)      multi-head self-attention, D = 256, L = 16   Eq. 7.1–7.5 (decision 'HiRE self-attention')
  V^G = R-GCN(V^A, E)             VSSG: IoU > μ (model.iou_threshold, 0.4) + scene-graph edges, learned E   Eq. 7.6–7.7 (decision 'HiRE graph normalisation')
  V̄ = mean V^G, T̄ = mean T^A                                                 thesis §7.3 (decision 'HiRE globals')
Per pair (`forward_sim`, one batched call per tile), written for i2t (t2i swaps the roles: words
attend over regions, gated by V̄):
  β_ij = softmax_j(λ cos(v_i, t^A_j)),  q^t_i = Σ_j β_ij t^A_j                 Eq. 7.8–7.9
  v^F_i = ReLU(W1(v_i ⊙ tanh(W2 q^t_i) + W3 q^t_i)) + v_i      twice (LLII)      Eq. 7.10 (decision 'HiRE fusion input')
  r_i = σ(Σ (W^r v^F_i ⊙ T̄)),  v^O_i = r_i v^F_i + v^F_i + ReLU(v_i)            Eq. 7.11–7.12 (decision 'HiRE gate')
  s(I, S) = cos(mean_i v^O_i, T̄)                                               §7.4.2
Loss: triplet on s (Eq. 7.13) + L_add = triplet on cos(mean V^G, mean T^A) (thesis §7.4.3, decision 'HiRE L_add').
Training masks 10 % of the words (replaced by [MASK]) (thesis §7.5.1).

Exact tiling.  W2 q^t_i = Σ_j β_ij (W2 t_j) because Σ_j β_ij = 1 (bias included), so `forward_sim`
projects each context item once per tile and only mixes the projections per pair; the gate's
W^r v^F · T̄ = v^F · (W^rᵀ T̄) + b · T̄ likewise moves W^r to the context side.  `score_pairs`
evaluates the equations literally for aligned pairs (the one-pair-at-a-time reference the tests and
`tools/bench_pairwise_eval.py` compare against).  No batch-level statistics: every pair is scored
independently of the tile.

Extra cross-modal negatives (§7.5.1, ``loss.extra_negatives``): the training loader adds K images and K
captions from outside the batch (`retrieval.data.negatives`); `forward` scores the batch's queries
against them and both triplets count them as negatives (decision 'HiRE extra negatives').

Not implemented: the optional textual graph (§3.1 ②, off in the paper's final model because it hurt).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from shared.config import bounded
from shared.layers import l2_normalize, masked_mean, masked_softmax

from retrieval.data.inputs import ImageInputs
from retrieval.layers import BertConfig, BertTextEncoder, bert_from_config, xavier_linear
from retrieval.losses import ExtraScores, RankingLoss
from retrieval.models.base import Outputs, PairwiseRetrievalModel
from retrieval.models.registry import MODELS

TYPICAL_REGIONS, TYPICAL_WORDS = 36, 24  # tile sizing only (`pair_bytes`); never changes a score


@dataclass(frozen=True)
class HiREConfig:
    """The ``model:`` section of ``hire_i2t`` / ``hire_t2i`` (each option: docs/retrieval.md#hire)."""

    embed_dim: int = bounded(1024, minimum=1)
    feature_dim: int = bounded(2048, minimum=1)
    attention_dim: int = bounded(256, minimum=1)
    heads: int = bounded(16, minimum=1)
    ffn_dim: int = bounded(1024, minimum=1)
    dropout: float = bounded(0.1, minimum=0.0, maximum=1.0)
    self_attention: Literal["transformer", "literal"] = "transformer"
    graph: bool = True
    #: μ of the VSSG: regions i, j get a spatial edge iff IoU(i, j) > μ (§7.4.1; μ = 0.4 in §7.5.1)
    iou_threshold: float = bounded(0.4, minimum=0.0, maximum=1.0, doc="μ, the IoU above which two regions share an edge")
    #: scene-graph edges in the VSSG besides the IoU > μ edges (§7.4.1); true makes their absence an error
    semantic_edges: bool = True
    graph_norm: Literal["softmax", "count"] = "softmax"
    smooth: float = bounded(4.0, minimum=0.0, doc="λ of the cross attention (Eq. 7.8)")
    interaction_steps: int = bounded(2, minimum=1)
    fusion_input: Literal["enhanced", "literal"] = "enhanced"
    globals: Literal["enhanced", "literal"] = "enhanced"
    gate: Literal["scalar", "vector"] = "scalar"
    word_mask_rate: float = bounded(0.1, minimum=0.0, maximum=0.999)
    mask_token_id: int = bounded(103, minimum=0)
    aux_weights: dict[str, float] = bounded({"add": 1.0}, minimum=0.0)
    bert: BertConfig = field(default_factory=BertConfig)


def mask_words(input_ids: torch.Tensor, attention_mask: torch.Tensor, rate: float, mask_id: int) -> torch.Tensor:
    """Thesis §7.5.1 augmentation: each word piece between [CLS] and [SEP] becomes `mask_id` with probability `rate`."""
    valid = attention_mask.to(torch.bool)
    lengths = valid.sum(dim=1, keepdim=True)
    position = torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0)
    inner = valid & (position > 0) & (position < lengths - 1)
    hit = inner & (torch.rand(input_ids.shape, device=input_ids.device) < rate)
    return input_ids.masked_fill(hit, mask_id)


class IntraModalAttention(nn.Module):
    """VSA / TSA (Eq. 7.1–7.5): L-head self-attention in a D-dim space, W^h back to D_v, FFN.

    ``residual=True`` (decision 'HiRE self-attention' recommendation): one post-LN Transformer encoder layer, i.e.
    x = LN(x + W^h heads); x = LN(x + FFN(x)), dropout on both branches.
    ``residual=False``: Eq. 7.3 literally, v^A = FFN(W^h ‖ heads).  Padded positions never act as keys
    and are zero in the output.
    """

    def __init__(self, dim: int, attention_dim: int, heads: int, ffn_dim: int, dropout: float, residual: bool) -> None:
        super().__init__()
        if attention_dim % heads:
            raise ValueError(f"attention_dim {attention_dim} is not divisible by {heads} heads")
        self.heads, self.attention_dim, self.residual, self.dropout = heads, attention_dim, residual, dropout
        self.qkv = nn.Linear(dim, 3 * attention_dim)
        self.out = nn.Linear(attention_dim, dim)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ffn_dim, dim))
        self.norm_attention = nn.LayerNorm(dim) if residual else None
        self.norm_ffn = nn.LayerNorm(dim) if residual else None
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x (B, N, D_v), mask (B, N) bool → (B, N, D_v)."""
        batch, items, _ = x.shape
        q, k, v = self.qkv(x).view(batch, items, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        heads = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :],
                                               dropout_p=self.dropout if self.training else 0.0)
        attended = self.out(heads.transpose(1, 2).reshape(batch, items, self.attention_dim))
        if self.residual:
            x = self.norm_attention(x + self.drop(attended))
            out = self.norm_ffn(x + self.drop(self.ffn(x)))
        else:
            out = self.ffn(attended)
        return out * mask.unsqueeze(-1).to(out.dtype)


class RelationAwareGCN(nn.Module):
    """VSSG reasoning (Eq. 7.6–7.7): E_ij = (W^φ v^A_i)ᵀ(W^ϕ v^A_j) on allowed edges, V^G = (E V^A W^g) W^r + V^A.

    decision 'HiRE graph normalisation': ``norm="softmax"`` masks non-edges to −∞ and normalises each row over its edges (the
    adjacency carries the self-loop); ``"count"`` keeps E on the edges and divides by the node count
    (VSRN style).  `forward` returns the features and the normalised edge weights (B, K, K).
    """

    def __init__(self, dim: int, edge_dim: int, norm: str) -> None:
        super().__init__()
        self.phi = nn.Linear(dim, edge_dim)
        self.psi = nn.Linear(dim, edge_dim)
        self.gcn = nn.Linear(dim, dim, bias=False)
        self.residual = nn.Linear(dim, dim)
        self.norm = norm

    def forward(self, x: torch.Tensor, adjacency: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, K, D), adjacency (B, K, K) bool, mask (B, K) bool → ((B, K, D), edge weights (B, K, K))."""
        allowed = adjacency.to(torch.bool) & mask.unsqueeze(1) & mask.unsqueeze(2)
        scores = self.phi(x) @ self.psi(x).transpose(1, 2)
        if self.norm == "softmax":
            edges = masked_softmax(scores, allowed, dim=-1)
        else:
            edges = scores * allowed / mask.sum(dim=1).clamp_min(1).view(-1, 1, 1).to(scores.dtype)
        out = self.residual(edges @ self.gcn(x)) + x
        return out * mask.unsqueeze(-1).to(out.dtype), edges


class ConditionalFusion(nn.Module):
    """DIME conditional fusion (Eq. 7.10): x_i ← ReLU(W1(x_i ⊙ tanh(W2 q_i) + W3 q_i)) + x_i."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.w1, self.w2, self.w3 = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)

    def fuse(self, x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        """x, W2 q, W3 q (broadcastable) → the fused features; tanh(s) = 2σ(2s) − 1 (σ is ~5× faster on CPU)."""
        gate = 2.0 * torch.sigmoid(2.0 * scale) - 1.0
        return F.relu(self.w1(torch.addcmul(shift, x, gate)), inplace=True) + x


class HiRE(PairwiseRetrievalModel):
    """HiRE in one direction (subclasses `HiREI2T`, `HiRET2I`); options in `HiREConfig` (module docstring)."""

    Config = HiREConfig
    text_kind = "bert"
    direction = "i2t"
    name = "hire_i2t"
    #: `forward` scores ``batch["extra"]`` (``loss.extra_negatives``, the thesis §7.5.1; `retrieval.train`)
    takes_extra_negatives = True

    def __init__(self, config: HiREConfig, loss: RankingLoss, vocab_size: int | None = None,
                 word_vectors: np.ndarray | None = None) -> None:
        if config.attention_dim % config.heads:
            raise ValueError(f"attention_dim {config.attention_dim} is not divisible by {config.heads} heads")
        bert = bert_from_config(config.bert)   # built first: the parameter initialisation order is part of a seeded result
        super().__init__(loss, config.aux_weights)
        self.config = config
        dim = int(config.embed_dim)
        self.dim = dim
        self.graph_norm, self.fusion_input = config.graph_norm, config.fusion_input
        self.globals, self.gate = config.globals, config.gate
        residual = config.self_attention == "transformer"
        self.smooth = float(config.smooth)
        self.word_mask_rate, self.mask_token_id = float(config.word_mask_rate), int(config.mask_token_id)
        self.region_fc = xavier_linear(int(config.feature_dim), dim)
        self.text_encoder = BertTextEncoder(bert, dim)
        attention = dict(attention_dim=int(config.attention_dim), heads=int(config.heads),
                         ffn_dim=int(config.ffn_dim), dropout=float(config.dropout), residual=residual)
        self.vsa = IntraModalAttention(dim, **attention)
        self.tsa = IntraModalAttention(dim, **attention)
        self.graph = RelationAwareGCN(dim, int(config.attention_dim), self.graph_norm) if config.graph else None
        self.interactions = nn.ModuleList(ConditionalFusion(dim) for _ in range(int(config.interaction_steps)))
        self.gate_fc = nn.Linear(dim, dim)

    # ------------------------------------------------------------------ per-item encoding
    def image_inputs(self) -> ImageInputs:
        """Regions, their mask and (graph on) the VSSG adjacency, built by the loader with μ = ``iou_threshold``."""
        keys = ("regions", "region_mask") + (("region_graph",) if self.graph is not None else ())
        return ImageInputs(keys, self.config.iou_threshold)

    def encode_images(self, images: dict[str, torch.Tensor]) -> Outputs:
        """V (raw), V^A, V^G (local), V̄ (global), l2norm(mean V^G) (pooled) and the region mask."""
        mask = images["region_mask"].to(torch.bool)
        raw = self.region_fc(images["regions"]) * mask.unsqueeze(-1)
        attended = self.vsa(raw, mask)
        out: Outputs = {"raw": raw, "mask": mask}
        local = attended
        if self.graph is not None:
            local, out["edges"] = self.graph(attended, images["region_graph"], mask)
        out.update(local=local, pooled=l2_normalize(masked_mean(local, mask)))
        out["global"] = masked_mean(local if self.globals == "enhanced" else raw, mask)
        if self.fusion_input == "literal":
            out["fuse"] = attended  # Eq. 7.10 as printed: v^A in the fusion and its residual (decision 'HiRE fusion input')
        return out

    def encode_texts(self, texts: dict[str, torch.Tensor]) -> Outputs:
        """T (raw), T^A (local), T̄ (global), l2norm(mean T^A) (pooled) and the word mask."""
        ids = texts["input_ids"]
        if self.training and self.word_mask_rate > 0:
            ids = mask_words(ids, texts["attention_mask"], self.word_mask_rate, self.mask_token_id)
        raw, mask = self.text_encoder(ids, texts["attention_mask"])
        local = self.tsa(raw, mask)
        out = {"raw": raw, "local": local, "mask": mask, "pooled": l2_normalize(masked_mean(local, mask))}
        out["global"] = masked_mean(local if self.globals == "enhanced" else raw, mask)
        return out

    def _roles(self, image_feats: Outputs, text_feats: Outputs) -> tuple[Outputs, Outputs]:
        """(query side, context side): the enhanced modality and the one it attends to."""
        return (image_feats, text_feats) if self.direction == "i2t" else (text_feats, image_feats)

    # ------------------------------------------------------------------ tile scoring
    @property
    def pair_bytes(self) -> int:
        """float32 working memory of one pair in `forward_sim`: ~8 (N, D) tensors and 3 (N, M) maps."""
        queries, keys = (TYPICAL_REGIONS, TYPICAL_WORDS) if self.direction == "i2t" else (TYPICAL_WORDS, TYPICAL_REGIONS)
        return 4 * queries * (8 * self.dim + 3 * keys)

    def forward_sim(self, image_feats: Outputs, text_feats: Outputs) -> torch.Tensor:
        """(Bi, Bt) scores of every image against every caption (Eq. 7.8–7.12, batched over the tile).

        Tile tensors are context-major: attention maps (Bc, M, Bq·N), features (Bc, Bq·N, D), so each
        product is one matmul (step 1's logits a single GEMM) and the mixing `bmm` reads the maps
        transposed (the fast MKL path for a short inner dimension M).  β is exp(λc − λ) over its masked
        column sum (the softmax shifted by the bound c ≤ 1 instead of the maximum; identical up to
        rounding).
        """
        query, context = self._roles(image_feats, text_feats)
        n_query, n_items, dim = query["local"].shape
        c_mask = context["mask"].to(query["local"].dtype).unsqueeze(-1)           # (Bc, M, 1)
        keys = self.smooth * l2_normalize(context["local"])                       # λ k̂ (Bc, M, D)
        fused = query.get("fuse", query["local"]).reshape(n_query * n_items, dim)
        logits = keys @ l2_normalize(query["local"]).reshape(-1, dim).T           # λc (Bc, M, Bq·N)
        for step, fusion in enumerate(self.interactions):
            if step > 0:
                logits = (keys @ fused.transpose(1, 2)) / fused.norm(dim=-1).clamp_min(1e-8).unsqueeze(1)
            weights = torch.exp(logits - self.smooth) * c_mask                    # padded keys → 0
            total = weights.sum(dim=1).unsqueeze(-1)                              # (Bc, Bq·N, 1)
            weights = weights.transpose(1, 2)
            scale = (weights @ fusion.w2(context["local"])) / total               # Σ_j β_ij W2 t_j = W2 q^t_i
            shift = (weights @ fusion.w3(context["local"])) / total
            fused = fusion.fuse(fused, scale, shift)
        return self._tile_score(fused.view(-1, n_query, n_items, dim), query, context)

    def _tile_score(self, fused: torch.Tensor, query: Outputs, context: Outputs) -> torch.Tensor:
        """LGII (Eq. 7.11–7.12) and the pooled cosine (§7.4.2) of a tile: fused (Bc, Bq, N, D) → (Bi, Bt).

        Scalar gate: W^r v · ḡ = v · (W^rᵀ ḡ) + b · ḡ, so W^r is applied to the Bc globals only.
        l2norm(mean_i v^O_i) = l2norm(Σ_i v^O_i) over the valid items.
        """
        g = context["global"]                                                     # (Bc, D)
        if self.gate == "scalar":
            logits = torch.einsum("cqnd,cd->cqn", fused, g @ self.gate_fc.weight) + (g @ self.gate_fc.bias).view(-1, 1, 1)
            gate = torch.sigmoid(logits).unsqueeze(-1)
        else:
            gate = torch.sigmoid(self.gate_fc(fused) * g[:, None, None, :])
        enhanced = torch.addcmul(torch.relu(query["raw"]), fused, gate + 1.0)      # r v^F + v^F + ReLU(v)
        q_mask = query["mask"].to(fused.dtype).unsqueeze(-1)                      # (Bq, N, 1)
        pooled = l2_normalize((enhanced * q_mask).sum(dim=2))                     # (Bc, Bq, D)
        scores = (pooled * l2_normalize(g).unsqueeze(1)).sum(dim=-1)             # (Bc, Bq)
        return scores.T if self.direction == "i2t" else scores

    def score_pairs(self, image_feats: Outputs, text_feats: Outputs) -> torch.Tensor:
        """(B,) scores of aligned pairs (image b, caption b), Eq. 7.8–7.12 evaluated literally.

        The one-pair-at-a-time reference: β by a masked softmax, q^t_i formed first, then W2, W3 and
        W^r applied per pair, as the public cross-attention codes do (`forward_sim` agrees to float
        precision).
        """
        return self.score_details(image_feats, text_feats)["scores"]

    def score_details(self, image_feats: Outputs, text_feats: Outputs) -> Outputs:
        """`score_pairs` with its explanation: ``scores`` (B,) and ``attention`` (B, steps, N, M), the
        cross-attention β of every interaction step (Eq. 7.8)."""
        query, context = self._roles(image_feats, text_feats)
        keys, key_mask = l2_normalize(context["local"]), context["mask"].unsqueeze(1)
        attend, fused = query["local"], query.get("fuse", query["local"])
        maps = []
        for fusion in self.interactions:
            beta = masked_softmax(self.smooth * (l2_normalize(attend) @ keys.transpose(1, 2)), key_mask, dim=-1)
            attended = beta @ context["local"]                                    # q^t (B, N, D)
            fused = fusion.fuse(fused, fusion.w2(attended), fusion.w3(attended))
            attend = fused
            maps.append(beta)
        g = context["global"].unsqueeze(1)                                        # (B, 1, D)
        product = self.gate_fc(fused) * g
        gate = torch.sigmoid(product.sum(dim=-1, keepdim=True)) if self.gate == "scalar" else torch.sigmoid(product)
        enhanced = gate * fused + fused + torch.relu(query["raw"])
        pooled = l2_normalize(masked_mean(enhanced, query["mask"], dim=1))
        return {"scores": (pooled * l2_normalize(g.squeeze(1))).sum(dim=-1), "attention": torch.stack(maps, dim=1)}

    def explain(self, images: dict[str, torch.Tensor], texts: dict[str, torch.Tensor]) -> Outputs:
        """Aligned pairs (image b, caption b): ``attention`` (B, steps, N, M), the cross attention β of every
        interaction step (Eq. 7.8; i2t: regions over words, t2i: words over regions), ``edges`` (B, K, K) the
        VSSG edge weights (Eq. 7.6) when the graph is on, and ``scores`` (B,)."""
        image_feats, text_feats = self.encode_images(images), self.encode_texts(texts)
        out = self.score_details(image_feats, text_feats)
        if "edges" in image_feats:
            out["edges"] = image_feats["edges"]
        return out

    # ------------------------------------------------------------------ training
    def forward(self, batch: dict[str, Any]) -> dict[str, Any]:
        """The in-batch (B, B) scores and, when the loader added extra negatives (``batch["extra"]``,
        `retrieval.data.negatives`, the thesis §7.5.1), ``extra``: the `ExtraScores` of the batch's
        queries against them for Eq. 7.13 (``rank``) and for L_add (``add``)."""
        out = super().forward(batch)
        extra = batch.get("extra")
        if extra is None:
            return out
        image_feats, text_feats = out["image"], out["text"]
        extra_images, extra_texts = self.encode_images(extra["images"]), self.encode_texts(extra["texts"])
        ids = dict(text_image_ids=extra["text_image_ids"], image_ids=extra["image_ids"])
        out["extra"] = {
            "rank": ExtraScores(self.forward_sim(image_feats, extra_texts), self.forward_sim(extra_images, text_feats).T, **ids),
            "add": ExtraScores(image_feats["pooled"] @ extra_texts["pooled"].T,
                               text_feats["pooled"] @ extra_images["pooled"].T, **ids),
        }
        return out

    def training_losses(self, outputs: dict[str, Any], batch: dict[str, Any]) -> Outputs:
        """L = L_rank (Eq. 7.13) + L_add (§7.4.3) [+ λ·IMC], each over the in-batch and the extra negatives."""
        image_feats, text_feats = outputs["image"], outputs["text"]
        extra = outputs.get("extra") or {}
        terms = self.loss.from_scores(outputs["scores"], batch.get("image_ids"), image_feats["pooled"],
                                      text_feats["pooled"], extra=extra.get("rank"))
        add = self._add_loss(image_feats, text_feats, batch, extra.get("add"))
        terms["add"] = add
        terms["total"] = self.loss.total(terms) + self.aux_weights.get("add", 1.0) * add
        return terms

    def auxiliary_losses(self, image_out: Outputs, text_out: Outputs, batch: dict[str, Any]) -> Outputs:
        """L_add (thesis §7.4.3, decision 'HiRE L_add'): the same triplet on cos(l2norm(mean V^G), l2norm(mean T^A)), unweighted."""
        return {"add": self._add_loss(image_out, text_out, batch)}

    def _add_loss(self, image_out: Outputs, text_out: Outputs, batch: dict[str, Any],
                  extra: ExtraScores | None = None) -> torch.Tensor:
        scores = image_out["pooled"] @ text_out["pooled"].T
        return self.loss.from_scores(scores, batch.get("image_ids"), extra=extra)["rank"]


@MODELS.register("hire_i2t", configs={"tiny": "hire_i2t_tiny", "f30k": "hire_i2t_f30k", "coco": "hire_i2t_coco"},
                 summary="HiRE image-to-text cross-interaction model (BERT text)")
class HiREI2T(HiRE):
    """HiRE image-to-text version: regions attend over words, gated by T̄ (λ = 4 in the paper)."""

    direction = "i2t"
    name = "hire_i2t"


@MODELS.register("hire_t2i", configs={"tiny": "hire_t2i_tiny", "f30k": "hire_t2i_f30k", "coco": "hire_t2i_coco"},
                 summary="HiRE text-to-image cross-interaction model (BERT text)")
class HiRET2I(HiRE):
    """HiRE text-to-image version: words attend over regions, gated by V̄ (λ = 9 in the paper)."""

    direction = "t2i"
    name = "hire_t2i"
