"""Dense graph layers on small graphs (≤ 64 nodes), batched, with optional adjacency masks.

Used by MGRR-Net's channel- and pixel-level multi-head GATs (thesis eqs. 4.3–4.4), HiRE's
relation-aware GCN, and the GCNs of VSR++ and HSLM (docs/retrieval.md).
Node features are (B, N, F); adjacency is (N, N) or (B, N, N) (and (B, R, N, N) per relation).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from shared.layers.functional import masked_softmax


def normalize_adjacency(adj: torch.Tensor, mode: str = "sym", add_self_loops: bool = True) -> torch.Tensor:
    """Normalise a (…, N, N) adjacency: ``sym`` D^-1/2 (A+I) D^-1/2 (Kipf & Welling), ``row`` D^-1 (A+I), ``none``."""
    if add_self_loops:
        adj = adj + torch.eye(adj.shape[-1], dtype=adj.dtype, device=adj.device)
    if mode == "none":
        return adj
    degree = adj.sum(dim=-1).clamp_min(1e-12)
    if mode == "row":
        return adj / degree.unsqueeze(-1)
    if mode == "sym":
        inv_sqrt = degree.rsqrt()
        return inv_sqrt.unsqueeze(-1) * adj * inv_sqrt.unsqueeze(-2)
    raise ValueError(f"unknown adjacency normalisation {mode!r} (sym, row, none)")


class MultiHeadGraphAttention(nn.Module):
    """Multi-head scaled dot-product graph attention (MGRR-Net MH-GAT, eqs. 4.3–4.4).

    α^l_ij = softmax_{j ∈ Ω_i}(U_q^l x_i · U_k^l x_j / sqrt(d)), heads concatenated to
    `attn_dim` (= D), mapped back to `out_dim` by U_c, then ReLU.  Values are U_v x_j (eq. 4.4's
    literal "α·C_i" is read as a typo: docs/fau.md, decision 'GAT form').  Ω_i is every node, or
    the neighbours given by a boolean `adjacency` mask.  With `residual=True` the input is added.

    `forward` returns ``(output, attention)``: the output (B, N, out_dim) and the attention weights
    α (B, heads, N, N), detached (an explanation is returned, never kept on the module).
    """

    def __init__(self, in_dim: int, attn_dim: int = 1024, heads: int = 8, out_dim: int | None = None,
                 residual: bool = False, activation: bool = True) -> None:
        super().__init__()
        if attn_dim % heads:
            raise ValueError(f"attn_dim {attn_dim} must be divisible by heads {heads}")
        out_dim = in_dim if out_dim is None else out_dim
        if residual and out_dim != in_dim:
            raise ValueError("a residual connection needs out_dim == in_dim")
        self.heads, self.head_dim = heads, attn_dim // heads
        self.query = nn.Linear(in_dim, attn_dim)
        self.key = nn.Linear(in_dim, attn_dim)
        self.value = nn.Linear(in_dim, attn_dim)
        self.combine = nn.Linear(attn_dim, out_dim)
        self.residual, self.activation = residual, activation

    def forward(self, x: torch.Tensor, adjacency: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        batch, nodes, _ = x.shape

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(batch, nodes, self.heads, self.head_dim).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim)
        mask = None
        if adjacency is not None:
            mask = adjacency.to(torch.bool)
            mask = mask.unsqueeze(1) if mask.ndim == 3 else mask.view(1, 1, nodes, nodes)
        attn = masked_softmax(scores, mask, dim=-1)
        mixed = (attn @ v).transpose(1, 2).reshape(batch, nodes, self.heads * self.head_dim)
        out = self.combine(mixed)
        if self.activation:
            out = torch.relu(out)
        return (out + x if self.residual else out), attn.detach()


class GraphConvolution(nn.Module):
    """One GCN layer: H' = act(Â H W) with Â the normalised adjacency (Kipf & Welling, 2017)."""

    def __init__(self, in_dim: int, out_dim: int, norm: str = "sym", self_loops: bool = True,
                 bias: bool = True, activation: bool = True) -> None:
        super().__init__()
        self.linear = nn.Linear(in_dim, out_dim, bias=bias)
        self.norm, self.self_loops, self.activation = norm, self_loops, activation

    def forward(self, x: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        adj = normalize_adjacency(adjacency.to(x.dtype), self.norm, self.self_loops)
        out = adj @ self.linear(x)
        return torch.relu(out) if self.activation else out


class RelationalGraphConvolution(nn.Module):
    """Relation-aware GCN (R-GCN, Schlichtkrull et al. 2018): H' = act(W_0 h_i + Σ_r Â_r H W_r).

    `adjacency` is (B, R, N, N) (or (R, N, N)), one slice per relation type, each row-normalised.
    """

    def __init__(self, in_dim: int, out_dim: int, num_relations: int, activation: bool = True) -> None:
        super().__init__()
        self.self_weight = nn.Linear(in_dim, out_dim)
        self.relation_weights = nn.Parameter(torch.empty(num_relations, in_dim, out_dim))
        nn.init.xavier_uniform_(self.relation_weights.view(num_relations * in_dim, out_dim))
        self.num_relations, self.activation = num_relations, activation

    def forward(self, x: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        if adjacency.shape[-3] != self.num_relations:
            raise ValueError(f"expected {self.num_relations} relation slices, got {adjacency.shape[-3]}")
        adj = normalize_adjacency(adjacency.to(x.dtype), "row", add_self_loops=False)
        messages = torch.einsum("bnf,rfo->brno", x, self.relation_weights)
        out = self.self_weight(x) + (adj @ messages).sum(dim=-3)
        return torch.relu(out) if self.activation else out
