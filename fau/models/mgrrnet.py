"""MGRR-Net, the multi-level graph relational reasoning network (thesis Ch. 4; fau-models.md §3).

Same stem and alignment branch as ALGRNet; fixed JAA regions (e = 0.14, §5 M1) give patch
features v_i = O_G ⊙ A_i. Then K relational layers (default 2), each with

* a region-level dynamic AU graph D_G: v̄_i = W_i v_i + Σ_j A_ij W_j v_j (eq. 4.5), A learnable,
  initialised from the co-occurrence prior (eqs. 4.1–4.2) or at random;
* channel-level and pixel-level multi-head GATs on O_G (eqs. 4.3–4.4; D = 1024, L = 8 heads)
  giving C_G and P_G (the pixel branch: conv3×3/s2 → MH-GAT → deconvolution, §5 M4);
* hierarchical gated fusion cells v^{k+1}_i = GFC(v̄_i, GFC(O_G, GFC(C_G, P_G))) (eqs. 4.6–4.8);

→ per-AU branch classifiers + an integrated head over the alignment and refined AU features.
Loss (L_au + L_int) + 0.5·L_align (eq. 4.11); prediction = mean of both probabilities (§4.4.1).

Ablation switches (Tab 4.6 / 4.7): ``relational.layers`` K (0 = the shared JAA-style baseline),
``region_graph`` (D_G), ``global_feature`` (O_G), ``channel_gat`` (C_G), ``pixel_gat`` (P_G),
``graph_init`` prior | random.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from fau.aus import resolve_aus
from fau.models import MODELS
from fau.models.algrnet import GatedFusionCell
from shared.config import Options
from fau.models.base import (FAUModel, au_losses, build_front, integrated_head, local_head,
                             mean_probability_logit)
from fau.models.region import au_centre_fn
from fau.models.stem import ConvBlocks
from shared.errors import UserError
from shared.layers import MultiHeadGraphAttention

GRAPH_INITS = ("prior", "random")
DIAGONALS = ("zero", "keep")
ADJ_NORMS = ("none", "row")
NODE_WEIGHTS = ("per_node", "shared")
GFC_SHARING = ("per_au", "shared_global")


class RegionGraph(nn.Module):
    """Region-level dynamic AU graph (eq. 4.5) on (B, n·C, S, S) node maps.

    A ∈ R^{n×n} is a parameter initialised from the prior A_ij = |2(P_ij - 0.5)| (asymmetric,
    computed on the training folds, §5 M2) or U(0, 1). With ``diagonal: zero`` the self term is only
    W_i v_i (the diagonal is masked); ``keep`` learns it. ``row`` normalises |A| by rows.
    W_i are per-node 1×1 convs (§5 M3) or one shared 1×1 conv.
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
    With `downsample` the map is first reduced by conv3×3/s2 and restored by a deconvolution
    (§4.4.1's reading of the stride-2 conv, §5 M4 flag)."""

    def __init__(self, channels: int, size: int, attn_dim: int, heads: int, residual: bool, downsample: bool) -> None:
        super().__init__()
        side = (size + 1) // 2 if downsample else size
        self.down = nn.Conv2d(channels, channels, 3, stride=2, padding=1) if downsample else None
        self.up = nn.ConvTranspose2d(channels, channels, 3, stride=2, padding=1) if downsample else None
        self.gat = MultiHeadGraphAttention(side * side, attn_dim, heads, residual=residual)

    def forward(self, o_g: torch.Tensor) -> torch.Tensor:
        x = self.down(o_g) if self.down is not None else o_g
        out = self.gat(x.flatten(2)).view_as(x)
        return self.up(out, output_size=o_g.shape[-2:]) if self.up is not None else out


class PixelAttention(nn.Module):
    """Pixel-level MH-GAT (P_G): conv3×3/s2/p1 (44 → 22) keeping c channels, the w'·h' positions are
    nodes of dimension c (mapped to D, §5 M6), MH-GAT, then a deconvolution back to O_G's size."""

    def __init__(self, channels: int, attn_dim: int, heads: int, residual: bool) -> None:
        super().__init__()
        self.down = nn.Conv2d(channels, channels, 3, stride=2, padding=1)
        self.gat = MultiHeadGraphAttention(channels, attn_dim, heads, residual=residual)
        self.up = nn.ConvTranspose2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, o_g: torch.Tensor) -> torch.Tensor:
        x = self.down(o_g)
        b, c, h, w = x.shape
        nodes = self.gat(x.flatten(2).transpose(1, 2))                   # (B, h·w, c)
        return self.up(nodes.transpose(1, 2).reshape(b, c, h, w), output_size=o_g.shape[-2:])


@dataclass(frozen=True)
class LayerSettings:
    """The ``relational.layer`` config section (one set of switches for all K layers)."""

    region_graph: bool
    global_feature: bool
    channel_gat: bool
    pixel_gat: bool
    graph_init: str
    diagonal: str
    norm: str
    node_weights: str
    attn_dim: int
    heads: int
    residual: bool
    downsample: bool
    gfc: str

    @classmethod
    def read(cls, opts: Options) -> "LayerSettings":
        """Read and check every key of the section."""
        return cls(
            region_graph=opts.bool("region_graph"), global_feature=opts.bool("global_feature"),
            channel_gat=opts.bool("channel_gat"), pixel_gat=opts.bool("pixel_gat"),
            graph_init=opts.choice("graph_init", GRAPH_INITS), diagonal=opts.choice("adjacency_diagonal", DIAGONALS),
            norm=opts.choice("adjacency_norm", ADJ_NORMS), node_weights=opts.choice("node_weights", NODE_WEIGHTS),
            attn_dim=opts.int("attn_dim", minimum=1), heads=opts.int("heads", minimum=1),
            residual=opts.bool("gat_residual"), downsample=opts.bool("channel_downsample"),
            gfc=opts.choice("gfc", GFC_SHARING),
        )


class RelationalLayer(nn.Module):
    """One multi-level relational reasoning layer (§4.3.2) with its own graph, GATs and GFCs (§5 M7).

    The GFC hierarchy is built from the enabled terms: GFC(C_G, P_G) when both GATs are on (else
    the one that is), GFC(O_G, ·) when O_G is on, and GFC(v̄_i, ·) per AU; with no global term the
    layer output is v̄_i.
    """

    def __init__(self, channels: int, size: int, nodes: int, prior: np.ndarray | None,
                 settings: LayerSettings) -> None:
        super().__init__()
        st = settings
        groups = nodes if st.gfc == "per_au" else 1
        self.graph = (RegionGraph(channels, nodes, prior, st.graph_init, st.diagonal, st.norm, st.node_weights)
                      if st.region_graph else None)
        self.channel = (ChannelAttention(channels, size, st.attn_dim, st.heads, st.residual, st.downsample)
                        if st.channel_gat else None)
        self.pixel = PixelAttention(channels, st.attn_dim, st.heads, st.residual) if st.pixel_gat else None
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


@MODELS.register("mgrrnet")
class MGRRNet(FAUModel):
    """MGRR-Net built from the ``model:`` config section (see ``fau/configs/mgrrnet_*.yaml``)."""

    name = "mgrrnet"

    def __init__(self, config: Mapping[str, Any], num_aus: int, prior: np.ndarray | None = None) -> None:
        opts = Options(config, "model")
        dataset = opts.str("dataset")
        regions = len(resolve_aus(dataset))
        if regions != num_aus:
            raise UserError(f"model.dataset {dataset!r} has {regions} AUs but the data has {num_aus} labels")
        front = build_front(opts, regions, au_centre_fn(dataset))
        super().__init__(regions, front.size * 4)
        self.dataset = dataset
        self.stem, self.alignment, self.region = front.stem, front.alignment, front.region
        u, c, size = front.unit_dim, front.channels, front.size

        relational = opts.sub("relational")
        depth = relational.int("layers", minimum=0)
        settings = LayerSettings.read(relational.sub("layer"))
        self.layers = nn.ModuleList(RelationalLayer(c, size, regions, prior, settings) for _ in range(depth))

        # per-AU branches: JAA-style conv blocks 44 → 5, then the classifiers (§3.3 [INF])
        self.branches = ConvBlocks(c, (12 * u, 16 * u, 20 * u), groups=regions)
        side = self.branches.out_size(size)
        branch_dim = self.branches.out_channels * side * side
        head = opts.sub("head")
        self.local_head = local_head(regions, branch_dim, head.int("local_hidden", minimum=1))
        self.integrated_head = integrated_head(self.alignment.feature_dim + branch_dim,
                                               head.int("integrated_hidden", minimum=1), regions)
        loss = opts.sub("loss")
        self.align_weight = loss.float("align_weight", minimum=0.0)
        self.dice_weight = loss.float("dice_weight", minimum=0.0)
        opts.finish()

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        self.check_images(images)
        o_g = self.stem(images)                                           # (B, C, S, S)
        align_feature, landmarks = self.alignment(o_g)
        region = self.region(align_feature, landmarks)
        b, c, h, w = o_g.shape
        v = (o_g.unsqueeze(1) * region["maps"].unsqueeze(2)).reshape(b, -1, h, w)   # v_i = O_G ⊙ A_i
        for layer in self.layers:
            v = layer(v, o_g)
        branches = self.branches(v).view(b, self.num_aus, -1)
        local = self.local_head(branches)
        integrated = self.integrated_head(torch.cat([align_feature, branches.mean(dim=1)], dim=1))
        return {"au_logits": mean_probability_logit(local, integrated), "au_logits_local": local,
                "au_logits_integrated": integrated, "landmarks": landmarks, "region_maps": region["maps"],
                "region_centres": region["centres"], "region_scales": region["scales"]}

    def compute_losses(self, outputs: Mapping[str, torch.Tensor],
                       batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """(L_au + L_int) + λ·L_align, eq. 4.11."""
        return au_losses(outputs, batch, self.align_weight, self.dice_weight)
