"""VSR++'s text generation module: an attention GRU captioner on the reasoned regions V* (VSR++ paper "Caption
generation"; docs/retrieval.md, decision 'VSR++ caption target').

L_generation = −Σ_t log p(y_t | y_{t−1}, V*; θ), teacher-forced on the ground-truth caption of the
positive pair (decision 'VSR++ caption target'), captions truncated to `max_length` tokens (``<start> … <end>`` included).
Architecture (the public code KunpengLi1994/VSRN, S2VT-attention sizes: hidden 512, word dim 300, input dropout
0.2, rnn dropout 0.5): memory m_i = W_m v*_i; h_0 = tanh(W_0 mean(V*)); h_t = GRU(Emb(y_{t−1}), h_{t−1});
Luong global attention c_t = Σ_i softmax_i(h_t · m_i) m_i; logits = W_o Drop(tanh(W_c [h_t; c_t])).
(our reading) The attention reads the GRU output (Luong et al. 2015, no input feeding), so the whole sequence
is one batched GRU call instead of a Python loop over time steps.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from shared.layers import masked_mean, masked_softmax

REDUCTIONS = ("token_mean", "sequence_sum")


class CaptionDecoder(nn.Module):
    """`loss(regions, region_mask, tokens, lengths)` → the teacher-forced caption loss (module docstring)."""

    def __init__(self, vocab_size: int, feature_dim: int, hidden: int = 512, word_dim: int = 300,
                 input_dropout: float = 0.2, rnn_dropout: float = 0.5, max_length: int = 40,
                 reduction: str = "sequence_sum") -> None:
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"caption reduction {reduction!r} not in {REDUCTIONS}")
        if max_length < 2:
            raise ValueError(f"caption max_length must be at least 2, got {max_length}")
        self.max_length, self.reduction = max_length, reduction
        self.memory = nn.Linear(feature_dim, hidden)
        self.init_state = nn.Linear(feature_dim, hidden)
        self.embed = nn.Embedding(vocab_size, word_dim, padding_idx=0)
        self.input_dropout = nn.Dropout(input_dropout)
        self.rnn = nn.GRU(word_dim, hidden, batch_first=True)
        self.combine = nn.Linear(2 * hidden, hidden)
        self.rnn_dropout = nn.Dropout(rnn_dropout)
        self.classifier = nn.Linear(hidden, vocab_size)

    def logits(self, regions: torch.Tensor, region_mask: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """(B, T, vocab) next-word logits for the teacher-forced input words `inputs` (B, T)."""
        memory = self.memory(regions)
        h0 = torch.tanh(self.init_state(masked_mean(regions, region_mask, dim=1))).unsqueeze(0)
        states, _ = self.rnn(self.input_dropout(self.embed(inputs)), h0.contiguous())
        weights = masked_softmax(states @ memory.transpose(1, 2), region_mask.unsqueeze(1), dim=-1)
        combined = torch.tanh(self.combine(torch.cat([states, weights @ memory], dim=-1)))
        return self.classifier(self.rnn_dropout(combined))

    def loss(self, regions: torch.Tensor, region_mask: torch.Tensor, tokens: torch.Tensor,
             lengths: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of y_1..y_{n−1} given y_0..y_{n−2} (n = min(length, max_length)).

        ``sequence_sum`` (the VSR++ paper's L_generation = −Σ_t log p(y_t | y_{t−1}, V*)) sums over each
        caption's tokens and averages over captions; ``token_mean`` (the public code VSRN,
        ``LanguageModelCriterion``) averages over the valid target tokens.
        """
        steps = min(tokens.shape[1], self.max_length) - 1
        inputs, targets = tokens[:, :steps], tokens[:, 1:steps + 1]
        targets_per_caption = lengths.to(tokens.device).clamp(max=steps + 1) - 1
        valid = torch.arange(steps, device=tokens.device).unsqueeze(0) < targets_per_caption.unsqueeze(1)
        logits = self.logits(regions, region_mask.to(torch.bool), inputs)
        ce = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none").view_as(targets) * valid
        if self.reduction == "token_mean":
            return ce.sum() / valid.sum().clamp_min(1)
        return ce.sum() / tokens.shape[0]
