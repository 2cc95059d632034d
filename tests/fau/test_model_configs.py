"""Models are built from typed configs: in Python with plain arguments or from the YAML ``model:``
section, with the same result; each explaining model returns its attention maps by name."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fau.layers.front import AlignmentConfig, RegionConfig, StemConfig
from fau.models import MODELS, build_model
from fau.models.algrnet import ALGRNet, ALGRNetConfig, FusionConfig, HeadConfig, SkipBiLSTMConfig
from shared.config import from_dict, to_dict
from shared.explain import explain


@pytest.mark.parametrize("name", MODELS.names())
def test_config_defaults_are_the_bp4d_paper_config(name: str) -> None:
    """``Model.Config()`` is the packaged BP4D config, so Python defaults and YAML cannot drift apart."""
    entry = MODELS.get(name)
    section = MODELS.load_config(name, "bp4d")["model"]
    assert from_dict(entry.cls.Config, section, "model") == entry.cls.Config()
    assert to_dict(entry.cls.Config()) == section


def test_algrnet_from_plain_arguments_equals_the_tiny_yaml() -> None:
    config = ALGRNetConfig(
        input_size=80, stem=StemConfig(unit_dim=2), alignment=AlignmentConfig(hidden=64),
        region=RegionConfig(hidden=64, refine_width=8), skip_bilstm=SkipBiLSTMConfig(hidden=16),
        fusion=FusionConfig(channels=16), head=HeadConfig(local_hidden=16, integrated_hidden=64))
    assert config == from_dict(ALGRNetConfig, MODELS.load_config("algrnet", "tiny")["model"], "model")
    torch.manual_seed(0)
    plain = ALGRNet(config, num_aus=12).eval()
    torch.manual_seed(0)
    from_yaml = build_model("algrnet", MODELS.load_config("algrnet")["model"], 12).eval()
    images = torch.rand(2, 3, 80, 80) * 2 - 1
    with torch.no_grad():
        assert torch.equal(plain(images)["au_logits"], from_yaml(images)["au_logits"])
    with pytest.raises(ValueError, match="must split into every stem grid"):
        ALGRNetConfig(input_size=81, stem=StemConfig(unit_dim=2))
    with pytest.raises(ValueError, match="skip_bilstm.hidden 64 must equal the stem width 8 × stem.unit_dim = 16"):
        ALGRNetConfig(input_size=80, stem=StemConfig(unit_dim=2))
    assert ALGRNet(ALGRNetConfig(fusion=FusionConfig(mode="simple")), num_aus=12).input_size == 176


@pytest.mark.parametrize("name", ["algrnet", "mgrrnet"])
def test_region_models_explain_with_their_region_maps(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, MODELS.load_config(name)["model"], 12, prior=np.full((12, 12), 0.5)).eval()
    images = torch.rand(2, 3, 80, 80) * 2 - 1
    maps = explain(model, images)
    assert set(maps) == {"region_maps", "region_centres", "region_scales", "landmarks"}
    assert maps["region_maps"].shape == (2, 12, 20, 20) and maps["region_centres"].shape == (2, 12, 2, 2)
    assert maps["region_scales"].shape == (2, 12) and maps["landmarks"].shape == (2, 49, 2)
    with torch.no_grad():
        assert torch.equal(maps["region_maps"], model(images)["region_maps"])   # explanations are outputs
    assert not any(name.startswith("last_") for name in vars(model))            # nothing kept as state


def test_vlfau_explains_with_dair_maps_and_without_marl_has_none() -> None:
    torch.manual_seed(0)
    model = build_model("vlfau", MODELS.load_config("vlfau")["model"], 12).eval()
    maps = explain(model, torch.rand(2, 3, 64, 64) * 2 - 1)
    assert set(maps) == {"dair_maps"} and maps["dair_maps"].shape == (2, 12, 8, 8)
    plain = build_model("vlfau", MODELS.load_config("vlfau", None, ["model.marl=false"])["model"], 12).eval()
    assert explain(plain, torch.rand(1, 3, 64, 64)) == {}

