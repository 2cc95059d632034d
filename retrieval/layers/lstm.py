"""Bi-LSTM sentence encoder of the IMC network (the IMC thesis (Chen 2023) §5.2.1, §5.3.2).

Word ids → embedding (GloVe-initialised when a matrix is given) → packed Bi-LSTM (Xavier-initialised,
dropout 0.5 on its input) → the final states of the two directions averaged → (B, hidden).  Packed
sequences mean padding never enters the recurrence.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from retrieval.layers.words import load_word_vectors


class BiLSTMSentenceEncoder(nn.Module):
    """`forward(tokens, lengths)` → (B, hidden): the mean of the forward and backward final states."""

    def __init__(self, vocab_size: int, word_dim: int = 300, hidden: int = 1024, dropout: float = 0.5,
                 word_vectors: np.ndarray | None = None) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, word_dim, padding_idx=0)
        if word_vectors is not None:
            load_word_vectors(self.embed, word_vectors)
        self.dropout = nn.Dropout(dropout)
        self.rnn = nn.LSTM(word_dim, hidden, batch_first=True, bidirectional=True)
        for name, weight in self.rnn.named_parameters():
            if name.startswith("weight"):
                nn.init.xavier_uniform_(weight)  # "The Bi-LSTM is initialized with Xavier init" (§5.3.2)
            else:
                nn.init.zeros_(weight)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = self.dropout(self.embed(tokens))
        packed = pack_padded_sequence(x, lengths.detach().cpu().clamp(min=1), batch_first=True, enforce_sorted=False)
        _, (h_n, _) = self.rnn(packed)
        return (h_n[0] + h_n[1]) / 2
