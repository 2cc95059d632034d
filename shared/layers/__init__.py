"""Layers both tasks use: masked reductions, l2-normalisation, a small MLP and dense graph layers."""

from shared.layers.functional import l2_normalize, masked_max, masked_mean, masked_softmax
from shared.layers.graph import GraphConvolution, MultiHeadGraphAttention, RelationalGraphConvolution, normalize_adjacency
from shared.layers.mlp import MLP

__all__ = [
    "MLP",
    "GraphConvolution",
    "MultiHeadGraphAttention",
    "RelationalGraphConvolution",
    "l2_normalize",
    "masked_max",
    "masked_mean",
    "masked_softmax",
    "normalize_adjacency",
]
