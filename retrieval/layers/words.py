"""Word embeddings initialised from pre-trained vectors (GloVe), shared by the recurrent text encoders."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def load_word_vectors(embed: nn.Embedding, word_vectors: np.ndarray) -> None:
    """Copy a (vocab, word_dim) matrix into `embed`; a shape that does not match is a ValueError."""
    expected = (embed.num_embeddings, embed.embedding_dim)
    if tuple(word_vectors.shape) != expected:
        raise ValueError(f"word vectors {tuple(word_vectors.shape)} do not match vocab {expected[0]} x {expected[1]}")
    with torch.no_grad():
        embed.weight.copy_(torch.as_tensor(np.asarray(word_vectors), dtype=torch.float32))
