"""Training behaviour of ALGRNet and MGRR-Net on the tiny configs: gradients, overfitting,
determinism, label masking and every ablation switch."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from fau.face.points import to49
from fau.models import build_model
from shared.config import load_config

from . import fixtures as fx

CONFIGS = Path(__file__).resolve().parents[2] / "fau" / "configs"
NUM_AUS = 12


def tiny(name: str) -> dict:
    return load_config(CONFIGS / f"{name}_tiny.yaml")["model"]


def make_batch(size: int, crop: int = 80, seed: int = 1) -> dict[str, torch.Tensor]:
    """Random-but-fixed images and labels, landmarks of one face with 1 px jitter."""
    gen = torch.Generator().manual_seed(seed)
    face = torch.as_tensor(to49(fx.face68(centre=(crop / 2, crop / 2 + 4), scale=crop / 3)), dtype=torch.float32)
    return {"image": torch.rand(size, 3, crop, crop, generator=gen) * 2 - 1,
            "labels": torch.randint(0, 2, (size, NUM_AUS), generator=gen),
            "landmarks": face + torch.randn(size, 49, 2, generator=gen),
            "au_weights": torch.rand(NUM_AUS, generator=gen) + 0.5}


def build(name: str, config: dict | None = None, seed: int = 0):
    torch.manual_seed(seed)
    prior = np.random.default_rng(0).random((NUM_AUS, NUM_AUS))
    return build_model(name, config if config is not None else tiny(name), NUM_AUS, prior=prior)


@pytest.mark.parametrize("name", ["algrnet", "mgrrnet"])
def test_gradients_reach_every_parameter(name: str) -> None:
    model = build(name)
    batch = make_batch(4)
    losses = model.training_losses(model(batch["image"]), batch)
    if name == "algrnet":   # thesis §3.2.1: L = L_au + λ L_align, no L_int
        assert set(losses) == {"au", "align", "total"}
        torch.testing.assert_close(losses["total"], losses["au"] + 0.5 * losses["align"])
    else:                   # thesis eq. 4.11: (L_au + L_int) + λ L_align
        assert set(losses) == {"au", "int", "align", "total"}
        torch.testing.assert_close(losses["total"], losses["au"] + losses["int"] + 0.5 * losses["align"])
    losses["total"].backward()
    missing = [n for n, p in model.named_parameters()
               if p.requires_grad and (p.grad is None or p.grad.abs().sum() == 0)]
    assert not missing


@pytest.mark.parametrize("fusion", ["gated", "none"])
def test_paralysis_gradients_reach_every_parameter(fusion: str) -> None:
    config = _set(_set(_set(tiny("algrnet"), "task", "paralysis"), "dataset", "fpara"), "fusion.mode", fusion)
    torch.manual_seed(0)
    model = build_model("algrnet", config, 6)
    batch = {**make_batch(4), "grades": torch.tensor([0, 1, 2, 3]), "grade_weights": torch.ones(4)}
    model.training_losses(model(batch["image"]), batch)["total"].backward()
    missing = [n for n, p in model.named_parameters()
               if p.requires_grad and (p.grad is None or p.grad.abs().sum() == 0)]
    assert not missing


@pytest.mark.slow
@pytest.mark.parametrize("name", ["algrnet", "mgrrnet"])
def test_overfits_a_fixed_batch(name: str) -> None:
    """Loss (and the AU part alone) falls by >= 90% on 16 fixed images within 30 Adam steps (ALGRNet's
    L_au on the averaged probability needs ~25)."""
    model = build(name)
    batch = make_batch(16)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(30):
        losses = model.training_losses(model(batch["image"]), batch)
        if first is None:
            first = {k: v.item() for k, v in losses.items()}
        if losses["total"].item() <= 0.1 * first["total"] and losses["au"].item() <= 0.1 * first["au"]:
            break
        optimiser.zero_grad()
        losses["total"].backward()
        optimiser.step()
    assert losses["total"].item() <= 0.1 * first["total"]
    assert losses["au"].item() <= 0.1 * first["au"]


@pytest.mark.parametrize("name", ["algrnet", "mgrrnet"])
def test_same_seed_same_outputs(name: str) -> None:
    images = make_batch(2)["image"]
    first, second = build(name, seed=3).eval(), build(name, seed=3).eval()
    with torch.no_grad():
        a, b = first(images), second(images)
    assert all(torch.equal(a[k], b[k]) for k in a)
    with torch.no_grad():
        c = build(name, seed=4).eval()(images)
    assert not torch.equal(a["au_logits"], c["au_logits"])


@pytest.mark.parametrize("name", ["algrnet", "mgrrnet"])
def test_unknown_labels_do_not_contribute(name: str) -> None:
    model = build(name).eval()
    batch = make_batch(3)
    batch["labels"][0, :5] = -1
    batch["labels"][2, 7] = -1
    with torch.no_grad():
        outputs = model(batch["image"])
    read = ("au_logits",) if name == "algrnet" else ("au_logits_local", "au_logits_integrated")
    logits = {k: outputs[k].clone().requires_grad_(True) for k in read}
    losses = model.training_losses({**outputs, **logits}, batch)
    (losses["au"] + losses.get("int", 0.0)).backward()
    for tensor in logits.values():
        assert torch.all(tensor.grad[0, :5] == 0) and tensor.grad[2, 7] == 0
        assert torch.all(tensor.grad[1] != 0)
    # predictions for unknown entries are irrelevant; flipping a known label does change the loss
    moved = outputs[read[0]].clone()
    moved[0, :5] += 10.0
    moved[2, 7] -= 10.0
    torch.testing.assert_close(model.training_losses({**outputs, read[0]: moved}, batch)["au"], losses["au"])
    flipped = {**batch, "labels": batch["labels"].clone()}
    flipped["labels"][1, 0] = 1 - flipped["labels"][1, 0]
    assert model.training_losses(outputs, flipped)["au"] != losses["au"]


def _set(config: dict, dotted: str, value) -> dict:
    config = copy.deepcopy(config)
    node = config
    *parents, leaf = dotted.split(".")
    for key in parents:
        node = node[key]
    assert leaf in node, dotted
    node[leaf] = value
    return config


ALGRNET_SWITCHES = [
    {"skip_bilstm.mode": "plain"},                      # "w/ Bi"
    {"skip_bilstm.mode": "none"},                       # "w/o S-B"
    {"fusion.mode": "simple"},                          # simple (concatenation) global fusion
    {"fusion.mode": "none"},                            # "w/o F&R"
    {"region.adaptive": False},                         # "w/o Ada"
    {"skip_bilstm.mode": "none", "fusion.mode": "none", "region.adaptive": False},  # "w/o full"
    {"region.offset_mode": "per_centre", "region.scale_param": "sigmoid"},
    {"region.offset_mode": "per_au_shared", "skip_bilstm.gate_sum": "mean"},
    {"region.refine": False, "region.detach_landmarks": False},
    {"region.adaptive": False, "region.fixed_map": "gaussian"},
    {"loss.dice_weight": 1.0},
    {"loss.objective": "au_int", "loss.dice_weight": 1.0},   # MGRR-Net's L_int added
]

MGRRNET_SWITCHES = [
    {"relational.layers": 0},                           # Tab 4.6 variant 1 (baseline)
    {"relational.layers": 1},                           # Tab 4.7 K = 1
    {"relational.layers": 3},                           # Tab 4.7 K = 3
    {"relational.layer.global_feature": False, "relational.layer.channel_gat": False,
     "relational.layer.pixel_gat": False},              # variant 2: D_G only
    {"relational.layer.channel_gat": False, "relational.layer.pixel_gat": False},  # variant 3
    {"relational.layer.global_feature": False},         # variant 4: D_G + C_G + P_G
    {"relational.layer.pixel_gat": False},              # variant 5
    {"relational.layer.channel_gat": False},            # variant 6
    {"relational.layer.region_graph": False},
    {"relational.layer.graph_init": "random", "relational.layer.adjacency_norm": "row",
     "relational.layer.adjacency_diagonal": "keep", "relational.layer.node_weights": "shared"},
    {"relational.layer.channel_downsample": False, "relational.layer.gat_residual": True,
     "relational.layer.gfc": "shared_global"},
    {"region.refine": False, "region.fixed_map": "gaussian"},
    {"region.adaptive": True},
    {"loss.objective": "au"},
]


@pytest.mark.parametrize("name,switches", [("algrnet", s) for s in ALGRNET_SWITCHES]
                         + [("mgrrnet", s) for s in MGRRNET_SWITCHES])
def test_ablation_switches_build_and_train(name: str, switches: dict) -> None:
    config = tiny(name)
    for key, value in switches.items():
        config = _set(config, key, value)
    model = build(name, config)
    batch = make_batch(2)
    outputs = model(batch["image"])
    assert outputs["au_logits"].shape == (2, NUM_AUS)
    losses = model.training_losses(outputs, batch)
    assert torch.isfinite(losses["total"])
    losses["total"].backward()
    if switches.get("loss.dice_weight"):
        assert "dice" in losses


def test_ablations_change_the_architecture() -> None:
    def count(name: str, **switches) -> int:
        config = tiny(name)
        for key, value in switches.items():
            config = _set(config, key.replace("__", "."), value)
        return sum(p.numel() for p in build(name, config).parameters())

    full = count("algrnet")
    assert count("algrnet", skip_bilstm__mode="none") < full
    assert count("algrnet", region__adaptive=False) < full
    assert count("mgrrnet", relational__layers=1) < count("mgrrnet") < count("mgrrnet", relational__layers=3)
