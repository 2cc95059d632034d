"""HSLM — hierarchical semantic correspondences: MGCN, self- and cross-attention (the HSLM paper; docs/retrieval.md#hslm).

Image (§3.1, §3.3): regions → FC 2048→d1 (Xavier) → l2norm → MGCN (4 × Rs_GCN, Eq. 7–10) → l2norm
→ R* (K, d1).
Text (§3.2–3.3): word ids → W_e (d2 = 300, learned, decision 'HSLM word embedding') → `WordSelfAttention` (Eq. 3–6, decision 'HSLM self-attention') → E_f →
MGCN at d2 (Eq. 11, decision 'HSLM text graph width') → Bi-GRU d2→d1, directions averaged (Eq. 12–14) → l2norm → E* (M, d1).
The public VSRN / SGRAF (Paranioar/SGRAF) codes fix the l2-normalisation of R* and E* ("following [25]", "follow [7]").
Cross attention (§3.4, Eq. 15–16, decision 'HSLM cross attention'): F_jk = σ(γ t_jᵀ r*_k), a_j = Σ_k F_jk r*_k / Σ_k F_jk — one
text-conditioned visual context per word (``cross_attention: softmax`` is SCAN/SGRAF's softmax_k(λ t_jᵀ r*_k)).
Similarity (§3.5, Eq. 17–22): s_j = l2norm(W_l (a_j − t_j)²) per word (S_L), global Ê* = pool(E*),
R̂*_a = pool(a_1..a_M) (mean-query attention pooling, the paper's dot form by default), s_G = l2norm(W_g (R̂*_a − Ê*)²);
S* = [s_G; s_1..s_M].  Head (decision 'HSLM similarity head') ``saf`` = SGRAF's SAF: gate_k = σ(BN(w·S*_k)), w_k = gate_k / Σ gate,
s = l2norm(Σ_k w_k S*_k), score = σ(FC(s)); ``literal`` = Eq. 21–22 per vector: S_A,k = σ(W_S S*_k) ⊙ S*_k,
score = FC(mean_k S_A,k).
Loss (HSLM paper §3.6): the bidirectional hardest-negative triplet, margin 0.2, on the learned score.

The SAF gates of the words are HSLM's word-level interpretability output (`score_details`; `retrieval explain`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

from shared.config import bounded
from shared.layers import l2_normalize, masked_mean, masked_softmax

from retrieval.layers import GRUTextEncoder, RegionEncoder, length_mask
from retrieval.layers.blocks import MeanQueryAttnPool, apply_to_valid
from retrieval.layers.graph_reasoning import GraphReasoning, run_gru
from retrieval.losses import RankingLoss
from retrieval.models.base import Outputs, PairwiseRetrievalModel
from retrieval.models.registry import MODELS



@dataclass(frozen=True)
class HSLMConfig:
    """The ``model:`` section of ``hslm`` (each option: docs/retrieval.md#hslm)."""

    embed_dim: int = bounded(1024, minimum=1, doc="d1")
    region_dim: int = bounded(2048, minimum=1)
    word_dim: int = bounded(300, minimum=1, doc="d2")
    word_init: Literal["random", "glove"] = "random"
    word_dropout: float = bounded(0.0, minimum=0.0, maximum=1.0)
    gcn_layers: int = bounded(4, minimum=0)
    self_attention: Literal["literal", "softmax"] = "literal"
    self_attention_residual: bool = False
    cross_attention: Literal["sigmoid", "softmax"] = "sigmoid"
    gate_scale: float = bounded(1.0, minimum=0.0, doc="γ of the sigmoid cross attention (Eq. 15)")
    cross_smooth: float = bounded(9.0, minimum=0.0)
    sim_dim: int = bounded(256, minimum=1)
    pool_form: Literal["dot", "parametric"] = "dot"
    similarity_head: Literal["saf", "literal"] = "literal"


MAX_WORDS, REGIONS = 64, 36  # tile sizing (data.max_caption_length, BUTD regions)


class WordSelfAttention(nn.Module):
    """E_f = (E W_Q (E W_K)ᵀ / M) E W_V over the M valid words (HSLM paper Eq. 3–6, decision 'HSLM self-attention').

    ``form="literal"`` (the paper): no softmax, divided by the sentence length M; ``"softmax"``:
    softmax_l(q_j·k_l / √d).  ``residual`` adds E (an option only; the paper has none).
    `forward` returns (E_f, the (B, M, M) word-to-word weights).
    """

    def __init__(self, dim: int, form: str = "literal", residual: bool = False) -> None:
        super().__init__()
        self.query = nn.Linear(dim, dim, bias=False)
        self.key = nn.Linear(dim, dim, bias=False)
        self.value = nn.Linear(dim, dim, bias=False)
        self.form, self.residual = form, residual

    def forward(self, words: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        keep = mask.to(words.dtype)
        scores = self.query(words) @ self.key(words).transpose(1, 2)
        if self.form == "literal":
            weights = scores * keep.unsqueeze(1) / keep.sum(dim=1).clamp_min(1.0).view(-1, 1, 1)
        else:
            weights = masked_softmax(scores / math.sqrt(words.shape[-1]), mask.unsqueeze(1), dim=-1)
        out = weights @ self.value(words)
        out = out + words if self.residual else out
        return out * keep.unsqueeze(-1), weights


class SimilarityRepresentation(nn.Module):
    """S(m1, m2) = l2norm(W |m1 − m2|²) (HSLM paper Eq. 17; SGRAF ``sim_tran*_w``)."""

    def __init__(self, dim: int, sim_dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, sim_dim)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return l2_normalize(self.linear((a - b).pow(2)))


class SimilarityHead(nn.Module):
    """Score of the (…, M+1, S) similarity vectors S* with a validity mask (…, M+1) (decision 'HSLM similarity head').

    Returns (score (…), gates (…, M+1)): the SAF gate σ(BN(w·S*_k)) or, for ``literal``, the mean
    of the vector gate σ(W_S S*_k) — zero on padded words.
    """

    def __init__(self, sim_dim: int, form: str = "literal") -> None:
        super().__init__()
        self.form = form
        if form == "saf":
            self.gate = nn.Linear(sim_dim, 1)
            self.norm = nn.BatchNorm1d(1)
        else:
            self.gate = nn.Linear(sim_dim, sim_dim)
        self.out = nn.Linear(sim_dim, 1, bias=form == "saf")  # a bias cannot change a ranking without the sigmoid

    def forward(self, sims: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        keep = mask.to(sims.dtype)
        if self.form == "saf":
            gates = torch.sigmoid(apply_to_valid(lambda x: self.norm(self.gate(x)), sims, mask)).squeeze(-1) * keep
            weights = gates / gates.sum(dim=-1, keepdim=True).clamp_min(1e-8)
            pooled = l2_normalize((weights.unsqueeze(-1) * sims).sum(dim=-2))
            return torch.sigmoid(self.out(pooled)).squeeze(-1), gates
        vector_gates = torch.sigmoid(self.gate(sims))
        gated = vector_gates * sims * keep.unsqueeze(-1)
        pooled = gated.sum(dim=-2) / keep.sum(dim=-1, keepdim=True).clamp_min(1.0)
        return self.out(pooled).squeeze(-1), vector_gates.mean(dim=-1) * keep


@MODELS.register("hslm", configs={"tiny": "hslm_tiny", "f30k": "hslm_f30k", "coco": "hslm_coco"},
                 summary="HSLM hierarchical semantic correspondences cross-interaction model (Bi-GRU text)")
class HSLM(PairwiseRetrievalModel):
    """HSLM (module docstring); `score_details` also returns the word gates and cross-attention gates."""

    name = "hslm"
    Config = HSLMConfig

    def __init__(self, config: HSLMConfig, loss: RankingLoss, vocab_size: int | None = None,
                 word_vectors: np.ndarray | None = None) -> None:
        vocab_size = self.require_vocab(self.name, vocab_size)
        super().__init__(loss)
        self.config = config
        dim, word_dim, sim_dim = config.embed_dim, config.word_dim, config.sim_dim
        self.cross_attention, self.gate_scale = config.cross_attention, float(config.gate_scale)
        self.cross_smooth = float(config.cross_smooth)
        self.region_encoder = RegionEncoder(config.region_dim, dim)
        self.image_graph = GraphReasoning(dim, config.gcn_layers)
        init = word_vectors if config.word_init == "glove" else None
        self.text_encoder = GRUTextEncoder(vocab_size, word_dim, dim, 1, True, config.word_dropout, init)
        self.self_attention = WordSelfAttention(word_dim, config.self_attention, bool(config.self_attention_residual))
        self.text_graph = GraphReasoning(word_dim, config.gcn_layers)
        self.text_pool = MeanQueryAttnPool(dim, config.pool_form)
        self.context_pool = MeanQueryAttnPool(dim, config.pool_form)
        self.local_sim = SimilarityRepresentation(dim, sim_dim)
        self.global_sim = SimilarityRepresentation(dim, sim_dim)
        self.head = SimilarityHead(sim_dim, config.similarity_head)
        self.pair_bytes = 4 * (3 * MAX_WORDS * dim + 2 * (MAX_WORDS + 1) * sim_dim + 3 * MAX_WORDS * REGIONS)

    def encode_images(self, images: dict[str, torch.Tensor]) -> Outputs:
        """R* (B, K, d1), l2-normalised, its mask and ``pooled`` = l2norm(mean R*) (B, d1), the per-image
        vector the optional IMC term reads ((our reading): HSLM's global image vector is caption-conditioned)."""
        mask = images["region_mask"].to(torch.bool)
        projected, _ = self.region_encoder(images["regions"], mask)
        reasoned = self.image_graph(l2_normalize(projected), mask)
        regions = l2_normalize(reasoned) * mask.unsqueeze(-1).to(reasoned.dtype)
        return {"regions": regions, "region_mask": mask, "pooled": l2_normalize(masked_mean(regions, mask, dim=1))}

    def encode_texts(self, texts: dict[str, torch.Tensor]) -> Outputs:
        """E* (B, M, d1) l2-normalised, ``mask`` and the global caption Ê* (B, d1) (Eq. 2–14, §3.5), also
        ``pooled`` for the optional IMC term."""
        encoder, lengths = self.text_encoder, texts["lengths"]
        embedded = encoder.dropout(encoder.embed(texts["tokens"]))
        mask = length_mask(lengths.to(embedded.device), embedded.shape[1])
        attended, _ = self.self_attention(embedded, mask)
        enhanced = self.text_graph(attended, mask)
        states, _ = run_gru(encoder.rnn, enhanced, lengths)
        words = l2_normalize(states) * mask.unsqueeze(-1).to(states.dtype)
        glob = self.text_pool(words, mask)
        return {"words": words, "mask": mask, "global": glob, "pooled": glob}

    def cross_gates(self, regions: torch.Tensor, region_mask: torch.Tensor, words: torch.Tensor) -> torch.Tensor:
        """(Bi, Bt, M, K) attention of every word over the regions of every image, rows summing to 1 (Eq. 16, decision 'HSLM cross attention')."""
        logits = torch.einsum("ikd,tmd->itmk", regions, words)
        keep = region_mask.to(torch.bool)[:, None, None, :]
        if self.cross_attention == "softmax":
            return masked_softmax(self.cross_smooth * logits, keep, dim=-1)
        gates = torch.sigmoid(self.gate_scale * logits) * keep
        return gates / gates.sum(dim=-1, keepdim=True).clamp_min(1e-8)

    def score_details(self, image_feats: Outputs, text_feats: Outputs) -> dict[str, torch.Tensor]:
        """``scores`` (Bi, Bt), ``word_gates`` (Bi, Bt, M), ``global_gate`` (Bi, Bt), ``cross_attention`` (Bi, Bt, M, K)."""
        regions, words, word_mask = image_feats["regions"], text_feats["words"], text_feats["mask"].to(torch.bool)
        n_img, n_txt, n_words = regions.shape[0], words.shape[0], words.shape[1]
        attention = self.cross_gates(regions, image_feats["region_mask"], words)
        contexts = torch.einsum("itmk,ikd->itmd", attention, regions)
        pair_mask = word_mask.unsqueeze(0).expand(n_img, -1, -1)
        contexts = contexts * pair_mask.unsqueeze(-1).to(contexts.dtype)
        local = self.local_sim(contexts, words.unsqueeze(0)) * pair_mask.unsqueeze(-1).to(contexts.dtype)
        flat_mask = pair_mask.reshape(n_img * n_txt, n_words)
        image_global = self.context_pool(contexts.reshape(n_img * n_txt, n_words, -1), flat_mask).view(n_img, n_txt, -1)
        glob = self.global_sim(image_global, text_feats["global"].unsqueeze(0))
        sims = torch.cat([glob.unsqueeze(2), local], dim=2)
        sims_mask = torch.cat([torch.ones_like(pair_mask[..., :1]), pair_mask], dim=2)
        scores, gates = self.head(sims, sims_mask)
        return {"scores": scores, "word_gates": gates[..., 1:], "global_gate": gates[..., 0], "cross_attention": attention}

    def forward_sim(self, image_feats: Outputs, text_feats: Outputs) -> torch.Tensor:
        """S_F (Eq. 22) of every image–caption pair of the two blocks."""
        return self.score_details(image_feats, text_feats)["scores"]

    def explain(self, images: dict[str, torch.Tensor], texts: dict[str, torch.Tensor]) -> Outputs:
        """Aligned pairs (image b, caption b): ``word_gates`` (B, M) and ``global_gate`` (B,) of the
        similarity head (Eq. 21), ``cross_attention`` (B, M, K) of every word over the regions (Eq. 16),
        and ``scores`` (B,)."""
        image_feats, text_feats = self.encode_images(images), self.encode_texts(texts)
        rows = torch.arange(image_feats["regions"].shape[0], device=image_feats["regions"].device)
        out = {}
        for b in rows.tolist():
            one = self.score_details({k: v[b:b + 1] for k, v in image_feats.items()},
                                     {k: v[b:b + 1] for k, v in text_feats.items()})
            for key, value in one.items():
                out.setdefault(key, []).append(value[0, 0])
        return {key: torch.stack(values) for key, values in out.items()}
