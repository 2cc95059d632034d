"""SMFEA's consensus-aware concept (CAC) module — CVSE (H. Wang et al. 2020), which SMFEA reuses
"with the same general parameters" (the thesis §6.3.2, §6.4.1; docs/retrieval.md, decision 'SMFEA CAC').

Concrete form from the public CVSE code, BruceW91/CVSE (facts, not code, carried over):
* Concepts: the `num_concepts` (300) most frequent content words of the training captions; node inputs
  are their (fixed) word vectors; captions are labelled with the concepts they contain.
* Concept graph from caption co-occurrence ("Complex" mode): P(j|i) = n_ij / n_i, rescaled
  5^(P − 0.02) − 5^(−0.02), binarised at t = 0.3, re-weighted 0.25 / column sum, + I; then
  Â = (A D)^T D with D = diag(rowsum^−½).
* C-GCN: GCN(word_dim → D/2, no bias) → LeakyReLU(0.2) → GCN(D/2 → D), l2-normalised concept embeddings.
* Per modality: a = fc3(tanh(BN(fc1 concepts)) ⊙ tanh(BN(fc2 instance))), scores = softmax(10 a);
  text scores mix the caption's own concept labels, r·softmax(10 y) + (1 − r)·scores, r = 0.35;
  V^C / S^C = l2norm(Σ_c score_c · l2norm(concept_c)).
* Loss: KL between the two score distributions, CVSE's ``KLDivLoss(log p_v, p_t)`` summed over concepts
  and the batch, i.e. KL(P_text ‖ P_image).
"""

from __future__ import annotations

from collections import Counter
from typing import Sequence

import torch
from torch import nn

from shared.layers import GraphConvolution, l2_normalize

SPECIAL_IDS = 4  # <pad> <start> <end> <unk> occupy ids 0-3 (retrieval.data.vocab)
FUNCTION_WORDS = frozenset(
    "a an the and or but of in on at to for from by with without into onto over under near next "
    "is are was were be been being am has have had do does did this that these those there here "
    "it its it's he she they them his her their him we you i me my our your who whom which what "
    "while as up down out off some one two three other another each very so than then too also "
    "not no just can could will would should may might must 's , . ! ? ; : - ' \" ( )".split()
)


def select_concepts(captions: Sequence[Sequence[int]], words: Sequence[str], num_concepts: int) -> list[int]:
    """Ids of the `num_concepts` words in the most captions, skipping specials and function words.

    Ties break on the smaller id (the vocabulary is sorted by frequency).  Fewer words → padded with
    the next most frequent remaining ids so the concept count is fixed.
    """
    counts = Counter(i for caption in captions for i in set(int(t) for t in caption))
    ranked = sorted((i for i in counts if i >= SPECIAL_IDS and words[i] not in FUNCTION_WORDS), key=lambda i: (-counts[i], i))
    chosen = ranked[:num_concepts]
    spare = (i for i in range(SPECIAL_IDS, len(words)) if i not in set(chosen))
    while len(chosen) < num_concepts:
        chosen.append(next(spare))
    return chosen


def concept_cooccurrence(captions: Sequence[Sequence[int]], concept_ids: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """(C, C) counts of captions containing both concepts (zero diagonal) and (C,) caption counts per concept."""
    index = {cid: k for k, cid in enumerate(concept_ids)}
    size = len(concept_ids)
    pairs = torch.zeros(size, size, dtype=torch.float64)
    nums = torch.zeros(size, dtype=torch.float64)
    for caption in captions:
        present = sorted({index[int(t)] for t in caption if int(t) in index})
        if not present:
            continue
        ids = torch.tensor(present)
        nums[ids] += 1
        pairs[ids.unsqueeze(1), ids.unsqueeze(0)] += 1
    pairs.fill_diagonal_(0)
    return pairs, nums


def concept_adjacency(pairs: torch.Tensor, nums: torch.Tensor, threshold: float = 0.3,
                      rescale_base: float = 5.0, rescale_shift: float = 0.02) -> torch.Tensor:
    """CVSE "Complex" concept correlation matrix, symmetric-normalised (module docstring)."""
    pairs, nums = pairs.double(), nums.double()
    conditional = pairs / nums.clamp(min=1.0).unsqueeze(1)
    rescaled = rescale_base ** (conditional - rescale_shift) - rescale_base ** (-rescale_shift)
    binary = (rescaled >= threshold).double()
    adj = binary * 0.25 / (binary.sum(dim=0, keepdim=True) + 1e-6)
    adj = adj + torch.eye(adj.shape[0], dtype=adj.dtype)
    inv_sqrt = torch.diag(adj.sum(dim=1).pow(-0.5))
    return ((adj @ inv_sqrt).T @ inv_sqrt).float()


class ConsensusEmbedding(nn.Module):
    """Concept scores and the consensus feature of one modality (CVSE ``Consensus_level_feature_learning``)."""

    def __init__(self, dim: int, smooth: float = 10.0) -> None:
        super().__init__()
        self.concept_fc = nn.Sequential(nn.Linear(dim, dim), nn.BatchNorm1d(dim), nn.Tanh())
        self.instance_fc = nn.Sequential(nn.Linear(dim, dim), nn.BatchNorm1d(dim), nn.Tanh())
        self.score_fc = nn.Linear(dim, 1, bias=False)  # a bias cannot change a softmax over concepts
        self.smooth = smooth

    def forward(self, instance: torch.Tensor, concepts: torch.Tensor, labels: torch.Tensor | None = None,
                label_ratio: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
        """instance (B, D), concepts (C, D) → (consensus feature (B, D), concept distribution (B, C))."""
        fused = self.concept_fc(concepts).unsqueeze(0) * self.instance_fc(instance).unsqueeze(1)
        scores = torch.softmax(self.smooth * self.score_fc(fused).squeeze(-1), dim=1)
        if labels is not None and label_ratio > 0:
            scores = label_ratio * torch.softmax(self.smooth * labels, dim=1) + (1 - label_ratio) * scores
        return l2_normalize(scores @ l2_normalize(concepts)), scores


class ConsensusConcepts(nn.Module):
    """Concept graph + C-GCN + image/text consensus embeddings; the graph lives in buffers.

    Until `set_graph` is called the concepts are ids 4..4+C (the most frequent vocabulary words,
    function words included) with no edges (identity adjacency); `SMFEA.prepare_corpus` sets the
    real graph from the training captions.
    """

    def __init__(self, word_dim: int, dim: int = 1024, num_concepts: int = 300, label_ratio: float = 0.35,
                 threshold: float = 0.3, smooth: float = 10.0) -> None:
        super().__init__()
        self.num_concepts, self.label_ratio, self.threshold = num_concepts, label_ratio, threshold
        self.register_buffer("concept_ids", torch.arange(SPECIAL_IDS, SPECIAL_IDS + num_concepts))
        self.register_buffer("concept_vectors", torch.zeros(num_concepts, word_dim))
        self.register_buffer("adjacency", torch.eye(num_concepts))
        self.gcn1 = GraphConvolution(word_dim, dim // 2, norm="none", self_loops=False, bias=False, activation=False)
        self.gcn2 = GraphConvolution(dim // 2, dim, norm="none", self_loops=False, bias=False, activation=False)
        for layer in (self.gcn1, self.gcn2):
            bound = 1.0 / layer.linear.weight.shape[0] ** 0.5
            nn.init.uniform_(layer.linear.weight, -bound, bound)
        self.image = ConsensusEmbedding(dim, smooth)
        self.text = ConsensusEmbedding(dim, smooth)

    def set_graph(self, concept_ids: Sequence[int], vectors: torch.Tensor, pairs: torch.Tensor, nums: torch.Tensor) -> None:
        """Install concept ids, their (fixed) word vectors and the co-occurrence graph."""
        if len(concept_ids) != self.num_concepts:
            raise ValueError(f"expected {self.num_concepts} concepts, got {len(concept_ids)}")
        self.concept_ids.copy_(torch.as_tensor(list(concept_ids)))
        self.concept_vectors.copy_(vectors)
        self.adjacency.copy_(concept_adjacency(pairs, nums, self.threshold))

    def concept_features(self) -> torch.Tensor:
        """(C, D) l2-normalised concept embeddings from the C-GCN."""
        x = torch.nn.functional.leaky_relu(self.gcn1(self.concept_vectors, self.adjacency), 0.2)
        return l2_normalize(self.gcn2(x, self.adjacency))

    def caption_labels(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, C) multi-hot: concept c occurs among the caption's valid tokens."""
        hits = (tokens.unsqueeze(-1) == self.concept_ids.view(1, 1, -1)) & mask.unsqueeze(-1)
        return hits.any(dim=1).float()

    def forward_image(self, instance: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """V^C and the image's concept distribution from the instance feature V^D."""
        return self.image(instance, self.concept_features())

    def forward_text(self, instance: torch.Tensor, labels: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """S^C and the caption's concept distribution (mixed with its own concept labels when given)."""
        return self.text(instance, self.concept_features(), labels, self.label_ratio)


def consensus_kl(image_scores: torch.Tensor, text_scores: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Σ_batch Σ_c p_t (log p_t − log p_v) — CVSE's ``KLDivLoss(log p_v, p_t)`` summed (KL(P^S‖P^V))."""
    return (text_scores * (text_scores.clamp_min(eps).log() - image_scores.clamp_min(eps).log())).sum()
