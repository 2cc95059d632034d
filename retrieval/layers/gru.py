"""Bi-GRU word encoder of the GRU-based retrieval models (docs/retrieval.md, SMFEA Eq. 6.4).

Word ids → embedding (initialised from a given matrix, e.g. GloVe; `retrieval.data.glove.embedding_matrix`)
→ dropout → packed (bi-directional) GRU → per-word states, the two directions averaged
(w_j = (GRU→(e_j) + GRU←(e_j)) / 2).  Packed sequences mean padding never enters the recurrence,
so padded positions can never change a caption's encoding.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from retrieval.layers.words import load_word_vectors


def length_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """(B, max_len) bool, True for positions < length."""
    return torch.arange(max_len, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)


class GRUTextEncoder(nn.Module):
    """Embedding + (Bi-)GRU; `forward(tokens, lengths)` → ((B, L, hidden) word features, (B, L) mask)."""

    def __init__(self, vocab_size: int, word_dim: int = 300, hidden: int = 1024, num_layers: int = 1,
                 bidirectional: bool = True, dropout: float = 0.0, word_vectors: np.ndarray | None = None,
                 finetune_words: bool = True) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, word_dim, padding_idx=0)
        if word_vectors is not None:
            load_word_vectors(self.embed, word_vectors)
        else:
            nn.init.uniform_(self.embed.weight, -0.1, 0.1)
            with torch.no_grad():
                self.embed.weight[0].zero_()
        self.embed.weight.requires_grad_(finetune_words)
        self.dropout = nn.Dropout(dropout)
        self.rnn = nn.GRU(word_dim, hidden, num_layers, batch_first=True, bidirectional=bidirectional)
        self.bidirectional, self.hidden = bidirectional, hidden

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        max_len = tokens.shape[1]
        x = self.dropout(self.embed(tokens))
        packed = pack_padded_sequence(x, lengths.detach().cpu().clamp(min=1), batch_first=True, enforce_sorted=False)
        out, _ = self.rnn(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=max_len)
        if self.bidirectional:
            out = (out[..., : self.hidden] + out[..., self.hidden:]) / 2
        return out, length_mask(lengths.to(tokens.device), max_len)
