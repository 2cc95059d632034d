"""SMFEA — Structured Multi-modal Feature Embedding and Alignment (thesis 000 Ch. 6; retrieval-models.md §2).

Image: regions (B, K, 2048) → FC 2048→D (SM-1) → l2norm → mean-query attention pooling → V^D (Eq. 6.1–6.3).
Text: word ids → embedding (GloVe init) → Bi-GRU, directions averaged (Eq. 6.4) → l2norm → mean-query
attention pooling → S^D.
Trees: V^D / S^D → VCS-/TCS-Tree (`tree_lstm.StructuredTreeEncoder`, hidden 128) → node logits and V^T / S^T
(Eq. 6.5–6.14; S^T = Σ W'_t h^S_t + S^D as the §6.3.2 prose says, `text_tree_residual: false` is the
symmetric SM-5 reading).
CAC: CVSE consensus concepts (`cac.ConsensusConcepts`) → V^C / S^C and concept distributions.
Fusion: V^F = l2norm(β_d V^D + β_t l2norm(V^T) + β_c V^C), β = (0.6, 0.2, 0.2) (Eq. 6.15–6.16; each term
l2-normalised, §2.1(f) [INF]); the score is cos(V^F, S^F).
Losses (Eq. 6.17–6.20 + SM-6): rank(V^F, S^F) + tree_ce + tree_kl + cac_kl, all weights 1:
tree_ce = Σ_nodes CE(y^V, z) + CE(y^S, z) (mean over the batch), tree_kl = Σ_nodes KL(P^V ‖ P^S)
(mean over the batch, gradients to both trees, SM-8), cac_kl = CVSE's summed KL.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from shared.layers import l2_normalize

from retrieval.losses import RankingLoss
from retrieval.models.base import Outputs, TwoTowerRetrievalModel
from retrieval.models.blocks import MeanQueryAttnPool
from retrieval.models.cac import ConsensusConcepts, concept_cooccurrence, consensus_kl, select_concepts
from retrieval.models.encoders import GRUTextEncoder, RegionEncoder
from retrieval.models.tree_lstm import INTERNAL, LEAVES, StructuredTreeEncoder

DEFAULTS: dict[str, Any] = {
    "embed_dim": 1024, "region_dim": 2048, "word_dim": 300, "gru_layers": 1, "word_dropout": 0.0,
    "finetune_words": True, "attention_form": "dot", "attention_dropout": 0.1,
    "tree_hidden": 128, "tree_cell": "literal", "num_fragments": 1440, "num_relations": 247,
    "text_tree_residual": True, "num_concepts": 300, "concept_label_ratio": 0.35,
    "concept_threshold": 0.3, "concept_labels_at_eval": True, "beta": [0.6, 0.2, 0.2],
    "aux_weights": {"tree_ce": 1.0, "tree_kl": 1.0, "cac_kl": 1.0},
}


def tree_node_losses(image_tree: Outputs, text_tree: Outputs, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(Σ_nodes CE of both trees, Σ_nodes KL(P^V ‖ P^S)), each averaged over the batch (Eq. 6.18–6.19)."""
    batch = labels.shape[0]
    targets = {"fragment_logits": labels[:, list(LEAVES)], "relation_logits": labels[:, list(INTERNAL)]}
    ce = labels.new_zeros((), dtype=torch.float32)
    kl = labels.new_zeros((), dtype=torch.float32)
    for key, target in targets.items():
        for tree in (image_tree, text_tree):
            ce = ce + F.cross_entropy(tree[key].flatten(0, 1), target.flatten(), reduction="sum") / batch
        log_p_v = F.log_softmax(image_tree[key], dim=-1)
        log_p_s = F.log_softmax(text_tree[key], dim=-1)
        kl = kl + (log_p_v.exp() * (log_p_v - log_p_s)).sum() / batch
    return ce, kl


class SMFEA(TwoTowerRetrievalModel):
    """SMFEA two-tower model; image and text outputs also carry tree logits and concept scores."""

    needs_tree_labels = True

    def __init__(self, vocab_size: int, loss: RankingLoss, word_vectors: np.ndarray | None = None, **options: Any) -> None:
        unknown = set(options) - set(DEFAULTS)
        if unknown:
            raise ValueError(f"unknown SMFEA options {sorted(unknown)}")
        cfg = {**DEFAULTS, **options}
        if cfg["num_concepts"] > vocab_size - 4:
            raise ValueError(f"num_concepts {cfg['num_concepts']} needs a vocabulary of at least {cfg['num_concepts'] + 4} words, got {vocab_size}")
        super().__init__(loss, cfg["aux_weights"])
        dim = cfg["embed_dim"]
        self.beta = tuple(float(b) for b in cfg["beta"])
        self.text_tree_residual = bool(cfg["text_tree_residual"])
        self.concept_labels_at_eval = bool(cfg["concept_labels_at_eval"])
        self.region_encoder = RegionEncoder(cfg["region_dim"], dim)
        self.image_pool = MeanQueryAttnPool(dim, cfg["attention_form"], cfg["attention_dropout"])
        self.text_encoder = GRUTextEncoder(vocab_size, cfg["word_dim"], dim, cfg["gru_layers"], True,
                                           cfg["word_dropout"], word_vectors, cfg["finetune_words"])
        self.text_pool = MeanQueryAttnPool(dim, cfg["attention_form"], cfg["attention_dropout"])
        tree = dict(hidden=cfg["tree_hidden"], num_fragments=cfg["num_fragments"],
                    num_relations=cfg["num_relations"], cell=cfg["tree_cell"])
        self.image_tree = StructuredTreeEncoder(dim, **tree)
        self.text_tree = StructuredTreeEncoder(dim, **tree)
        self.concepts = ConsensusConcepts(cfg["word_dim"], dim, cfg["num_concepts"], cfg["concept_label_ratio"],
                                          cfg["concept_threshold"])
        with torch.no_grad():
            self.concepts.concept_vectors.copy_(self.text_encoder.embed.weight[self.concepts.concept_ids])

    def _fuse(self, instance: torch.Tensor, tree: torch.Tensor, concept: torch.Tensor) -> torch.Tensor:
        b_d, b_t, b_c = self.beta
        return l2_normalize(b_d * instance + b_t * l2_normalize(tree) + b_c * concept)

    def image_outputs(self, images: dict[str, torch.Tensor]) -> Outputs:
        """V^F plus V^D, VCS-Tree node logits, concept scores and the region attention weights."""
        mask = images["region_mask"]
        regions, _ = self.region_encoder(images["regions"], mask)
        instance = self.image_pool(l2_normalize(regions), mask)
        tree = self.image_tree(instance)
        concept, scores = self.concepts.forward_image(instance)
        return {"embedding": self._fuse(instance, tree["embedding"], concept), "instance": instance,
                "fragment_logits": tree["fragment_logits"], "relation_logits": tree["relation_logits"],
                "concept_scores": scores, "region_attention": self.image_pool.last_weights}

    def text_outputs(self, texts: dict[str, torch.Tensor]) -> Outputs:
        """S^F plus S^D, TCS-Tree node logits and concept scores."""
        words, mask = self.text_encoder(texts["tokens"], texts["lengths"])
        instance = self.text_pool(l2_normalize(words) * mask.unsqueeze(-1), mask)
        tree = self.text_tree(instance)
        tree_embedding = tree["embedding"] + instance if self.text_tree_residual else tree["embedding"]
        labels = self.concepts.caption_labels(texts["tokens"], mask)
        use_labels = self.training or self.concept_labels_at_eval
        concept, scores = self.concepts.forward_text(instance, labels if use_labels else None)
        return {"embedding": self._fuse(instance, tree_embedding, concept), "instance": instance,
                "fragment_logits": tree["fragment_logits"], "relation_logits": tree["relation_logits"],
                "concept_scores": scores}

    def auxiliary_losses(self, image_out: Outputs, text_out: Outputs, batch: dict[str, Any]) -> Outputs:
        """tree_ce, tree_kl (Eq. 6.18–6.19) and cac_kl (CVSE), unweighted."""
        labels = batch["texts"].get("tree_labels")
        if labels is None:
            raise KeyError("SMFEA training needs texts['tree_labels'] (B, 7) from retrieval.parsing.referral_tree")
        for key, nodes in (("fragment", LEAVES), ("relation", INTERNAL)):
            classes = image_out[f"{key}_logits"].shape[-1]
            if int(labels[:, list(nodes)].max()) >= classes:
                raise ValueError(f"tree {key} label {int(labels[:, list(nodes)].max())} >= {classes} classes: "
                                 f"set model.num_{key}s to the dictionary size (null excluded)")
        ce, kl = tree_node_losses(image_out, text_out, labels)
        return {"tree_ce": ce, "tree_kl": kl,
                "cac_kl": consensus_kl(image_out["concept_scores"], text_out["concept_scores"])}

    def prepare_corpus(self, captions: Sequence[Sequence[int]], words: Sequence[str]) -> None:
        """Fit the CAC concept graph on the training captions (word ids): concepts, vectors, co-occurrence."""
        ids = select_concepts(captions, words, self.concepts.num_concepts)
        pairs, nums = concept_cooccurrence(captions, ids)
        vectors = self.text_encoder.embed.weight.detach()[torch.as_tensor(ids)]
        self.concepts.set_graph(ids, vectors, pairs, nums)

    @classmethod
    def from_config(cls, model: dict[str, Any], loss: RankingLoss, vocab_size: int | None,
                    word_vectors: np.ndarray | None, bert_dir: str | None, pretrained: bool) -> "SMFEA":
        if vocab_size is None:
            raise ValueError("SMFEA needs vocab_size (GRU text encoder)")
        return cls(vocab_size, loss, word_vectors, **model)
