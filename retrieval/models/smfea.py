"""SMFEA — Structured Multi-modal Feature Embedding and Alignment (the thesis Ch. 6; docs/retrieval.md).

Image: regions (B, K, 2048) → FC 2048→D (decision 'SMFEA region projection') → l2norm → mean-query attention pooling → V^D (Eq. 6.1–6.3).
Text: word ids → embedding (GloVe init) → Bi-GRU, directions averaged (Eq. 6.4) → l2norm → mean-query
attention pooling → S^D.
Trees: V^D / S^D → VCS-/TCS-Tree (`tree_lstm.StructuredTreeEncoder`, hidden 128) → node logits and V^T / S^T
(Eq. 6.5–6.14; S^T = Σ W'_t h^S_t + S^D as the §6.3.2 prose says, `text_tree_residual: false` is the
symmetric decision 'SMFEA text tree residual' reading).
CAC: CVSE consensus concepts (`cac.ConsensusConcepts`) → V^C / S^C and concept distributions.
Fusion: V^F = l2norm(β_d V^D + β_t l2norm(V^T) + β_c V^C), β = (0.6, 0.2, 0.2) (Eq. 6.15–6.16; each term
l2-normalised: our reading); the score is cos(V^F, S^F).
Losses (Eq. 6.17–6.20 + decision 'SMFEA CAC'): rank(V^F, S^F) + tree_ce + tree_kl + cac_kl, all weights 1:
tree_ce = Σ_nodes CE(y^V, z) + CE(y^S, z) (mean over the batch), tree_kl = Σ_nodes KL(P^V ‖ P^S)
(mean over the batch, gradients to both trees, decision 'tree KL'), cac_kl = CVSE's summed KL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from shared.config import bounded
from shared.layers import l2_normalize

from retrieval.layers import GRUTextEncoder, RegionEncoder
from retrieval.layers.blocks import MeanQueryAttnPool
from retrieval.layers.cac import ConsensusConcepts, concept_cooccurrence, consensus_kl, select_concepts
from retrieval.layers.tree_lstm import INTERNAL, LEAVES, StructuredTreeEncoder
from retrieval.losses import RankingLoss
from retrieval.models.base import Outputs, TwoTowerRetrievalModel
from retrieval.models.registry import MODELS


@dataclass(frozen=True)
class SMFEAConfig:
    """The ``model:`` section of ``smfea`` (each option: docs/retrieval.md#smfea)."""

    embed_dim: int = bounded(1024, minimum=1)
    region_dim: int = bounded(2048, minimum=1)
    word_dim: int = bounded(300, minimum=1)
    gru_layers: int = bounded(1, minimum=1)
    word_dropout: float = bounded(0.0, minimum=0.0, maximum=1.0)
    finetune_words: bool = True
    attention_form: Literal["dot", "parametric"] = "dot"
    attention_dropout: float = bounded(0.1, minimum=0.0, maximum=1.0)
    tree_hidden: int = bounded(128, minimum=1)
    tree_cell: Literal["child_sum", "literal"] = "literal"
    num_fragments: int = bounded(1440, minimum=1, doc="fragment classes (set from the parse dictionary)")
    num_relations: int = bounded(247, minimum=1, doc="relation classes (set from the parse dictionary)")
    text_tree_residual: bool = True
    num_concepts: int = bounded(300, minimum=1)
    concept_label_ratio: float = bounded(0.35, minimum=0.0, maximum=1.0)
    concept_threshold: float = bounded(0.3, minimum=0.0)
    concept_labels_at_eval: bool = True
    #: "sum": tree CE / KL summed over the batch like the ranking term (Eq. 6.20, 1:1:1); "mean": ÷ batch
    tree_loss_reduction: Literal["sum", "mean"] = "sum"
    beta: tuple[float, float, float] = bounded((0.6, 0.2, 0.2), minimum=0.0, doc="fusion weights (Eq. 6.15)")
    aux_weights: dict[str, float] = bounded({"tree_ce": 1.0, "tree_kl": 1.0, "cac_kl": 1.0}, minimum=0.0)


def tree_node_losses(image_tree: Outputs, text_tree: Outputs, labels: torch.Tensor,
                     reduction: str = "sum") -> tuple[torch.Tensor, torch.Tensor]:
    """(Σ_nodes CE of both trees (Eq. 6.18), Σ_nodes KL(P^V ‖ P^S) (Eq. 6.19)), summed over the batch
    like the ranking term (Eq. 6.17), so Eq. 6.20 weighs the three 1:1:1; ``reduction="mean"`` divides
    both by the batch size (1/B of the summed ranking term, decision 'SMFEA loss scale')."""
    batch = labels.shape[0] if reduction == "mean" else 1
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


@MODELS.register("smfea", configs={"tiny": "smfea_tiny", "f30k": "smfea_f30k", "coco": "smfea_coco"},
                 summary="SMFEA structured feature embedding and alignment two-tower (Bi-GRU text, trees, CAC)")
class SMFEA(TwoTowerRetrievalModel):
    """SMFEA two-tower model; image and text outputs also carry tree logits and concept scores."""

    name = "smfea"
    Config = SMFEAConfig
    needs_tree_labels = True

    def __init__(self, config: SMFEAConfig, loss: RankingLoss, vocab_size: int | None = None,
                 word_vectors: np.ndarray | None = None) -> None:
        vocab_size = self.require_vocab(self.name, vocab_size)
        if config.num_concepts > vocab_size - 4:
            raise ValueError(f"num_concepts {config.num_concepts} needs a vocabulary of at least "
                             f"{config.num_concepts + 4} words, got {vocab_size}")
        super().__init__(loss, config.aux_weights)
        self.config = config
        dim = config.embed_dim
        self.beta = tuple(float(b) for b in config.beta)
        self.text_tree_residual = bool(config.text_tree_residual)
        self.concept_labels_at_eval = bool(config.concept_labels_at_eval)
        self.region_encoder = RegionEncoder(config.region_dim, dim)
        self.image_pool = MeanQueryAttnPool(dim, config.attention_form, config.attention_dropout)
        self.text_encoder = GRUTextEncoder(vocab_size, config.word_dim, dim, config.gru_layers, True,
                                           config.word_dropout, word_vectors, config.finetune_words)
        self.text_pool = MeanQueryAttnPool(dim, config.attention_form, config.attention_dropout)
        tree = dict(hidden=config.tree_hidden, num_fragments=config.num_fragments,
                    num_relations=config.num_relations, cell=config.tree_cell)
        self.image_tree = StructuredTreeEncoder(dim, **tree)
        self.text_tree = StructuredTreeEncoder(dim, **tree)
        self.concepts = ConsensusConcepts(config.word_dim, dim, config.num_concepts, config.concept_label_ratio,
                                          config.concept_threshold)
        with torch.no_grad():
            self.concepts.concept_vectors.copy_(self.text_encoder.embed.weight[self.concepts.concept_ids])

    def _fuse(self, instance: torch.Tensor, tree: torch.Tensor, concept: torch.Tensor) -> torch.Tensor:
        b_d, b_t, b_c = self.beta
        return l2_normalize(b_d * instance + b_t * l2_normalize(tree) + b_c * concept)

    def image_outputs(self, images: dict[str, torch.Tensor]) -> Outputs:
        """V^F plus V^D, VCS-Tree node logits, concept scores and the region attention weights."""
        mask = images["region_mask"]
        regions, _ = self.region_encoder(images["regions"], mask)
        instance, weights = self.image_pool(l2_normalize(regions), mask, return_weights=True)
        tree = self.image_tree(instance)
        concept, scores = self.concepts.forward_image(instance)
        return {"embedding": self._fuse(instance, tree["embedding"], concept), "instance": instance,
                "fragment_logits": tree["fragment_logits"], "relation_logits": tree["relation_logits"],
                "concept_scores": scores, "region_attention": weights}

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
        ce, kl = tree_node_losses(image_out, text_out, labels, self.config.tree_loss_reduction)
        return {"tree_ce": ce, "tree_kl": kl,
                "cac_kl": consensus_kl(image_out["concept_scores"], text_out["concept_scores"])}

    def prepare_corpus(self, captions: Sequence[Sequence[int]], words: Sequence[str]) -> None:
        """Fit the CAC concept graph on the training captions (word ids): concepts, vectors, co-occurrence."""
        ids = select_concepts(captions, words, self.concepts.num_concepts)
        pairs, nums = concept_cooccurrence(captions, ids)
        vectors = self.text_encoder.embed.weight.detach()[torch.as_tensor(ids)]
        self.concepts.set_graph(ids, vectors, pairs, nums)

    def explain(self, images: dict[str, torch.Tensor], texts: dict[str, torch.Tensor] | None = None) -> Outputs:
        """Per item (two towers: an image's explanation does not depend on the caption):
        ``region_attention`` (B, K), the weights of the mean-query attention pooling of the regions
        (Eq. 6.1–6.3), and the VCS-Tree node logits ``image_fragment_logits`` (B, 4, F) /
        ``image_relation_logits`` (B, 3, R) (Eq. 6.12–6.13); with `texts`, the TCS-Tree node logits
        ``text_fragment_logits`` / ``text_relation_logits`` of each caption."""
        image = self.image_outputs(images)
        out = {"region_attention": image["region_attention"], "image_fragment_logits": image["fragment_logits"],
               "image_relation_logits": image["relation_logits"]}
        if texts is not None:
            text = self.text_outputs(texts)
            out.update(text_fragment_logits=text["fragment_logits"], text_relation_logits=text["relation_logits"])
        return out
