"""MGRR-Net's multi-level relational reasoning layer (thesis §4.3.2) and its parts.

* `RegionGraph`: the region-level dynamic AU graph D_G, v̄_i = W_i v_i + Σ_j A_ij W_j v_j (eq. 4.5), A
  learnable, initialised from the co-occurrence prior (eqs. 4.1–4.2) or at random;
* `ChannelAttention`, `PixelAttention`: channel- and pixel-level multi-head GATs on O_G (eqs. 4.3–4.4,
  `shared.layers.MultiHeadGraphAttention`), giving C_G and P_G;
* `RelationalLayer`: both, joined by hierarchical gated fusion cells
  v^{k+1}_i = GFC(v̄_i, GFC(O_G, GFC(C_G, P_G))) (eqs. 4.6–4.8, `fau.layers.fusion.GatedFusionCell`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

from fau.layers.fusion import GatedFusionCell
from shared.config import bounded
from shared.errors import UserError
from shared.layers import MultiHeadGraphAttention


class RegionGraph(nn.Module):
    """Region-level dynamic AU graph (eq. 4.5) on (B, n·C, S, S) node maps.

    A ∈ R^{n×n} is a parameter initialised from the prior A_ij = |2(P_ij - 0.5)| (eqs. 4.1–4.2,
    asymmetric, computed on the training folds) or U(0, 1) (the "random A" ablation of thesis
    §4.4.4). With ``diagonal: zero`` the self term is only W_i v_i (the diagonal is masked); ``keep``
    learns it. ``row`` normalises |A| by rows (docs/fau.md, decision 'prior adjacency'). W_i are
    per-node 1×1 convs (the subscript of eq. 4.5; decision 'node weights') or one shared 1×1 conv.
    """

    def __init__(self, channels: int, nodes: int, init: np.ndarray | None, graph_init: str, diagonal: str,
                 norm: str, node_weights: str) -> None:
        super().__init__()
        if graph_init == "prior":
            if init is None:
                raise UserError("mgrrnet: relational.graph_init=prior needs the AU co-occurrence prior "
                                "of the training folds (or set graph_init=random)")
            if np.shape(init) != (nodes, nodes):
                raise UserError(f"mgrrnet: the prior is {np.shape(init)}, expected ({nodes}, {nodes})")
            adjacency = torch.as_tensor(np.asarray(init), dtype=torch.float32).clone()
        else:
            adjacency = torch.rand(nodes, nodes)
        keep = torch.ones(nodes, nodes)
        if diagonal == "zero":
            keep.fill_diagonal_(0.0)
        self.adjacency = nn.Parameter(adjacency * keep)
        self.register_buffer("keep", keep, persistent=False)
        self.norm, self.nodes, self.channels = norm, nodes, channels
        self.per_node = node_weights == "per_node"
        self.node_map = (nn.Conv2d(nodes * channels, nodes * channels, 1, groups=nodes) if self.per_node
                         else nn.Conv2d(channels, channels, 1))

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        b, _, h, w = v.shape
        if self.per_node:
            mapped = self.node_map(v).view(b, self.nodes, self.channels, h, w)
        else:
            mapped = self.node_map(v.view(b * self.nodes, self.channels, h, w)).view(b, self.nodes, self.channels, h, w)
        adjacency = self.adjacency * self.keep
        if self.norm == "row":
            adjacency = adjacency / adjacency.abs().sum(dim=1, keepdim=True).clamp_min(1e-6)
        mixed = mapped + torch.einsum("ij,bjchw->bichw", adjacency, mapped)
        return mixed.reshape(b, self.nodes * self.channels, h, w)


class ChannelAttention(nn.Module):
    """Channel-level MH-GAT (C_G): the c channels of O_G are nodes of dimension w·h, mapped to D
    (eqs. 4.3–4.4, `shared.layers.MultiHeadGraphAttention`) and back; reshaped to O_G's shape.
    With `downsample` (the paper config) the map is first reduced by conv3×3/s2/p1 ("We use a 3 × 3
    Conv2D operation with a stride two and padding one before learning the channel-level feature",
    thesis §4.4.1) and restored by a deconvolution (docs/fau.md, decision 'stride-2 convolution')."""

    def __init__(self, channels: int, size: int, attn_dim: int, heads: int, residual: bool, downsample: bool) -> None:
        super().__init__()
        side = (size + 1) // 2 if downsample else size
        self.down = nn.Conv2d(channels, channels, 3, stride=2, padding=1) if downsample else None
        self.up = nn.ConvTranspose2d(channels, channels, 3, stride=2, padding=1) if downsample else None
        self.gat = MultiHeadGraphAttention(side * side, attn_dim, heads, residual=residual)

    def forward(self, o_g: torch.Tensor) -> torch.Tensor:
        x = self.down(o_g) if self.down is not None else o_g
        out = self.gat(x.flatten(2))[0].view_as(x)
        return self.up(out, output_size=o_g.shape[-2:]) if self.up is not None else out


class PixelAttention(nn.Module):
    """Pixel-level MH-GAT (P_G): conv3×3/s2/p1 (44 → 22) keeping c channels, the w'·h' positions are
    nodes of dimension c (mapped to D: docs/fau.md, decision 'pixel GAT width'), MH-GAT, then "a
    deconvolution layer behind of a GAT" (thesis §4.3.2) back to O_G's size."""

    def __init__(self, channels: int, attn_dim: int, heads: int, residual: bool) -> None:
        super().__init__()
        self.down = nn.Conv2d(channels, channels, 3, stride=2, padding=1)
        self.gat = MultiHeadGraphAttention(channels, attn_dim, heads, residual=residual)
        self.up = nn.ConvTranspose2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, o_g: torch.Tensor) -> torch.Tensor:
        x = self.down(o_g)
        b, c, h, w = x.shape
        nodes, _ = self.gat(x.flatten(2).transpose(1, 2))                # (B, h·w, c)
        return self.up(nodes.transpose(1, 2).reshape(b, c, h, w), output_size=o_g.shape[-2:])


@dataclass(frozen=True)
class RelationalLayerConfig:
    """``model.relational.layer``: one set of switches for all K layers (thesis Tab 4.6 ablations)."""

    region_graph: bool = True        # D_G, eq. 4.5
    global_feature: bool = True      # O_G in eq. 4.6
    channel_gat: bool = True         # C_G, eqs. 4.3–4.4
    pixel_gat: bool = True           # P_G
    graph_init: Literal["prior", "random"] = "prior"
    adjacency_diagonal: Literal["zero", "keep"] = "zero"
    adjacency_norm: Literal["none", "row"] = "none"
    node_weights: Literal["per_node", "shared"] = "per_node"
    attn_dim: int = bounded(1024, minimum=1, doc="D of the MH-GATs")
    heads: int = bounded(8, minimum=1, doc="L parallel attention heads")
    gat_residual: bool = False
    channel_downsample: bool = True
    gfc: Literal["per_au", "shared_global"] = "per_au"


class RelationalLayer(nn.Module):
    """One multi-level relational reasoning layer (thesis §4.3.2) with its own graph, GATs and GFCs
    (the k superscripts of eqs. 4.5–4.8; GFCs per AU: docs/fau.md, decision 'parameter sharing').

    The GFC hierarchy is built from the enabled terms: GFC(C_G, P_G) when both GATs are on (else
    the one that is), GFC(O_G, ·) when O_G is on, and GFC(v̄_i, ·) per AU; with no global term the
    layer output is v̄_i.
    """

    def __init__(self, channels: int, size: int, nodes: int, prior: np.ndarray | None,
                 config: RelationalLayerConfig) -> None:
        super().__init__()
        st = config
        groups = nodes if st.gfc == "per_au" else 1
        self.graph = (RegionGraph(channels, nodes, prior, st.graph_init, st.adjacency_diagonal, st.adjacency_norm,
                                  st.node_weights) if st.region_graph else None)
        self.channel = (ChannelAttention(channels, size, st.attn_dim, st.heads, st.gat_residual, st.channel_downsample)
                        if st.channel_gat else None)
        self.pixel = PixelAttention(channels, st.attn_dim, st.heads, st.gat_residual) if st.pixel_gat else None
        self.use_global = st.global_feature

        def gfc(x_groups: int, y_groups: int, out_groups: int) -> GatedFusionCell:
            return GatedFusionCell(channels, channels, channels, x_groups, y_groups, out_groups)

        both = self.channel is not None and self.pixel is not None
        self.gfc_attention = gfc(1, 1, groups) if both else None
        inner_groups = groups if both else 1
        has_inner = self.channel is not None or self.pixel is not None
        self.gfc_global = gfc(1, inner_groups, groups) if self.use_global and has_inner else None
        global_groups = groups if self.gfc_global is not None else (1 if self.use_global else inner_groups)
        self.gfc_region = gfc(nodes, global_groups, nodes) if (self.use_global or has_inner) else None

    def forward(self, v: torch.Tensor, o_g: torch.Tensor) -> torch.Tensor:
        v_bar = self.graph(v) if self.graph is not None else v
        c_g = self.channel(o_g) if self.channel is not None else None
        p_g = self.pixel(o_g) if self.pixel is not None else None
        inner = self.gfc_attention(c_g, p_g) if self.gfc_attention is not None else (c_g if c_g is not None else p_g)
        if self.gfc_global is not None:
            context = self.gfc_global(o_g, inner)
        else:
            context = o_g if self.use_global else inner
        return self.gfc_region(v_bar, context) if self.gfc_region is not None else v_bar
