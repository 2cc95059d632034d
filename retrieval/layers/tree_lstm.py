"""SMFEA's context-aware structured tree encoders (VCS-Tree / TCS-Tree) — the thesis §6.3.2, Eq. 6.5–6.14.

A fixed three-layer binary tree of M = 7 nodes, indexed 1–7 in in-order traversal (tensor index 0–6):

    layer 3 (root):          4                relation
    layer 2:            2          6          relations
    layer 1 (leaves): 1   3      5   7        fragments

Evaluation order: leaves {1,3,5,7} → {2 ← (1,3), 6 ← (5,7)} → {4 ← (2,6)}.
Node inputs are separate projections of the instance vector, x̂_t = W^o_t V^D (Eq. 6.5; decision 'SMFEA region projection': D → D).
The cell is the Child-Sum Tree-LSTM (decision 'SMFEA tree cell' default: one forget gate per child,
c_t = i_t⊙u_t + Σ_k f_tk⊙c_k, f_tk = σ(W^f x_t + U^f h_k)) or the thesis' literal form (Eq. 6.6–6.11
with the U^f/U^i typo fixed: f_t = σ(W^f x_t + U^f h̃_t), c_t = i_t⊙c̃_t + f_t⊙Σ_k f_k⊙c_k with f_k the
child's own forget gate; leaves have f_k from their own step).  Leaves are classified into fragment
classes (W_e, Eq. 6.12), internal nodes into relation classes (W_r, Eq. 6.13); both dictionaries
include the explicit Null class 0 (decision 'null class').  Label layout: `retrieval.parsing.referral_tree` (B, 7) int64,
fragment ids at positions 0, 2, 4, 6 and relation ids at 1, 3, 5.  The structured embedding is V^T = Σ_t W_t h_t (Eq. 6.14).
"""

from __future__ import annotations

import torch
from torch import nn

from retrieval.parsing.referral_tree import LEAF_NODES as LEAVES, NUM_NODES, RELATION_NODES as INTERNAL

LEVELS = ((0, 2, 4, 6), (1, 5), (3,))  # bottom-up evaluation order
CHILDREN = {1: (0, 2), 5: (4, 6), 3: (1, 5)}
CELLS = ("child_sum", "literal")


class TreeLSTMCell(nn.Module):
    """One gate set W^{i,f,o,u} x + U^{i,f,o,u} h, shared by all nodes of one tree (Eq. 6.6–6.11)."""

    def __init__(self, in_dim: int, hidden: int, cell: str = "child_sum") -> None:
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"unknown Tree-LSTM cell {cell!r} ({', '.join(CELLS)})")
        self.cell, self.hidden = cell, hidden
        self.input_gates = nn.Linear(in_dim, 4 * hidden)          # W^i, W^o, W^u, W^f
        self.hidden_iou = nn.Linear(hidden, 3 * hidden, bias=False)  # U^i, U^o, U^u
        self.hidden_f = nn.Linear(hidden, hidden, bias=False)        # U^f

    def forward(self, x: torch.Tensor, child_h: torch.Tensor | None, child_c: torch.Tensor | None,
                child_f: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x (B, in); child_* (B, C, hidden) or None for leaves → (h, c, f) each (B, hidden)."""
        wx = self.input_gates(x)
        wx_iou, wx_f = wx[:, : 3 * self.hidden], wx[:, 3 * self.hidden:]
        if child_h is None:
            i, o, u = (wx_iou).chunk(3, dim=-1)
            i, o, u = torch.sigmoid(i), torch.sigmoid(o), torch.tanh(u)
            f = torch.sigmoid(wx_f)
            c = i * u
            return o * torch.tanh(c), c, f
        h_sum = child_h.sum(dim=1)
        i, o, u = (wx_iou + self.hidden_iou(h_sum)).chunk(3, dim=-1)
        i, o, u = torch.sigmoid(i), torch.sigmoid(o), torch.tanh(u)
        if self.cell == "child_sum":
            f_children = torch.sigmoid(wx_f.unsqueeze(1) + self.hidden_f(child_h))
            c = i * u + (f_children * child_c).sum(dim=1)
            f = torch.sigmoid(wx_f + self.hidden_f(h_sum))
        else:
            f = torch.sigmoid(wx_f + self.hidden_f(h_sum))
            c = i * u + f * (child_f * child_c).sum(dim=1)
        return o * torch.tanh(c), c, f


class StructuredTreeEncoder(nn.Module):
    """VCS-/TCS-Tree: `forward(instance (B, D))` → dict(hidden (B, 7, H), fragment_logits (B, 4, F+1),
    relation_logits (B, 3, R+1), embedding V^T (B, D)).  F, R count the non-Null classes."""

    def __init__(self, in_dim: int, hidden: int = 128, num_fragments: int = 1440, num_relations: int = 247,
                 out_dim: int | None = None, cell: str = "child_sum") -> None:
        super().__init__()
        out_dim = in_dim if out_dim is None else out_dim
        self.node_inputs = nn.ModuleList(nn.Linear(in_dim, in_dim) for _ in range(NUM_NODES))  # W^o_t
        self.cell = TreeLSTMCell(in_dim, hidden, cell)
        self.fragment_classifier = nn.Linear(hidden, num_fragments + 1)   # W_e (+ Null)
        self.relation_classifier = nn.Linear(hidden, num_relations + 1)   # W_r (+ Null)
        self.node_outputs = nn.ModuleList(nn.Linear(hidden, out_dim) for _ in range(NUM_NODES))  # W_t

    def forward(self, instance: torch.Tensor) -> dict[str, torch.Tensor]:
        states: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
        for level in LEVELS:
            for node in level:
                x = self.node_inputs[node](instance)
                kids = CHILDREN.get(node)
                if kids is None:
                    states[node] = self.cell(x, None, None, None)
                    continue
                h = torch.stack([states[k][0] for k in kids], dim=1)
                c = torch.stack([states[k][1] for k in kids], dim=1)
                f = torch.stack([states[k][2] for k in kids], dim=1)
                states[node] = self.cell(x, h, c, f)
        hidden = torch.stack([states[n][0] for n in range(NUM_NODES)], dim=1)
        embedding = sum(self.node_outputs[n](hidden[:, n]) for n in range(NUM_NODES))
        return {
            "hidden": hidden,
            "fragment_logits": self.fragment_classifier(hidden[:, list(LEAVES)]),
            "relation_logits": self.relation_classifier(hidden[:, list(INTERNAL)]),
            "embedding": embedding,
        }
