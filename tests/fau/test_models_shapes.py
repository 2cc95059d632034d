"""Shapes and exact behaviour of every module of ALGRNet and MGRR-Net on the tiny configs."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from fau.aus import au_centres
from fau.face.points import to49
from fau.layers.alignment import AlignmentBranch
from fau.layers.conv import ConvBlocks, GroupedLinear
from fau.layers.convlstm import ConvLSTMCell, SkipBiLSTM
from fau.layers.fusion import GatedFusionCell
from fau.layers.heads import mean_probability_logit
from fau.layers.region import RegionAttention, au_centre_fn
from fau.layers.relational import ChannelAttention, PixelAttention, RegionGraph
from fau.layers.stem import HMRegionStem, LocalConv2d
from fau.losses import alignment_loss, weighted_bce, weighted_cross_entropy, weighted_dice
from fau.models import MODELS, build_model
from shared.config import load_config
from shared.errors import UserError

from . import fixtures as fx

CONFIGS = Path(__file__).resolve().parents[2] / "fau" / "configs"


def tiny(name: str) -> dict:
    return load_config(CONFIGS / f"{name}_tiny.yaml")["model"]


def face49(crop: int = 96) -> torch.Tensor:
    """A plausible 49-point face filling a `crop` square (pixels)."""
    points = to49(fx.face68(centre=(crop / 2, crop / 2 + 4), scale=crop * 0.33))
    return torch.as_tensor(points, dtype=torch.float32)


def test_local_conv_equals_a_loop_over_patches() -> None:
    torch.manual_seed(0)
    layer = LocalConv2d(4, 3, 5).eval()
    x = torch.randn(2, 3, 16, 16)
    out = layer(x)
    assert out.shape == (2, 5, 16, 16)
    # every patch has its own BN + conv: recompute patch (1, 2) by hand
    c = 1 * 4 + 2
    patch = x[:, :, 4:8, 8:12]
    bn = layer.norm
    sl = slice(c * 3, (c + 1) * 3)
    normed = (patch - bn.running_mean[sl, None, None]) / torch.sqrt(bn.running_var[sl, None, None] + bn.eps)
    normed = torch.relu(normed * bn.weight[sl, None, None] + bn.bias[sl, None, None])
    expected = torch.nn.functional.conv2d(normed, layer.conv.weight[c * 5:(c + 1) * 5],
                                          layer.conv.bias[c * 5:(c + 1) * 5], padding=1)
    torch.testing.assert_close(out[:, :, 4:8, 8:12], expected)


def test_stem_alignment_and_conv_blocks_shapes() -> None:
    stem = HMRegionStem(unit_dim=2, grids=(8, 4, 2))
    feature = stem(torch.randn(2, 3, 96, 96))
    assert feature.shape == (2, 16, 24, 24)
    align = AlignmentBranch(16, 24, unit_dim=2, hidden=32, num_landmarks=49, crop=96)
    vec, landmarks = align(feature)
    assert vec.shape == (2, 40 * 3 * 3) and align.feature_dim == 360
    assert landmarks.shape == (2, 49, 2)
    paper = ConvBlocks(64, (96, 128, 160))
    assert paper.out_size(44) == 5 and paper.out_channels * 25 == 4000  # JAA-Net's 4000-d feature
    grouped = ConvBlocks(16, (24, 32, 40), groups=3)
    assert grouped(torch.randn(2, 3 * 16, 24, 24)).shape == (2, 3 * 40, 3, 3)
    assert GroupedLinear(3, 7, 2)(torch.randn(4, 3, 7)).shape == (4, 3, 2)


def region_module(adaptive: bool, **changes) -> RegionAttention:
    options = dict(adaptive=adaptive, offset_mode="per_au_mirrored", offset_max=0.1, init_scale=0.14,
                   scale_param="exp_tanh", scale_min=0.05, scale_max=0.3, hidden=16, map_kind="gaussian",
                   refine=False, refine_width=4, detach_landmarks=True)
    options.update(changes)
    return RegionAttention(au_centre_fn("bp4d"), 12, 20, 24, 96, **options)


def test_region_attention_starts_at_the_jaa_rule_and_learns_offsets_and_scales() -> None:
    torch.manual_seed(0)
    landmarks = face49().expand(2, 49, 2)
    feature = torch.randn(2, 20, requires_grad=True)
    module = region_module(adaptive=True)
    out = module(feature, landmarks)
    assert out["maps"].shape == (2, 12, 24, 24)
    assert out["centres"].shape == (2, 12, 2, 2) and out["scales"].shape == (2, 12)
    torch.testing.assert_close(out["centres"], au_centres(landmarks, "bp4d"), atol=0.2, rtol=0)
    torch.testing.assert_close(out["scales"], torch.full((2, 12), 0.14), atol=1e-3, rtol=0)
    out["maps"].sum().backward()
    assert module.offset_net[2].weight.grad.abs().sum() > 0
    assert module.scale_net[2].weight.grad.abs().sum() > 0
    fixed = region_module(adaptive=False)(feature, landmarks)
    assert torch.all(fixed["scales"] == 0.14)
    assert fixed["maps"].amax(dim=(-2, -1)).min() > 0.5  # every region lies on the map


def test_region_offset_modes() -> None:
    torch.manual_seed(0)
    landmarks = face49().expand(1, 49, 2)
    feature = torch.randn(1, 20)
    for mode in ("per_au_mirrored", "per_au_shared", "per_centre"):
        module = region_module(adaptive=True, offset_mode=mode, scale_param="sigmoid")
        torch.nn.init.normal_(module.offset_net[2].weight, std=1.0)
        out = module(feature, landmarks)
        shift = out["centres"] - au_centres(landmarks, "bp4d")
        assert shift.abs().max() <= 0.1 * 96 + 1e-4
        if mode == "per_au_mirrored":
            torch.testing.assert_close(shift[..., 0, 0], -shift[..., 1, 0])
            torch.testing.assert_close(shift[..., 0, 1], shift[..., 1, 1])
        elif mode == "per_au_shared":
            torch.testing.assert_close(shift[..., 0, :], shift[..., 1, :])
        assert ((out["scales"] > 0.05) & (out["scales"] < 0.3)).all()


def test_convlstm_and_skip_bilstm() -> None:
    torch.manual_seed(0)
    cell = ConvLSTMCell(8, 8, 3)
    h, c = cell(torch.randn(2, 8, 6, 6), torch.zeros(2, 8, 6, 6), torch.zeros(2, 8, 6, 6))
    assert h.shape == c.shape == (2, 8, 6, 6)
    v = torch.randn(2, 4, 8, 6, 6)
    for mode in ("skip", "plain"):
        assert SkipBiLSTM(8, 8, 4, 3, mode, "sum")(v).shape == v.shape
    with pytest.raises(UserError):
        SkipBiLSTM(8, 16, 4, 3, "skip", "sum")


def _skip_bilstm_by_hand(lstm: SkipBiLSTM, v: torch.Tensor) -> torch.Tensor:
    """Eqs. 3.4-3.8 one direction after the other, the gate of eq. 3.6 as a 1×1 conv then GAP."""
    steps = v.shape[1]
    passes = []
    for direction, order in ((0, list(range(steps))), (1, list(range(steps))[::-1])):
        cell, states = lstm.cells[direction], {}
        h_in = c = torch.zeros_like(v[:, 0])
        for step, t in enumerate(order):
            if step > 0 and lstm.mode == "plain":
                h_in = states[order[step - 1]]
            elif step > 0:
                h_in = torch.zeros_like(c)
                for j in order[:step]:
                    weight = lstm.gate_weight[direction, j].view(1, -1, 1, 1)
                    logit = torch.nn.functional.conv2d(torch.cat([states[j], v[:, t]], 1), weight,
                                                       lstm.gate_bias[direction, j].view(1))
                    gate = torch.sigmoid(logit.mean(dim=(-2, -1)))[..., None, None]
                    h_in = h_in + gate * states[j] / (step if lstm.gate_sum == "mean" else 1)
            states[t], c = cell(v[:, t], h_in, c)
        passes.append(torch.stack([states[t] for t in range(steps)], dim=1))
    return v + 0.5 * (passes[0] + passes[1])


@pytest.mark.parametrize("mode,gate_sum", [("skip", "sum"), ("skip", "mean"), ("plain", "sum")])
def test_skip_bilstm_equals_the_equations_direction_by_direction(mode: str, gate_sum: str) -> None:
    """The module runs both directions as one grouped step and pools before the gate weights
    (a 1×1 conv commutes with GAP); outputs and gradients equal the plain reading."""
    torch.manual_seed(0)
    lstm = SkipBiLSTM(8, 8, 5, 3, mode, gate_sum)
    v = torch.randn(2, 5, 8, 4, 4, requires_grad=True)
    got, expected = lstm(v), _skip_bilstm_by_hand(lstm, v)
    torch.testing.assert_close(got, expected)
    grads = torch.autograd.grad(got.square().sum(), [v, *lstm.parameters()])
    hand = torch.autograd.grad(expected.square().sum(), [v, *lstm.parameters()])
    for g, h in zip(grads, hand):
        torch.testing.assert_close(g, h, rtol=1e-4, atol=1e-5)


def test_gated_fusion_cell_is_per_branch() -> None:
    torch.manual_seed(0)
    cell = GatedFusionCell(6, 4, 5, x_groups=1, y_groups=3, out_groups=3)
    g, s = torch.randn(2, 6, 7, 7), torch.randn(2, 12, 7, 7)
    out = cell(g, s)
    assert out.shape == (2, 15, 7, 7)
    # each element is a convex mix of two unit vectors' elements: the norm is at most sqrt(2)
    assert out.view(2, 3, 5, 7, 7).norm(dim=2).max() <= 2 ** 0.5 + 1e-5
    s2 = s.clone()
    s2[:, :4] += 1.0  # change branch 0's local input only
    changed = (cell(g, s2) - out).view(2, 3, 5, 7, 7).abs().sum(dim=(0, 2, 3, 4))
    assert changed[0] > 0 and changed[1] == 0 and changed[2] == 0


def test_mgrr_relational_modules() -> None:
    torch.manual_seed(0)
    prior = np.random.default_rng(0).random((3, 3)).astype(np.float32)
    graph = RegionGraph(4, 3, prior, "prior", "zero", "none", "per_node")
    assert torch.all(torch.diagonal(graph.adjacency) == 0)
    torch.testing.assert_close(graph.adjacency.data, torch.as_tensor(prior) * (1 - torch.eye(3)))
    v = torch.randn(2, 12, 6, 6)
    out = graph(v)
    assert out.shape == v.shape
    # eq. 4.5 by hand: v̄_i = W_i v_i + Σ_j A_ij W_j v_j
    mapped = graph.node_map(v).view(2, 3, 4, 6, 6)
    expected = mapped[:, 0] + sum(graph.adjacency[0, j] * mapped[:, j] for j in range(3))
    torch.testing.assert_close(out.view(2, 3, 4, 6, 6)[:, 0], expected)
    with pytest.raises(UserError):
        RegionGraph(4, 3, None, "prior", "zero", "none", "per_node")
    o_g = torch.randn(2, 8, 11, 11)  # odd size: the deconvolutions must still restore 11×11
    assert ChannelAttention(8, 11, 32, 4, False, False)(o_g).shape == o_g.shape
    assert ChannelAttention(8, 11, 32, 4, True, True)(o_g).shape == o_g.shape
    assert PixelAttention(8, 32, 4, False)(o_g).shape == o_g.shape


@pytest.mark.parametrize("name", ["algrnet", "mgrrnet"])
@pytest.mark.parametrize("dataset,aus", [("bp4d", 12), ("disfa", 8), ("synfacs", 15)])
def test_models_output_shapes(name: str, dataset: str, aus: int) -> None:
    torch.manual_seed(0)
    config = tiny(name)
    config["dataset"] = dataset
    model = build_model(name, config, aus, prior=np.full((aus, aus), 0.5)).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 80, 80))
    assert out["au_logits"].shape == out["au_logits_local"].shape == out["au_logits_integrated"].shape == (2, aus)
    assert out["landmarks"].shape == (2, 49, 2)
    assert out["region_maps"].shape == (2, aus, 20, 20)
    assert out["region_centres"].shape == (2, aus, 2, 2)
    probs = torch.sigmoid(out["au_logits"])
    mean = 0.5 * (torch.sigmoid(out["au_logits_local"]) + torch.sigmoid(out["au_logits_integrated"]))
    torch.testing.assert_close(probs, mean)


def test_paralysis_variant_outputs_grades() -> None:
    torch.manual_seed(0)
    config = tiny("algrnet")
    config.update(task="paralysis", dataset="fpara")
    model = build_model("algrnet", config, 6)
    out = model(torch.randn(3, 3, 80, 80))
    assert out["grade_logits"].shape == (3, 4) and "au_logits" not in out
    batch = {"grades": torch.tensor([[0], [3], [1]]), "grade_weights": torch.ones(4),
             "landmarks": face49().expand(3, 49, 2)}
    losses = model.training_losses(out, batch)
    assert set(losses) == {"grade", "align", "total"}
    torch.testing.assert_close(losses["total"], losses["grade"] + 0.5 * losses["align"])


def test_losses() -> None:
    logits = torch.tensor([[0.3, -1.2], [2.0, 0.1]])
    labels = torch.tensor([[1, 0], [-1, 1]])
    weights = torch.tensor([0.5, 1.5])
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    expected = (0.5 * bce(logits[0, 0], torch.tensor(1.0)) + 1.5 * bce(logits[0, 1], torch.tensor(0.0))
                + 1.5 * bce(logits[1, 1], torch.tensor(1.0))) / 3
    torch.testing.assert_close(weighted_bce(logits, labels, weights), expected)
    face = face49().expand(2, 49, 2)
    assert alignment_loss(face, face) == 0
    shifted = face + torch.tensor([3.0, 4.0])  # every point 5 px off: 49·25 / (2 d_o²)
    d2 = (face[0, 19:25].mean(0) - face[0, 25:31].mean(0)).pow(2).sum()
    torch.testing.assert_close(alignment_loss(shifted, face), 49 * 25 / (2 * d2))
    ce = weighted_cross_entropy(torch.zeros(2, 4), torch.tensor([0, 2]), torch.tensor([1.0, 1.0, 3.0, 1.0]))
    torch.testing.assert_close(ce, torch.log(torch.tensor(4.0)) * 2)
    assert 0 <= weighted_dice(logits, labels, weights) <= 2
    a, b = torch.tensor([0.5, -3.0]), torch.tensor([2.0, 1.0])
    torch.testing.assert_close(torch.sigmoid(mean_probability_logit(a, b)), (torch.sigmoid(a) + torch.sigmoid(b)) / 2)


def test_config_errors_are_one_line_user_errors() -> None:
    config = tiny("algrnet")
    config["region"]["offest_mode"] = "per_au_shared"
    with pytest.raises(UserError, match="unknown key"):
        build_model("algrnet", config, 12)
    config = tiny("mgrrnet")
    del config["relational"]["layer"]["heads"]
    with pytest.raises(UserError, match="missing key 'heads'"):
        build_model("mgrrnet", config, 12, prior=np.zeros((12, 12)))
    with pytest.raises(UserError, match="12 AUs but the data has 8"):
        build_model("mgrrnet", tiny("mgrrnet"), 8, prior=np.zeros((8, 8)))
    bad = copy.deepcopy(tiny("algrnet"))
    bad["input_size"] = 100
    with pytest.raises(UserError, match="stem grid"):
        build_model("algrnet", bad, 12)
    config = tiny("mgrrnet")
    config["relational"]["layer"]["graph_init"] = "zeros"
    with pytest.raises(UserError, match=r"model.relational.layer.graph_init: 'zeros' is not one of 'prior', 'random'"):
        build_model("mgrrnet", config, 12)
    config = tiny("algrnet")
    config["region"]["fixed_map"] = "l1"
    with pytest.raises(UserError, match=r"model.region.fixed_map: 'l1' is not one of 'jaa', 'gaussian'"):
        build_model("algrnet", config, 12)
    assert MODELS.names() == ["algrnet", "mgrrnet", "vlfau"]
    with pytest.raises(UserError):
        build_model("algrnet", tiny("algrnet"), 12)(torch.randn(1, 3, 64, 64))
