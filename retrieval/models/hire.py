"""HiRE — Hybrid-modal Interaction with multiple Relational Enhancements (thesis 000 Ch. 7; retrieval-models.md §3).

A cross-interaction (pairwise) model in two directional versions, registered as ``hire_i2t`` and
``hire_t2i``; HiRE* averages their similarity matrices at evaluation (`retrieval.evaluation.ensemble`).

Per item (computed once, `encode_images` / `encode_texts`):
  V = FC(regions) (2048→D_v), T = FC(BERT(words)) (768→D_s)                 §7.3
  V^A = VSA(V), T^A = TSA(T)      multi-head self-attention, D = 256, L = 16   Eq. 7.1–7.5 (HI-1)
  V^G = R-GCN(V^A, E)             VSSG: IoU > μ + scene-graph edges, learned E   Eq. 7.6–7.7 (HI-2)
  V̄ = mean V^G, T̄ = mean T^A                                                 §7.3 (HI-5)
Per pair (`forward_sim`, one batched call per tile), written for i2t (t2i swaps the roles: words
attend over regions, gated by V̄):
  β_ij = softmax_j(λ cos(v_i, t^A_j)),  q^t_i = Σ_j β_ij t^A_j                 Eq. 7.8–7.9
  v^F_i = ReLU(W1(v_i ⊙ tanh(W2 q^t_i) + W3 q^t_i)) + v_i      twice (LLII)      Eq. 7.10 (HI-4)
  r_i = σ(Σ (W^r v^F_i ⊙ T̄)),  v^O_i = r_i v^F_i + v^F_i + ReLU(v_i)            Eq. 7.11–7.12 (HI-7)
  s(I, S) = cos(mean_i v^O_i, T̄)                                               §7.4.2
Loss: triplet on s (Eq. 7.13) + L_add = triplet on cos(mean V^G, mean T^A) (§7.4.3, HI-9).
Training masks 10 % of the words (replaced by [MASK]) (§7.5.1).

Exact tiling.  W2 q^t_i = Σ_j β_ij (W2 t_j) because Σ_j β_ij = 1 (bias included), so `forward_sim`
projects each context item once per tile and only mixes the projections per pair; the gate's
W^r v^F · T̄ = v^F · (W^rᵀ T̄) + b · T̄ likewise moves W^r to the context side.  `score_pairs`
evaluates the equations literally for aligned pairs (the one-pair-at-a-time reference the tests and
`tools/bench_pairwise_eval.py` compare against).  No batch-level statistics: every pair is scored
independently of the tile.

Not implemented: the optional textual graph (§3.1 ②, off in the paper's final model because it hurt)
and the extra cross-modal negatives of HI-6 (ignored, as the spec recommends).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from shared.layers import l2_normalize, masked_mean, masked_softmax

from retrieval.losses import RankingLoss
from retrieval.models.base import Outputs
from retrieval.models.encoders import BertTextEncoder, build_bert, xavier_linear
from retrieval.models.pairwise import PairwiseRetrievalModel

GRAPH_NORMS = ("softmax", "count")
READINGS = ("enhanced", "literal")
GATES = ("scalar", "vector")
TYPICAL_REGIONS, TYPICAL_WORDS = 36, 24  # tile sizing only (`pair_bytes`); never changes a score

DEFAULTS: dict[str, Any] = {
    "embed_dim": 1024, "feature_dim": 2048, "attention_dim": 256, "heads": 16, "ffn_dim": 1024,
    "dropout": 0.1, "self_attention": "transformer", "graph": True, "graph_norm": "softmax",
    "smooth": 4.0, "interaction_steps": 2, "fusion_input": "enhanced", "globals": "enhanced",
    "gate": "scalar", "word_mask_rate": 0.1, "mask_token_id": 103, "aux_weights": {"add": 1.0},
    "bert": {"dir": None, "pretrained": True, "arch": None},
}


def _choice(cfg: dict[str, Any], key: str, allowed: tuple[str, ...]) -> str:
    if cfg[key] not in allowed:
        raise ValueError(f"HiRE option {key}={cfg[key]!r} not in {allowed}")
    return cfg[key]


def mask_words(input_ids: torch.Tensor, attention_mask: torch.Tensor, rate: float, mask_id: int) -> torch.Tensor:
    """§7.5.1 augmentation: each word piece between [CLS] and [SEP] becomes `mask_id` with probability `rate`."""
    valid = attention_mask.to(torch.bool)
    lengths = valid.sum(dim=1, keepdim=True)
    position = torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0)
    inner = valid & (position > 0) & (position < lengths - 1)
    hit = inner & (torch.rand(input_ids.shape, device=input_ids.device) < rate)
    return input_ids.masked_fill(hit, mask_id)


class IntraModalAttention(nn.Module):
    """VSA / TSA (Eq. 7.1–7.5): L-head self-attention in a D-dim space, W^h back to D_v, FFN.

    ``residual=True`` (HI-1 recommendation): one post-LN Transformer encoder layer, i.e.
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

    HI-2: ``norm="softmax"`` masks non-edges to −∞ and normalises each row over its edges (the
    adjacency carries the self-loop); ``"count"`` keeps E on the edges and divides by the node count
    (VSRN style).  The last normalised edge weights are kept in `last_edges` for the explain export.
    """

    def __init__(self, dim: int, edge_dim: int, norm: str) -> None:
        super().__init__()
        self.phi = nn.Linear(dim, edge_dim)
        self.psi = nn.Linear(dim, edge_dim)
        self.gcn = nn.Linear(dim, dim, bias=False)
        self.residual = nn.Linear(dim, dim)
        self.norm = norm
        self.last_edges: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, adjacency: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x (B, K, D), adjacency (B, K, K) bool, mask (B, K) bool → (B, K, D)."""
        allowed = adjacency.to(torch.bool) & mask.unsqueeze(1) & mask.unsqueeze(2)
        scores = self.phi(x) @ self.psi(x).transpose(1, 2)
        if self.norm == "softmax":
            edges = masked_softmax(scores, allowed, dim=-1)
        else:
            edges = scores * allowed / mask.sum(dim=1).clamp_min(1).view(-1, 1, 1).to(scores.dtype)
        self.last_edges = edges.detach()
        out = self.residual(edges @ self.gcn(x)) + x
        return out * mask.unsqueeze(-1).to(out.dtype)


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
    """HiRE in one direction (subclasses `HiREI2T`, `HiRET2I`); options in `DEFAULTS` (module docstring)."""

    text_kind = "bert"
    direction = "i2t"

    def __init__(self, loss: RankingLoss, bert: nn.Module, **options: Any) -> None:
        unknown = set(options) - set(DEFAULTS)
        if unknown:
            raise ValueError(f"unknown HiRE options {sorted(unknown)}")
        cfg = {**DEFAULTS, **options}
        super().__init__(loss, cfg["aux_weights"])
        dim = int(cfg["embed_dim"])
        self.dim = dim
        self.graph_norm = _choice(cfg, "graph_norm", GRAPH_NORMS)
        self.fusion_input = _choice(cfg, "fusion_input", READINGS)
        self.globals = _choice(cfg, "globals", READINGS)
        self.gate = _choice(cfg, "gate", GATES)
        residual = _choice(cfg, "self_attention", ("transformer", "literal")) == "transformer"
        if int(cfg["interaction_steps"]) < 1:
            raise ValueError(f"HiRE interaction_steps must be at least 1, got {cfg['interaction_steps']}")
        if not 0.0 <= float(cfg["word_mask_rate"]) < 1.0:
            raise ValueError(f"HiRE word_mask_rate must be in [0, 1), got {cfg['word_mask_rate']}")
        self.smooth = float(cfg["smooth"])
        self.word_mask_rate, self.mask_token_id = float(cfg["word_mask_rate"]), int(cfg["mask_token_id"])
        self.region_fc = xavier_linear(int(cfg["feature_dim"]), dim)
        self.text_encoder = BertTextEncoder(bert, dim)
        attention = dict(attention_dim=int(cfg["attention_dim"]), heads=int(cfg["heads"]),
                         ffn_dim=int(cfg["ffn_dim"]), dropout=float(cfg["dropout"]), residual=residual)
        self.vsa = IntraModalAttention(dim, **attention)
        self.tsa = IntraModalAttention(dim, **attention)
        self.graph = RelationAwareGCN(dim, int(cfg["attention_dim"]), self.graph_norm) if cfg["graph"] else None
        self.interactions = nn.ModuleList(ConditionalFusion(dim) for _ in range(int(cfg["interaction_steps"])))
        self.gate_fc = nn.Linear(dim, dim)
        self.last_attention: list[torch.Tensor] = []

    # ------------------------------------------------------------------ per-item encoding
    def image_inputs(self) -> tuple[str, ...]:
        return ("regions", "region_mask") + (("region_graph",) if self.graph is not None else ())

    def encode_images(self, images: dict[str, torch.Tensor]) -> Outputs:
        """V (raw), V^A, V^G (local), V̄ (global), l2norm(mean V^G) (pooled) and the region mask."""
        mask = images["region_mask"].to(torch.bool)
        raw = self.region_fc(images["regions"]) * mask.unsqueeze(-1)
        attended = self.vsa(raw, mask)
        local = self.graph(attended, images["region_graph"], mask) if self.graph is not None else attended
        out = {"raw": raw, "local": local, "mask": mask, "pooled": l2_normalize(masked_mean(local, mask))}
        out["global"] = masked_mean(local if self.globals == "enhanced" else raw, mask)
        if self.fusion_input == "literal":
            out["fuse"] = attended  # Eq. 7.10 as printed: v^A in the fusion and its residual (HI-4)
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
        precision).  The attention maps of every step are kept in `last_attention` (explain export).
        """
        query, context = self._roles(image_feats, text_feats)
        keys, key_mask = l2_normalize(context["local"]), context["mask"].unsqueeze(1)
        attend, fused = query["local"], query.get("fuse", query["local"])
        self.last_attention = []
        for fusion in self.interactions:
            beta = masked_softmax(self.smooth * (l2_normalize(attend) @ keys.transpose(1, 2)), key_mask, dim=-1)
            attended = beta @ context["local"]                                    # q^t (B, N, D)
            fused = fusion.fuse(fused, fusion.w2(attended), fusion.w3(attended))
            attend = fused
            self.last_attention.append(beta.detach())
        g = context["global"].unsqueeze(1)                                        # (B, 1, D)
        product = self.gate_fc(fused) * g
        gate = torch.sigmoid(product.sum(dim=-1, keepdim=True)) if self.gate == "scalar" else torch.sigmoid(product)
        enhanced = gate * fused + fused + torch.relu(query["raw"])
        pooled = l2_normalize(masked_mean(enhanced, query["mask"], dim=1))
        return (pooled * l2_normalize(g.squeeze(1))).sum(dim=-1)

    # ------------------------------------------------------------------ losses
    def auxiliary_losses(self, image_out: Outputs, text_out: Outputs, batch: dict[str, Any]) -> Outputs:
        """L_add (§7.4.3, HI-9): the same triplet on cos(l2norm(mean V^G), l2norm(mean T^A)), unweighted."""
        scores = image_out["pooled"] @ text_out["pooled"].T
        return {"add": self.loss.from_scores(scores, batch.get("image_ids"))["rank"]}

    @classmethod
    def from_config(cls, model: dict[str, Any], loss: RankingLoss, vocab_size: int | None,
                    word_vectors: np.ndarray | None, bert_dir: str | None, pretrained: bool) -> "HiRE":
        options = dict(model)
        bert_cfg = {**DEFAULTS["bert"], **options.pop("bert", {})}
        load = pretrained and bert_cfg["pretrained"]
        return cls(loss, build_bert(bert_dir or bert_cfg["dir"], load, None if load else bert_cfg["arch"]), **options)


class HiREI2T(HiRE):
    """HiRE image-to-text version: regions attend over words, gated by T̄ (λ = 4 in the paper)."""

    direction = "i2t"


class HiRET2I(HiRE):
    """HiRE text-to-image version: words attend over regions, gated by V̄ (λ = 9 in the paper)."""

    direction = "t2i"
